"""RecBole's Dataset with its per-interaction Python loops replaced by array code (issue 14).

RecBole 1.2.1 prepares a data set with loops over every interaction or user: the ``.inter``
file is parsed by pandas' Python engine, the per-user ratio and leave-one-out splits group rows
in a dict of lists (``_grouped_index``), and ``history_item_matrix`` (RecBole's MultiVAE,
MultiDAE and MacridVAE read it) fills its matrix one interaction at a time. At the ML-20M shape
(10M interactions) that is minutes of a 2-core machine's time. :class:`ScalableDataset` does the
same work with sorts and index arithmetic and returns the same rows, in the same order, and the
same matrices: ``tests/data/test_scalable.py`` compares each method with RecBole's own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from recbole.data.dataset import Dataset
from recbole.utils import FeatureSource, FeatureType


def grouped_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row order, group sizes) grouping rows as RecBole's ``_grouped_index`` does: groups in the
    order of their key's first row, rows within a group in their original order."""
    _, first_row, group_of_row, sizes = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    group_rank = np.empty(len(first_row), dtype=np.int64)
    by_first_row = np.argsort(first_row, kind="stable")
    group_rank[by_first_row] = np.arange(len(first_row))
    order = np.argsort(group_rank[group_of_row.reshape(-1)], kind="stable")
    return order, sizes[by_first_row]


def position_in_group(sizes: np.ndarray) -> np.ndarray:
    """For rows laid out group after group (``sizes`` each): each row's position in its group."""
    starts = np.cumsum(sizes) - sizes
    return np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(starts, sizes)


def split_counts(totals: np.ndarray, ratios: list[float]) -> np.ndarray:
    """RecBole's ``_calcu_split_ids`` for many groups at once: (groups, parts) row counts.

    Every part but the first gets floor(ratio x total); a part whose share is below one row gets
    one row taken from the first part, last part first, while the first keeps more than one.
    """
    totals = np.asarray(totals, dtype=np.int64)
    counts = np.empty((len(totals), len(ratios)), dtype=np.int64)
    shares = [ratio * totals.astype(np.float64) for ratio in ratios]  # the same double products as int(ratio * tot)
    for part in range(1, len(ratios)):
        counts[:, part] = np.floor(shares[part])
    counts[:, 0] = totals - counts[:, 1:].sum(axis=1)
    for i in range(1, len(ratios)):
        bump = (counts[:, 0] > 1) & (shares[-i] > 0) & (shares[-i] < 1)
        counts[bump, -i] += 1
        counts[bump, 0] -= 1
    return counts


def parts_by_position(order: np.ndarray, sizes: np.ndarray, bounds: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """Row indices of each part: a row goes to the part whose [start, end) holds its position in
    its group; ``bounds`` (groups, parts - 1) are the ends of all parts but the last."""
    position = position_in_group(sizes)
    part_of_row = np.zeros(len(order), dtype=np.int8)
    for end in bounds.T:  # one column at a time: a (rows, parts) array would cost 10M x parts x 8 bytes
        part_of_row += position >= np.repeat(end, sizes)
    return [order[part_of_row == part] for part in range(n_parts)]


def ratio_split_rows(keys: np.ndarray | None, n_rows: int, ratios: list[float]) -> list[np.ndarray]:
    """Row indices of each part of RecBole's ``split_by_ratio`` (``ratios`` already normalised)."""
    if keys is None:
        order, sizes = np.arange(n_rows, dtype=np.int64), np.array([n_rows], dtype=np.int64)
    else:
        order, sizes = grouped_order(keys)
    bounds = np.cumsum(split_counts(sizes, ratios), axis=1)[:, :-1]
    return parts_by_position(order, sizes, bounds, len(ratios))


def leave_one_out_rows(keys: np.ndarray, leave_one_num: int) -> list[np.ndarray]:
    """Row indices of RecBole's ``_split_index_by_leave_one_out``: each group's last
    min(leave_one_num, size - 1) rows go one each to the last parts, the rest to the first."""
    order, sizes = grouped_order(keys)
    left_out = np.minimum(leave_one_num, sizes - 1)
    kept = sizes - left_out
    # Parts 1 .. leave_one_num - left_out are empty, each later part holds one row: part q ends at
    # kept + max(q - (leave_one_num - left_out), 0).
    bounds = np.stack([kept + np.maximum(part - (leave_one_num - left_out), 0) for part in range(leave_one_num)], axis=1)
    return parts_by_position(order, sizes, bounds, leave_one_num + 1)


def history_arrays(row_ids: np.ndarray, col_ids: np.ndarray, values: np.ndarray, row_num: int, col_num: int):
    """RecBole's ``_history_matrix`` fill: each row's first ``col_num`` entries, in the given order."""
    order = np.argsort(row_ids, kind="stable")
    lengths = np.bincount(row_ids, minlength=row_num)
    position = position_in_group(lengths)
    keep = position < col_num
    rows, position = row_ids[order][keep], position[keep]
    # np.zeros leaves untouched pages unmapped: RecBole's dense matrices (users x the longest
    # history) cost memory only for the rows' filled part. float32 as RecBole's FloatTensor ends.
    history_matrix = np.zeros((row_num, col_num), dtype=np.int64)
    history_value = np.zeros((row_num, col_num), dtype=np.float32)
    history_matrix[rows, position] = col_ids[order][keep]
    history_value[rows, position] = values[order][keep]
    return history_matrix, history_value, np.minimum(lengths, col_num)


class ScalableDataset(Dataset):
    """RecBole's Dataset, its loops replaced; same results (module docstring)."""

    def _load_feat(self, filepath, source):
        """The ``.inter`` file with pandas' C parser when it can read it as the Python one does:
        a one-character separator and no sequence fields (RecBole splits those itself)."""
        fields = self._c_parser_fields(filepath, source)
        if fields is None:
            return super()._load_feat(filepath, source)
        columns, usecols, dtype = [], [], {}
        for field, ftype, header_name in fields:
            self.field2source[field], self.field2type[field], self.field2seqlen[field] = source, ftype, 1
            if ftype == FeatureType.FLOAT:
                self.field2bucketnum[field] = 2
            columns.append(field)
            usecols.append(header_name)
            dtype[header_name] = np.float64 if ftype == FeatureType.FLOAT else str
        # round_trip: floats parsed as Python's float() parses them, as the Python engine does.
        df = pd.read_csv(filepath, delimiter=self.config["field_separator"], usecols=usecols, dtype=dtype,
                         encoding=self.config["encoding"], engine="c", float_precision="round_trip")
        df.columns = columns
        return df

    def _c_parser_fields(self, filepath, source):
        """[(field, type, header name)] of the columns to load, or None where RecBole's own
        reader must run (not the .inter file, a regex separator, sequence fields, no columns)."""
        separator = self.config["field_separator"]
        if source is not FeatureSource.INTERACTION or not isinstance(separator, str) or len(separator) != 1:
            return None
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None
        with open(filepath, "r", encoding=self.config["encoding"]) as f:
            head = f.readline()[:-1]
        fields = []
        for header_name in head.split(separator):
            field, _, type_name = header_name.partition(":")
            try:
                ftype = FeatureType(type_name)
            except ValueError:
                return None  # RecBole's reader raises its own error
            if (load_col is not None and field not in load_col) or (unload_col is not None and field in unload_col):
                continue
            if ftype not in (FeatureType.TOKEN, FeatureType.FLOAT) or header_name.count(":") != 1:
                return None
            fields.append((field, ftype, header_name))
        return fields or None

    def split_by_ratio(self, ratios, group_by=None):
        """RecBole's ``split_by_ratio``: the same rows in the same order, without its per-row loop."""
        self.logger.debug(f"split by ratios [{ratios}], group_by=[{group_by}]")
        total = sum(ratios)
        ratios = [ratio / total for ratio in ratios]
        keys = None if group_by is None else self.inter_feat[group_by].numpy()
        return self._parts(ratio_split_rows(keys, len(self.inter_feat), ratios))

    def leave_one_out(self, group_by, leave_one_mode):
        """RecBole's ``leave_one_out``: the same rows in the same order, without its per-row loop."""
        self.logger.debug(f"leave one out, group_by=[{group_by}], leave_one_mode=[{leave_one_mode}]")
        if group_by is None:
            raise ValueError("leave one out strategy require a group field")
        keys = self.inter_feat[group_by].numpy()
        empty = np.zeros(0, dtype=np.int64)
        if leave_one_mode == "valid_and_test":
            parts = leave_one_out_rows(keys, 2)
        elif leave_one_mode == "valid_only":
            parts = [*leave_one_out_rows(keys, 1), empty]
        elif leave_one_mode == "test_only":
            train, test = leave_one_out_rows(keys, 1)
            parts = [train, empty, test]
        else:
            raise NotImplementedError(f"The leave_one_mode [{leave_one_mode}] has not been implemented.")
        return self._parts(parts)

    def _parts(self, rows: list[np.ndarray]) -> list[Dataset]:
        self._drop_unused_col()
        # A tensor index, not a list: RecBole's list of 10M Python ints alone costs seconds.
        return [self.copy(self.inter_feat[torch.from_numpy(np.ascontiguousarray(part, dtype=np.int64))]) for part in rows]

    def _history_matrix(self, row, value_field=None, max_history_len=None):
        """RecBole's ``_history_matrix``, filled with array code; the same shuffle (one
        ``torch.randperm``, so the random state afterwards is RecBole's too) and the same matrices."""
        self._check_field("uid_field", "iid_field")
        shuffled = torch.randperm(len(self.inter_feat))
        user_ids = self.inter_feat[self.uid_field][shuffled].numpy()
        item_ids = self.inter_feat[self.iid_field][shuffled].numpy()
        if value_field is None:
            values = np.ones(len(shuffled))
        elif value_field not in self.inter_feat:
            raise ValueError(f"Value_field [{value_field}] should be one of `inter_feat`'s features.")
        else:
            values = self.inter_feat[value_field][shuffled].numpy()
        if row == "user":
            row_num, max_col_num, row_ids, col_ids = self.user_num, self.item_num, user_ids, item_ids
        else:
            row_num, max_col_num, row_ids, col_ids = self.item_num, self.user_num, item_ids, user_ids
        max_inter_num = int(np.bincount(row_ids, minlength=row_num).max())
        col_num = max_inter_num if max_history_len is None else min(max_history_len, max_inter_num)
        if col_num > max_col_num * 0.2:
            self.logger.warning(
                f"Max value of {row}'s history interaction records has reached "
                f"{col_num / max_col_num * 100}% of the total."
            )
        history_matrix, history_value, history_len = history_arrays(row_ids, col_ids, values, row_num, col_num)
        return torch.from_numpy(history_matrix), torch.from_numpy(history_value), torch.from_numpy(history_len.astype(np.int64))
