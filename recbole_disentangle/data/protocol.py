"""The MultVAE / MacridVAE evaluation protocol (strong generalisation over held-out users).

Liang et al. (MultVAE, WWW 2018) and Ma et al. (MacridVAE) evaluate on users never seen in
training: the users are split into training, validation and test users; a held-out user's
interactions are split at random into a fold-in part (80%) the model reads and targets (20%)
it must rank among all items not in the fold-in part. Preprocessing keeps ratings >= 4 and
users with >= 5 of them; items that no training user has are dropped, as in MultVAE's code.

This module splits the data; the protocol object (``eval_protocol: paper``), its metrics and its
scoring of held-out users are in :mod:`recbole_disentangle.evaluation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from logging import getLogger

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recbole_disentangle.errors import ConfigError

PHASE_NAMES = {"valid": "validation", "test": "test"}


def configure_paper_settings(config, metrics) -> None:
    """Translate the paper protocol's settings into RecBole's filters (before data is read);
    ``valid_metric`` becomes NDCG@100 unless it is one of ``metrics``, the protocol's own."""
    held_out = config["paper_heldout_users"]
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) or held_out <= 0 or (
        isinstance(held_out, float) and held_out >= 0.5
    ):
        raise ConfigError(
            f"paper_heldout_users = {held_out!r}: give a number of users (an integer >= 1) or a fraction "
            f"in (0, 0.5), held out for validation and again for test."
        )
    fraction = config["paper_target_fraction"]
    if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(f"paper_target_fraction = {fraction!r} must lie in (0, 1).")
    rating_field, threshold = config["RATING_FIELD"], config["paper_rating_threshold"]
    if threshold is not None:
        intervals = dict(config["val_interval"] or {})
        intervals[rating_field] = f"[{threshold},inf)"
        config["val_interval"] = intervals
        load_col = config["load_col"]
        if load_col and rating_field not in load_col.get("inter", []):
            load_col["inter"] = [*load_col.get("inter", []), rating_field]
    config["user_inter_num_interval"] = f"[{config['paper_min_user_interactions']},inf)"
    config["item_inter_num_interval"] = f"[{config['paper_min_item_interactions']},inf)"
    if str(config["valid_metric"]).lower() not in metrics:
        config["valid_metric"] = "NDCG@100"
        config["valid_metric_bigger"] = True


@dataclass
class HeldOutUsers:
    """Held-out users with their fold-in input and their targets (rows follow ``users``)."""

    users: np.ndarray  # internal user ids
    fold_in: sp.csr_matrix  # (n_users, item_num)
    targets: sp.csr_matrix  # (n_users, item_num)
    excluded_items: np.ndarray  # items no training user has: never ranked
    batch_size: int

    def __len__(self) -> int:
        return math.ceil(len(self.users) / self.batch_size)

    def __bool__(self) -> bool:
        return len(self.users) > 0

    def batches(self):
        for start in range(0, len(self.users), self.batch_size):
            yield slice(start, min(start + self.batch_size, len(self.users)))


@dataclass
class PaperSplit:
    model_dataset: object  # training users' interactions + held-out users' fold-in part
    train_dataset: object  # training users' interactions only
    valid: HeldOutUsers
    test: HeldOutUsers


def _held_out_count(spec, n_users: int) -> int:
    return int(spec) if isinstance(spec, int) else int(round(spec * n_users))


def split_users(inter: pd.DataFrame, uid: str, iid: str, held_out, target_fraction: float, seed: int):
    """(train rows, {phase: (fold-in rows, target rows)}, items of training users) as DataFrames.

    Users are permuted with ``seed``; the first n are test users, the next n validation users
    (MultVAE's order). A held-out user with m interactions on training items has
    floor(target_fraction * m) of them, drawn at random, as targets; the rest is fold-in.
    """
    rng = np.random.RandomState(seed)
    users = np.unique(inter[uid].to_numpy())
    n_held = _held_out_count(held_out, len(users))
    if n_held < 1 or 2 * n_held >= len(users):
        what = (f"holds out {n_held} user(s) for validation and {n_held} for test" if n_held >= 1
                else f"rounds to 0 held-out users ({held_out!r} x {len(users)})")
        raise ConfigError(
            f"paper_heldout_users = {held_out!r} {what}, but {len(users)} user(s) are left after the paper "
            f"protocol's filters (paper_rating_threshold, paper_min_user_interactions): validation, test and "
            f"training each need at least one user. Set paper_heldout_users to a count between 1 and "
            f"{max(1, (len(users) - 1) // 2)}, or loosen the filters."
        )
    permuted = rng.permutation(users)
    phase_users = {"test": permuted[:n_held], "valid": permuted[n_held : 2 * n_held]}
    train_users = permuted[2 * n_held :]
    train = inter[inter[uid].isin(train_users)]
    train_items = np.unique(train[iid].to_numpy())
    parts = {}
    for phase, chosen in phase_users.items():
        rows = inter[inter[uid].isin(chosen) & inter[iid].isin(train_items)]
        # A random key per row ranked within its user picks floor(f * m) targets without a loop.
        order = pd.Series(rng.random_sample(len(rows)), index=rows.index).groupby(rows[uid].to_numpy()).rank(method="first") - 1
        counts = rows[uid].map(rows[uid].value_counts())
        is_target = order.to_numpy() < np.floor(target_fraction * counts.to_numpy())
        parts[phase] = (rows[~is_target], rows[is_target])
    return train, parts, train_items


def _csr(rows: pd.DataFrame, uid: str, iid: str, users: np.ndarray, n_items: int) -> sp.csr_matrix:
    position = pd.Series(np.arange(len(users)), index=users)
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (position[rows[uid].to_numpy()].to_numpy(), rows[iid].to_numpy())),
        shape=(len(users), n_items),
    )


def paper_split(dataset, config) -> PaperSplit:
    """Split a filtered RecBole Dataset (before ``build``) by users, as the paper protocol does."""
    uid, iid = dataset.uid_field, dataset.iid_field
    inter = dataset.inter_feat
    train, parts, train_items = split_users(
        inter, uid, iid, config["paper_heldout_users"], config["paper_target_fraction"], config["seed"]
    )
    excluded = np.setdiff1d(np.arange(1, dataset.item_num), train_items)
    held = {}
    logger = getLogger()
    for phase, (fold_in, targets) in parts.items():
        users = np.unique(targets[uid].to_numpy())  # users with at least one target
        skipped = len(np.unique(fold_in[uid].to_numpy())) - len(users)
        if skipped > 0:
            logger.info(f"paper protocol: {skipped} {phase} users have too few items for a target and are not scored")
        fold_in = fold_in[fold_in[uid].isin(users)]
        held[phase] = HeldOutUsers(
            users=users,
            fold_in=_csr(fold_in, uid, iid, users, dataset.item_num),
            targets=_csr(targets, uid, iid, users, dataset.item_num),
            excluded_items=excluded,
            batch_size=max(1, config["eval_batch_size"] // dataset.item_num),
        )
    empty = [phase for phase in ("valid", "test") if not held[phase]]
    if empty:
        # Evaluating no user gives no metrics at all (test result None, exit 0): a wrong result.
        fraction = config["paper_target_fraction"]
        raise ConfigError(
            f"Data set '{config['dataset']}', paper protocol: no {' and no '.join(PHASE_NAMES[p] for p in empty)} user "
            f"is left to score. "
            f"A held-out user is scored on floor(paper_target_fraction x m) of their m interactions with "
            f"training items (paper_target_fraction = {fraction}), so needs m >= {math.ceil(1 / fraction)}; "
            f"the {len(parts[empty[0]][0][uid].unique())} {PHASE_NAMES[empty[0]]} user(s) held out (paper_heldout_users = "
            f"{config['paper_heldout_users']!r}) have fewer. Hold out more users, raise paper_target_fraction, "
            f"or keep users with more interactions (paper_min_user_interactions)."
        )
    model_inter = pd.concat([train, parts["valid"][0], parts["test"][0]])
    model_dataset = dataset.copy(model_inter)
    train_dataset = dataset.copy(train)
    for part in (model_dataset, train_dataset):
        part._change_feat_format()
    model_dataset.training_users = np.unique(train[uid].to_numpy())
    logger.info(
        f"paper protocol: {len(model_dataset.training_users)} training users, {len(held['valid'].users)} validation "
        f"and {len(held['test'].users)} test users scored, {len(train_items)} items"
    )
    return PaperSplit(model_dataset, train_dataset, held["valid"], held["test"])
