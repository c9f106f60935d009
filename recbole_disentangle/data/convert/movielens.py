"""GroupLens MovieLens dumps -> atomic files: ML-100k, ML-1M, ML-20M and ML-latest-small.

The four releases share one output layout and differ only in how their raw files are
delimited and encoded; each ``convert_*`` below just says how to read its files. ML-20M and
ML-latest-small also ship users' free-text tags (tags.csv); where that file is present their
.item file gets one more field, ``tags`` (see :func:`item_tags`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.io.parsers import TextFileReader
from tqdm import tqdm

from .atomic import CHUNK_ROWS, INTER_FIELDS, ITEM_FIELDS, USER_FIELDS, DatasetWriter, Fields

# The .item field of ML-20M / latest-small users' tags, written when tags.csv is present.
TAGS_FIELD = ("tags", "token_seq")

# u.item's 19 genre flag columns, in the file's fixed order (documented in the dump's README).
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

# ML-20M / latest-small mark genre-less movies with this pseudo-genre.
NO_GENRES = "(no genres listed)"

# A character no MovieLens field contains: ML-1M's "::" is rewritten to it so pandas' fast
# C parser (single-character separators only) can split the lines.
_UNIT_SEPARATOR = "\x1f"

# "Title (1995)" and series spans "Title (1975-1979)" / "Title (2007-)": year = first year.
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")

_INTER_NAMES = [name for name, _ in INTER_FIELDS]
# Ids and times are integers in every release; ratings are left to the parser so that
# integer scales stay "4" and half-star scales "3.5" in the output.
_INTER_DTYPES = {"user_id": np.int64, "item_id": np.int64, "timestamp": np.int64}


def split_title_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """"Toy Story (1995)" -> ("Toy Story", "1995"); a title without a year -> (title, "")."""
    titles = titles.str.strip()
    parts = titles.str.extract(_TITLE_YEAR)
    has_year = parts["year"].notna()
    return parts["title"].where(has_year, titles), parts["year"].fillna("")


def pipe_genres_to_tokens(genres: pd.Series) -> pd.Series:
    """"Action|Sci-Fi" -> "Action Sci-Fi" (RecBole's token_seq separator is a space)."""
    genres = genres.replace(NO_GENRES, "")
    return genres.str.replace(" ", "_", regex=False).str.replace("|", " ", regex=False)


def item_tags(tags: pd.DataFrame) -> pd.Series:
    """movieId -> the movie's tags as one token_seq cell, from tags.csv rows (movieId, tag).

    Every tag of every user is lowercased and its whitespace runs become one ``_`` (RecBole's
    token_seq separator is a space: "Will  Ferrell" -> ``will_ferrell``); a tag given several
    times, by one user or many, is kept once. A movie's tags are ordered by how many rows give
    them (most first, ties by first appearance in the file), so that a reader that truncates,
    such as a sentence encoder with a 256-token window, keeps the tags users agree on.
    """
    tag = tags["tag"].fillna("").str.lower().str.strip().str.replace(r"\s+", "_", regex=True)
    frame = pd.DataFrame({"movieId": tags["movieId"], "tag": tag})
    frame = frame[frame["tag"] != ""]
    frame["first"] = np.arange(len(frame))
    counted = frame.groupby(["movieId", "tag"], sort=False).agg(n=("tag", "size"), first=("first", "min"))
    counted = counted.reset_index().sort_values(["movieId", "n", "first"], ascending=[True, False, True], kind="stable")
    return counted.groupby("movieId", sort=False)["tag"].agg(" ".join)


def _item_frame(item_ids: pd.Series, titles: pd.Series, genres: pd.Series) -> pd.DataFrame:
    title, year = split_title_year(titles)
    return pd.DataFrame(
        {"item_id": item_ids, "movie_title": title, "release_year": year, "class": genres}
    )


def _read_text_table(
    source: Path | io.StringIO, sep: str, names: list[str], encoding: str = "utf-8"
) -> pd.DataFrame:
    """A small headerless metadata table, every value kept verbatim as text.

    QUOTE_NONE: in these formats '"' is part of a title, not a quote. keep_default_na=False:
    a zip code or title "NA" must stay text, and empty stays "".
    """
    return pd.read_csv(
        source, sep=sep, header=None, names=names, dtype=str, quoting=csv.QUOTE_NONE,
        keep_default_na=False, encoding=encoding, engine="c",
    )


def _double_colon(path: Path) -> io.StringIO:
    """ML-1M's '::'-separated file with the separator swapped for one character.

    The files are latin-1: the 2003 dump predates UTF-8 in MovieLens (e.g. "Misérables").
    """
    return io.StringIO(path.read_text(encoding="latin-1").replace("::", _UNIT_SEPARATOR))


def _read_ratings(source: Path | io.StringIO, sep: str, *, has_header: bool) -> TextFileReader:
    """The ratings file in chunks, in file order, without building Python row objects."""
    return pd.read_csv(
        source, sep=sep, header=0 if has_header else None, names=_INTER_NAMES,
        dtype=_INTER_DTYPES, engine="c", chunksize=CHUNK_ROWS,
    )


def _write_movielens(
    dataset_dir: Path,
    *,
    force: bool,
    progress: bool,
    ratings: Callable[[], TextFileReader],
    items: Callable[[], pd.DataFrame],
    users: Callable[[], pd.DataFrame] | None,
    item_fields: Fields = ITEM_FIELDS,
) -> None:
    """Write <name>.item, <name>.user (if the dump has users) and <name>.inter."""
    tables = {"inter": INTER_FIELDS, "item": item_fields}
    if users is not None:
        tables["user"] = USER_FIELDS
    # The writer refuses existing output first; the readers are callables so that no raw
    # file is parsed before that check.
    with DatasetWriter(dataset_dir, tables, force=force) as out:
        out.write("item", items())
        if users is not None:
            out.write("user", users())
        bar = tqdm(
            desc=f"{dataset_dir.name} ratings", unit=" rows", unit_scale=True, disable=not progress
        )
        with ratings() as chunks, bar:
            for chunk in chunks:
                out.write("inter", chunk)
                bar.update(len(chunk))


def convert_ml_100k(raw_dir: Path, dataset_dir: Path, *, force: bool, progress: bool) -> None:
    """ML-100k: u.data (tab), u.item and u.user ('|', latin-1)."""

    def items() -> pd.DataFrame:
        # u.item is latin-1: the 1998 dump predates UTF-8.
        raw = _read_text_table(
            raw_dir / "u.item", "|",
            ["item_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES_100K],
            encoding="latin-1",
        )
        flags = raw[list(GENRES_100K)].to_numpy() == "1"
        genre_names = np.array(GENRES_100K)
        genres = pd.Series([" ".join(genre_names[row]) for row in flags], index=raw.index)
        frame = _item_frame(raw["item_id"], raw["title"], genres)
        # A title without "(year)" still has a release date such as "01-Jan-1995".
        date_year = raw["release_date"].str.extract(r"(\d{4})$")[0].fillna("")
        frame["release_year"] = frame["release_year"].where(frame["release_year"] != "", date_year)
        return frame

    _write_movielens(
        dataset_dir, force=force, progress=progress,
        ratings=lambda: _read_ratings(raw_dir / "u.data", "\t", has_header=False),
        items=items,
        users=lambda: _read_text_table(
            raw_dir / "u.user", "|", [name for name, _ in USER_FIELDS], encoding="latin-1"
        ),
    )


def convert_ml_1m(raw_dir: Path, dataset_dir: Path, *, force: bool, progress: bool) -> None:
    """ML-1M: ratings.dat, movies.dat and users.dat ('::', latin-1)."""

    def items() -> pd.DataFrame:
        raw = _read_text_table(
            _double_colon(raw_dir / "movies.dat"), _UNIT_SEPARATOR, ["item_id", "title", "genres"]
        )
        return _item_frame(raw["item_id"], raw["title"], pipe_genres_to_tokens(raw["genres"]))

    _write_movielens(
        dataset_dir, force=force, progress=progress,
        ratings=lambda: _read_ratings(
            _double_colon(raw_dir / "ratings.dat"), _UNIT_SEPARATOR, has_header=False
        ),
        items=items,
        users=lambda: _read_text_table(
            _double_colon(raw_dir / "users.dat"), _UNIT_SEPARATOR,
            ["user_id", "gender", "age", "occupation", "zip_code"],
        ),
    )


def convert_ml_csv(raw_dir: Path, dataset_dir: Path, *, force: bool, progress: bool) -> None:
    """ML-20M and ML-latest-small: ratings.csv and movies.csv (UTF-8 CSV with headers, no users),
    and tags.csv (userId, movieId, tag, timestamp) if present: then .item has a ``tags`` field."""
    tags_file = raw_dir / "tags.csv"
    with_tags = tags_file.is_file()

    def items() -> pd.DataFrame:
        # A real CSV: titles with commas are quoted, so the default quoting applies here.
        raw = pd.read_csv(raw_dir / "movies.csv", dtype=str, keep_default_na=False, engine="c")
        frame = _item_frame(raw["movieId"], raw["title"], pipe_genres_to_tokens(raw["genres"]))
        if with_tags:
            tags = pd.read_csv(tags_file, dtype=str, keep_default_na=False, engine="c", usecols=["movieId", "tag"])
            frame["tags"] = frame["item_id"].map(item_tags(tags)).fillna("")
        return frame

    _write_movielens(
        dataset_dir, force=force, progress=progress,
        ratings=lambda: _read_ratings(raw_dir / "ratings.csv", ",", has_header=True),
        items=items,
        users=None,
        item_fields=(*ITEM_FIELDS, TAGS_FIELD) if with_tags else ITEM_FIELDS,
    )
