"""Converters from raw public dumps to RecBole atomic files, on tiny fixtures in the raw formats."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from recbole_disentangle.data.convert import (
    CONVERTERS,
    OutputExists,
    RawFilesMissing,
    convert,
    convert_command,
    missing_raw_files,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

INTER_HEADER = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
ITEM_HEADER = ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"]
USER_HEADER = ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"]


def read_atomic(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header fields and rows as text, parsed the way RecBole parses atomic files."""
    with open(path, encoding="utf-8", newline="") as handle:
        header = handle.readline().rstrip("\n").split("\t")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    assert list(frame.columns) == header
    return header, frame.values.tolist()


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + "\n" for line in lines).encode(encoding))


def flags(*genres: int) -> str:
    """u.item's 19 genre flags with the given positions set."""
    return "|".join("1" if i in genres else "0" for i in range(19))


# --- fixtures in the raw formats -----------------------------------------------------------


def make_ml_100k(raw: Path) -> None:
    write_lines(
        raw / "u.data",
        ["196\t242\t3\t881250949", "186\t302\t3\t891717742", "22\t242\t1\t878887116"],
    )
    write_lines(
        raw / "u.item",
        [
            f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya|{flags(5)}",
            # latin-1 "é"; Musical is flag 12, Drama 8
            f"302|Misérables, Les (1995)|01-Jan-1995||http://x|{flags(8, 12)}",
            # no year in the title: the release date supplies it
            f"303|Good Morning|4-Feb-1971||http://x|{flags(0)}",
            # no year anywhere
            f"267|unknown|||http://x|{flags(0)}",
        ],
        encoding="latin-1",
    )
    write_lines(
        raw / "u.user",
        ["196|49|M|writer|55105", "186|39|F|executive|00000", "22|25|M|writer|40206"],
    )


def make_ml_1m(raw: Path) -> None:
    write_lines(
        raw / "ratings.dat",
        ["1::1193::5::978300760", "1::661::3::978302109", "2::1193::4::978298413",
         "3::73::2::978297867", "3::661::1::978297700", "2::73::5::978299000"],
    )
    write_lines(
        raw / "movies.dat",
        [
            "1193::One Flew Over the Cuckoo's Nest (1975)::Drama",
            "661::Mission: Impossible (1996)::Action|Adventure|Mystery",
            "73::Misérables, Les (1995)::Drama|Musical",
            '3000::"Great Performances" Cats::Musical',
        ],
        encoding="latin-1",
    )
    write_lines(
        raw / "users.dat", ["1::F::1::10::48067", "2::M::56::16::70072", "3::M::25::15::02460"]
    )


def make_ml_csv(raw: Path) -> None:
    write_lines(
        raw / "ratings.csv",
        ["userId,movieId,rating,timestamp", "1,2,3.5,1112486027", "1,29,4.0,1112484676",
         "7,2,5.0,1112484819", "7,131,0.5,1112484580"],
    )
    write_lines(
        raw / "movies.csv",
        [
            "movieId,title,genres",
            "2,Jumanji (1995),Adventure|Children|Fantasy",
            '29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Sci Fi|Mystery',
            '131,"""Great Performances"" Cats (1998)",(no genres listed)',
            "140,Hyena Road,Drama|War",
            '150,"Fawlty\tTowers (1975-1979)",Comedy',
        ],
    )


def make_ml_csv_tags(raw: Path) -> None:
    """tags.csv as GroupLens ships it (ML-20M and latest-small alike): header, quoted commas."""
    write_lines(
        raw / "tags.csv",
        [
            "userId,movieId,tag,timestamp",
            "2,2,board game,1445714994",
            "7,2,Robin Williams,1445714996",
            "9,2,Board  Game,1445714992",  # same tag, other case and spacing: kept once, counted twice
            '7,29,"dark, surreal",1445715207',
            "7,29,steampunk,1445715200",
            "7,29,Steampunk,1445715201",
            "8,29,  ,1445715202",  # a blank tag is no tag
            "7,999,not in movies.csv,1445715203",
        ],
    )


def make_netflix(raw: Path) -> None:
    write_lines(
        raw / "training_set" / "mv_0000001.txt",
        ["1:", "1488844,3,2005-09-06", "822109,5,2005-05-13"],
    )
    # no newline after the last rating
    (raw / "training_set" / "mv_0000002.txt").write_bytes(b"2:\n2059652,4,2005-09-05")
    write_lines(
        raw / "movie_titles.txt",
        [
            "1,2003,Dinosaur Planet",
            "2,NULL,Isle of Man TT 2004 Review",
            "3,1997,Character, Part 2 é",
        ],
        encoding="latin-1",
    )


def unix(day: str) -> str:
    return str(int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()))


# --- conversions -----------------------------------------------------------------------------


def test_registry_names_and_raw_files():
    assert list(CONVERTERS)[:5] == ["ml-100k", "ml-1m", "ml-20m", "ml-latest-small", "netflix"]
    assert CONVERTERS["ml-1m"].raw_files == ("ratings.dat", "movies.dat", "users.dat")
    assert CONVERTERS["netflix"].raw_files == ("training_set", "movie_titles.txt")
    assert all(c.name == name and c.source for name, c in CONVERTERS.items())


def test_ml_100k(tmp_path):
    make_ml_100k(tmp_path / "raw")
    out = CONVERTERS["ml-100k"].convert(tmp_path / "raw", tmp_path / "out", progress=False)
    assert out == tmp_path / "out" / "ml-100k"

    assert read_atomic(out / "ml-100k.inter") == (
        INTER_HEADER,
        [
            ["196", "242", "3", "881250949"],
            ["186", "302", "3", "891717742"],
            ["22", "242", "1", "878887116"],
        ],
    )
    assert read_atomic(out / "ml-100k.item") == (
        ITEM_HEADER,
        [
            ["242", "Kolya", "1996", "Comedy"],
            ["302", "Misérables, Les", "1995", "Drama Musical"],
            ["303", "Good Morning", "1971", "unknown"],
            ["267", "unknown", "", "unknown"],
        ],
    )
    assert read_atomic(out / "ml-100k.user") == (
        USER_HEADER,
        [["196", "49", "M", "writer", "55105"], ["186", "39", "F", "executive", "00000"],
         ["22", "25", "M", "writer", "40206"]],
    )


def test_ml_1m(tmp_path):
    make_ml_1m(tmp_path / "raw")
    out = convert("ml-1m", tmp_path / "raw", tmp_path / "out", progress=False)

    header, rows = read_atomic(out / "ml-1m.inter")
    assert header == INTER_HEADER
    assert rows[0] == ["1", "1193", "5", "978300760"] and rows[-1] == ["2", "73", "5", "978299000"]
    assert len(rows) == 6
    assert read_atomic(out / "ml-1m.item") == (
        ITEM_HEADER,
        [
            ["1193", "One Flew Over the Cuckoo's Nest", "1975", "Drama"],
            ["661", "Mission: Impossible", "1996", "Action Adventure Mystery"],
            ["73", "Misérables, Les", "1995", "Drama Musical"],
            ["3000", '"Great Performances" Cats', "", "Musical"],
        ],
    )
    # users.dat is Gender::Age::Occupation; RecBole's order is age, gender, occupation.
    assert read_atomic(out / "ml-1m.user") == (
        USER_HEADER,
        [
            ["1", "1", "F", "10", "48067"],
            ["2", "56", "M", "16", "70072"],
            ["3", "25", "M", "15", "02460"],
        ],
    )


@pytest.mark.parametrize("name", ["ml-20m", "ml-latest-small"])
def test_ml_csv(tmp_path, name):
    make_ml_csv(tmp_path / "raw")
    out = convert(name, tmp_path / "raw", tmp_path / "out", progress=False)

    assert sorted(p.name for p in out.iterdir()) == [f"{name}.inter", f"{name}.item"]
    assert read_atomic(out / f"{name}.inter") == (
        INTER_HEADER,
        [["1", "2", "3.5", "1112486027"], ["1", "29", "4.0", "1112484676"],
         ["7", "2", "5.0", "1112484819"], ["7", "131", "0.5", "1112484580"]],
    )
    assert read_atomic(out / f"{name}.item") == (
        ITEM_HEADER,
        [
            ["2", "Jumanji", "1995", "Adventure Children Fantasy"],
            [
                "29",
                "City of Lost Children, The (Cité des enfants perdus, La)",
                "1995",
                "Sci_Fi Mystery",
            ],
            ["131", '"Great Performances" Cats', "1998", ""],
            ["140", "Hyena Road", "", "Drama War"],
            ["150", "Fawlty Towers", "1975", "Comedy"],
        ],
    )


@pytest.mark.parametrize("name", ["ml-20m", "ml-latest-small"])
def test_ml_csv_tags(tmp_path, name):
    """With tags.csv the .item file gains a tags field (lowercased, whitespace -> '_', deduplicated,
    most given first); every other field and the .inter file stay as without it."""
    make_ml_csv(tmp_path / "raw")
    plain = convert(name, tmp_path / "raw", tmp_path / "plain", progress=False)
    make_ml_csv_tags(tmp_path / "raw")
    out = convert(name, tmp_path / "raw", tmp_path / "out", progress=False)

    assert (out / f"{name}.inter").read_bytes() == (plain / f"{name}.inter").read_bytes()
    header, rows = read_atomic(out / f"{name}.item")
    assert header == [*ITEM_HEADER, "tags:token_seq"]
    assert [row[:-1] for row in rows] == read_atomic(plain / f"{name}.item")[1]
    assert {row[0]: row[-1] for row in rows} == {
        "2": "board_game robin_williams",
        "29": "steampunk dark,_surreal",
        "131": "",
        "140": "",
        "150": "",
    }


def test_recbole_loads_ml_csv_tags(tmp_path, workdir, monkeypatch):
    from recbole.config import Config
    from recbole.data import create_dataset

    make_ml_csv(tmp_path / "raw")
    make_ml_csv_tags(tmp_path / "raw")
    convert("ml-latest-small", tmp_path / "raw", tmp_path / "atomic", progress=False)
    monkeypatch.setattr(sys, "argv", ["x"])
    config = Config(
        model="Pop", dataset="ml-latest-small",
        config_dict={"data_path": str(tmp_path / "atomic"), "load_col": None, "show_progress": False},
    )
    ds = create_dataset(config)
    tokens = ds.field2id_token["tags"]
    tags_of_2 = ds.item_feat["tags"][ds.token2id("item_id", "2")].tolist()
    assert [tokens[t] for t in tags_of_2 if t] == ["board_game", "robin_williams"]


def test_netflix(tmp_path):
    make_netflix(tmp_path / "raw")
    out = convert("netflix", tmp_path / "raw", tmp_path / "out", progress=False)

    assert sorted(p.name for p in out.iterdir()) == ["netflix.inter", "netflix.item"]
    assert read_atomic(out / "netflix.inter") == (
        INTER_HEADER,
        [
            ["1488844", "1", "3", unix("2005-09-06")],
            ["822109", "1", "5", unix("2005-05-13")],
            ["2059652", "2", "4", unix("2005-09-05")],
        ],
    )
    assert unix("2005-09-06") == "1125964800"
    assert read_atomic(out / "netflix.item") == (
        ["item_id:token", "movie_title:token_seq", "release_year:token"],
        [["1", "Dinosaur Planet", "2003"], ["2", "Isle of Man TT 2004 Review", ""],
         ["3", "Character, Part 2 é", "1997"]],
    )


def test_recbole_loads_converted_ml_1m(tmp_path, workdir, monkeypatch):
    from recbole.config import Config
    from recbole.data import create_dataset

    make_ml_1m(tmp_path / "raw")
    out_dir = tmp_path / "atomic"
    convert("ml-1m", tmp_path / "raw", out_dir, progress=False)
    monkeypatch.setattr(sys, "argv", ["x"])  # Config parses the command line
    config = Config(
        model="BPR",
        dataset="ml-1m",
        config_dict={"data_path": str(out_dir), "load_col": None, "show_progress": False},
    )
    ds = create_dataset(config)

    assert ds.inter_num == 6
    assert ds.user_num == 3 + 1  # + RecBole's padding id
    assert ds.item_num == 4 + 1  # item 3000 has no ratings but is in ml-1m.item
    assert "Misérables," in ds.field2id_token["movie_title"]
    assert set(ds.field2id_token["zip_code"]) >= {"02460", "48067"}


# --- refusals ------------------------------------------------------------------------------


def test_missing_raw_files(tmp_path):
    raw = tmp_path / "raw"
    write_lines(raw / "movies.dat", ["1::A (1999)::Drama"])
    assert missing_raw_files("ml-1m", raw) == ["ratings.dat", "users.dat"]

    with pytest.raises(RawFilesMissing) as caught:
        convert("ml-1m", raw, tmp_path / "out")
    message = str(caught.value)
    assert "ratings.dat" in message and "users.dat" in message and str(raw) in message
    assert CONVERTERS["ml-1m"].source in message
    assert convert_command("ml-1m", raw, tmp_path / "out") in message
    assert isinstance(caught.value, FileNotFoundError)
    assert not (tmp_path / "out").exists()


def test_empty_netflix_training_set_counts_as_missing(tmp_path):
    (tmp_path / "training_set").mkdir()
    write_lines(tmp_path / "movie_titles.txt", ["1,2003,Dinosaur Planet"])
    assert missing_raw_files("netflix", tmp_path) == ["training_set"]


def test_convert_command_text():
    assert convert_command("ml-1m") == (
        "python -m recbole_disentangle.data.convert ml-1m --raw RAW_DIR --out dataset_atomic"
    )
    assert convert_command("netflix", "/data/my raw", "out") == (
        "python -m recbole_disentangle.data.convert netflix --raw '/data/my raw' --out out"
    )


def test_existing_output_is_kept_unless_forced(tmp_path):
    make_ml_100k(tmp_path / "raw")
    out = convert("ml-100k", tmp_path / "raw", tmp_path / "out", progress=False)
    (out / "ml-100k.inter").write_text("sentinel\n")

    with pytest.raises(OutputExists) as caught:
        convert("ml-100k", tmp_path / "raw", tmp_path / "out", progress=False)
    message = str(caught.value)
    assert all(f"ml-100k.{suffix}" in message for suffix in ("inter", "item", "user"))
    assert "--force" in message and "force=True" in message
    assert isinstance(caught.value, FileExistsError)
    assert (out / "ml-100k.inter").read_text() == "sentinel\n"

    convert("ml-100k", tmp_path / "raw", tmp_path / "out", force=True, progress=False)
    assert read_atomic(out / "ml-100k.inter")[0] == INTER_HEADER


def test_failed_conversion_leaves_no_files(tmp_path):
    make_ml_100k(tmp_path / "raw")
    write_lines(tmp_path / "raw" / "u.data", ["196\t242\t3\t881250949", "oops\t242\t3\t881250949"])

    with pytest.raises(ValueError):
        convert("ml-100k", tmp_path / "raw", tmp_path / "out", progress=False)
    assert list((tmp_path / "out" / "ml-100k").iterdir()) == []


def test_unknown_name(tmp_path):
    with pytest.raises(ValueError) as caught:
        convert("ml-10m", tmp_path, tmp_path)
    assert all(name in str(caught.value) for name in CONVERTERS)
    with pytest.raises(ValueError):
        missing_raw_files("ml-10m", tmp_path)


# --- CLI -----------------------------------------------------------------------------------


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recbole_disentangle.data.convert", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_cli(tmp_path, repo_env):
    raw, out = tmp_path / "raw", tmp_path / "out"

    failed = run_cli(repo_env, "netflix", "--raw", str(raw), "--out", str(out))
    assert failed.returncode == 2
    assert "training_set" in failed.stderr and "movie_titles.txt" in failed.stderr
    assert "Traceback" not in failed.stderr

    make_netflix(raw)
    done = run_cli(repo_env, "netflix", "--raw", str(raw), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "netflix.inter  3 rows" in done.stdout and "netflix.item  3 rows" in done.stdout

    again = run_cli(repo_env, "netflix", "--raw", str(raw), "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
