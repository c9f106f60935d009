"""Synthetic interaction data with the shapes of the paper's large data sets (issue 14).

A shape is a number of users, items and interactions, a per-user activity distribution and an
item-popularity exponent:

* users adopt ``min_per_user`` + a log-normal number of distinct items (sigma ``user_sigma``),
  scaled so the total is the shape's number of interactions;
* an item of popularity rank r is drawn with probability proportional to r^-a, the exponent a
  chosen so that the Gini coefficient of the curve r^-a equals ``item_gini``. Users' items are
  distinct, so heavy users flatten the head: the realised Gini comes out lower (the benchmark
  prints it beside the target).

Where the figures come from: users x items x interactions of ML-20M and Netflix are those after
MultVAE's filtering (ratings >= 4 as positives, users with >= 5), the data of the MacridVAE paper.
The activity spread (log-normal sigma 1.6) and the item Gini 0.90 are LensKit's published
statistics of ML-20M (codex.lenskit.org, the full ratings before that filtering); no such figures
were at hand for Netflix, which takes ML-20M's. The 200k-item catalog is the issue's synthetic
100k users x 200k items with 50 interactions per user, with the same spread and Gini.

``scale`` shrinks users, items and interactions by the same factor (interactions per user stay).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Shape:
    name: str
    users: int
    items: int
    interactions: int
    user_sigma: float = 1.6
    item_gini: float = 0.90
    min_per_user: int = 5

    def scaled(self, scale: float, item_scale: float | None = None) -> "Shape":
        """Users, items and interactions times ``scale`` (items times ``item_scale`` when given);
        interactions per user stay, up to half the catalog."""
        item_scale = scale if item_scale is None else item_scale
        if not (0 < scale <= 1 and 0 < item_scale <= 1):
            raise ValueError(f"scale and item_scale must lie in (0, 1], got {scale} and {item_scale}")
        users = max(int(round(self.users * scale)), 10)
        items = max(int(round(self.items * item_scale)), 4 * self.min_per_user)
        interactions = min(max(int(round(self.interactions * scale)), users * self.min_per_user), users * (items // 2))
        return Shape(self.name, users, items, interactions, self.user_sigma, self.item_gini, self.min_per_user)


SHAPES = {
    "ml-20m": Shape("ml-20m", 136_677, 20_108, 10_000_000),
    "netflix": Shape("netflix", 463_435, 17_769, 56_900_000),
    "catalog-200k": Shape("catalog-200k", 100_000, 200_000, 5_000_000),
}


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative ``counts`` (0 = all equal, -> 1 = one item has everything)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def zipf_exponent_for_gini(n_items: int, target: float) -> float:
    """The a in p(rank r) ~ r^-a whose popularity curve has Gini ``target`` (bisection)."""
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    low, high = 0.0, 4.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if gini(ranks**-mid) < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def per_user_counts(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Distinct items per user: min_per_user + log-normal, summing to the shape's interactions."""
    extra_total = shape.interactions - shape.min_per_user * shape.users
    raw = rng.lognormal(0.0, shape.user_sigma, size=shape.users)
    # Heavy users are capped at half the catalog (a user with every item leaves RecBole's
    # negative sampler nothing to draw); the excess is spread over the others.
    cap = max(shape.items // 2 - shape.min_per_user, 0)
    extra = np.zeros(shape.users)
    free = np.ones(shape.users, dtype=bool)
    remaining = float(extra_total)
    for _ in range(20):
        extra[free] = raw[free] * remaining / raw[free].sum()
        over = free & (extra > cap)
        if not over.any():
            break
        extra[over] = cap
        free &= ~over
        remaining = extra_total - extra[~free].sum()
    whole = np.floor(extra).astype(np.int64)
    # Round so the total is exact: the largest remainders get one more.
    short = int(extra_total - whole.sum())
    if short > 0:
        room = np.flatnonzero(whole < cap)
        order = room[np.argsort(-(extra - whole)[room], kind="stable")]
        whole[order[:short]] += 1
    return shape.min_per_user + whole


def generate(shape: Shape, seed: int = 0) -> sp.csr_matrix:
    """A binary users x items CSR matrix with ``shape``'s sizes, activity spread and item Gini.

    Each user's items are distinct, drawn (vectorised, without replacement) by popularity: draws
    with replacement, duplicates dropped, the shortfall drawn again for the users that have one.
    """
    rng = np.random.default_rng(seed)
    counts = per_user_counts(shape, rng)
    exponent = zipf_exponent_for_gini(shape.items, shape.item_gini)
    weights = np.arange(1, shape.items + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights / weights.sum())
    item_of_rank = rng.permutation(shape.items)  # no id order reveals popularity
    keys = np.empty(0, dtype=np.int64)
    need = counts.copy()
    for round_ in range(60):
        users = np.flatnonzero(need > 0)
        if len(users) == 0:
            break
        # Oversample, more in every round: a heavy user's last items are rare ones.
        draws = np.ceil(need[users] * 1.2 * 2 ** min(round_, 10) + 2).astype(np.int64)
        u = np.repeat(users, draws)
        ranks = np.searchsorted(cdf, rng.random(len(u)), side="right").clip(max=shape.items - 1)
        new = np.unique(u * shape.items + item_of_rank[ranks])
        new = new[~np.isin(new, keys, assume_unique=True)]
        # Keep at most need[u] new items per user, chosen at random among the distinct draws.
        new = new[rng.permutation(len(new))]
        new = new[np.argsort(new // shape.items, kind="stable")]
        owner = new // shape.items
        first = np.searchsorted(owner, owner, side="left")
        keep = (np.arange(len(new)) - first) < need[owner]
        new = new[keep]
        keys = np.union1d(keys, new)
        need -= np.bincount(new // shape.items, minlength=shape.users)
    rows, cols = keys // shape.items, keys % shape.items
    matrix = sp.csr_matrix((np.ones(len(keys), dtype=np.float32), (rows, cols)), shape=(shape.users, shape.items))
    matrix.sum_duplicates()
    return matrix


def write_atomic(matrix: sp.csr_matrix, folder, name: str) -> None:
    """``folder/name/name.inter`` (user_id:token, item_id:token, rating:float, timestamp:float).

    Tokens start at 1; the timestamp is the order of adoption within a user (random), so that a
    RecBole split ordered by time has something to order by.
    """
    from pathlib import Path

    out = Path(folder) / name
    out.mkdir(parents=True, exist_ok=True)
    coo = matrix.tocoo()
    rng = np.random.default_rng(0)
    stamps = rng.permutation(coo.nnz).astype(np.int64)
    with open(out / f"{name}.inter", "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        block = 1_000_000
        for start in range(0, coo.nnz, block):
            stop = start + block
            lines = np.char.add(
                np.char.add(np.char.add((coo.row[start:stop] + 1).astype(str), "\t"), (coo.col[start:stop] + 1).astype(str)),
                np.char.add("\t1\t", stamps[start:stop].astype(str)),
            )
            f.write("\n".join(lines.tolist()) + "\n")


class ArrayDataset:
    """What the auto-encoders (ours and RecBole's) read from a RecBole Dataset, over a CSR matrix.

    For timing model compute without RecBole's data preparation: ``num``, ``inter_matrix`` and
    ``history_item_matrix``. Row and column 0 are RecBole's padding (``with_padding``).
    """

    def __init__(self, matrix: sp.csr_matrix, uid_field: str = "user_id", iid_field: str = "item_id"):
        self.matrix = matrix.tocsr()
        self.uid_field, self.iid_field = uid_field, iid_field
        self.user_num, self.item_num = self.matrix.shape
        self._history = None

    @classmethod
    def with_padding(cls, matrix: sp.csr_matrix, **fields) -> "ArrayDataset":
        m = matrix.tocoo()
        padded = sp.csr_matrix((m.data, (m.row + 1, m.col + 1)), shape=(m.shape[0] + 1, m.shape[1] + 1))
        return cls(padded, **fields)

    def num(self, field):
        return self.user_num if field == self.uid_field else self.item_num

    def inter_matrix(self, form="csr", value_field=None):
        return self.matrix.copy() if form == "csr" else self.matrix.tocoo()

    def history_item_matrix(self, value_field=None, max_history_len=None):
        import torch

        if self._history is None:
            lengths = np.diff(self.matrix.indptr)
            ids = np.zeros((self.user_num, max(int(lengths.max()), 1)), dtype=np.int64)
            rows = np.repeat(np.arange(self.user_num), lengths)
            position = np.arange(self.matrix.nnz) - np.repeat(self.matrix.indptr[:-1], lengths)
            ids[rows, position] = self.matrix.indices
            values = (ids > 0).astype(np.float32)
            self._history = (torch.from_numpy(ids), torch.from_numpy(values), torch.from_numpy(lengths.astype(np.int64)))
        return self._history


class UserIdBatches:
    """Shuffled batches of user ids as RecBole Interactions, as the training loaders yield them:
    ours (``UserBatchDataLoader``: users with interactions) or RecBole's ``UserDataLoader`` (every id)."""

    shuffle = True
    sampler = None

    def __init__(self, users: np.ndarray, batch_size: int, uid_field: str = "user_id", seed: int = 0):
        self.users, self.batch_size, self.uid_field = np.asarray(users, dtype=np.int64), batch_size, uid_field
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return -(-len(self.users) // self.batch_size)

    def __iter__(self):
        import torch
        from recbole.data.interaction import Interaction

        order = self.rng.permutation(self.users)
        for start in range(0, len(order), self.batch_size):
            yield Interaction({self.uid_field: torch.from_numpy(order[start : start + self.batch_size])})
