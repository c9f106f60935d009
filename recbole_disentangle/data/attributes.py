"""Item attributes as discrete levels: the rules, shared by the Amazon converter and the models.

AD-DRL (arXiv 2312.14433, Sec. 3.2.2) supervises each attribute factor with the item's
attribute *value*, so every attribute must be a small set of classes. The rules, written once:

* **category** (``first_token``): the first token of a ``token_seq`` field (ml-100k genres are
  listed in u.item's fixed genre order, so a film's first genre is the earliest in that order);
  a plain ``token`` field is taken as it is. Amazon: the leaf (last element) of the item's
  first category path (:func:`leaf_category`).
* **release decade** (``decade``): a year token ``1995`` becomes ``1990s``; no year -> unknown.
* **popularity** (``popularity``): the item's number of *training* interactions (the data set
  the model is built on, so no valid/test interaction leaks in), cut into ``levels`` quantile
  levels (:func:`quantile_levels`); Amazon writes the same rule over the k-core interactions.
* **price** (``quantile``): a float field cut into ``levels`` quantile levels among the items
  that have a value; non-positive prices -> unknown (write a missing price as -1: RecBole
  replaces an empty float cell by the column mean).
* **brand** (``top``): the ``levels`` most frequent values keep their name, all others become
  ``other`` (:func:`top_n_or_other`); missing -> unknown.
* ``token``: a field already holding the discrete value (what the Amazon converter writes).

Unknown values get the label -1 and are left out of the attribute loss and its accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from recbole_disentangle.data.fields import loaded_item_fields
from recbole_disentangle.errors import ConfigError, DatasetError

UNKNOWN = "unknown"
OTHER = "other"
RULES = ("token", "first_token", "decade", "popularity", "quantile", "top")


def quantile_levels(values, levels: int) -> np.ndarray:
    """Level 0..levels-1 of each value by the quantiles of the known values; NaN -> -1.

    Ties never straddle a boundary (ranks are taken on the values, ``method="min"``), so equal
    values share a level; with few distinct values fewer than ``levels`` levels are used.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, -1, dtype=np.int64)
    known = np.isfinite(values)
    if known.any():
        ranks = pd.Series(values[known]).rank(method="min").to_numpy() - 1  # 0-based
        out[known] = np.minimum((ranks * levels / known.sum()).astype(np.int64), levels - 1)
    return out


def decade_of(years) -> list[str]:
    """'1995' -> '1990s'; anything without a 4-digit year -> 'unknown'."""
    out = []
    for year in years:
        text = str(year).strip()
        out.append(f"{text[:3]}0s" if len(text) >= 4 and text[:4].isdigit() else UNKNOWN)
    return out


def top_n_or_other(values: Sequence[str | None], n: int) -> list[str]:
    """The ``n`` most frequent values keep their name (ties: alphabetical), the rest 'other'."""
    clean = [None if v is None or str(v).strip() in ("", "nan") else str(v).strip() for v in values]
    counts = pd.Series([v for v in clean if v is not None], dtype=object).value_counts()
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    keep = {value for value, _ in ordered[:n]}
    return [UNKNOWN if v is None else (v if v in keep else OTHER) for v in clean]


def leaf_category(paths) -> str:
    """The leaf of the first category path: [['Baby', 'Feeding', 'Bibs']] -> 'Bibs'.

    Accepts a 2014-style list of paths or a 2018-style single path (list of str).
    """
    if not paths:
        return UNKNOWN
    first = paths[0]
    path = first if isinstance(first, list) else paths
    path = [p for p in path if str(p).strip()]
    return str(path[-1]).strip() if path else UNKNOWN


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute: a name, the item field it is read from, the rule, levels for binned rules."""

    name: str
    field: str | None
    rule: str
    levels: int = 5

    @classmethod
    def parse(cls, entry, model: str = "AD-DRL") -> AttributeSpec:
        if not isinstance(entry, dict) or "name" not in entry or "rule" not in entry:
            raise ConfigError(
                f"{model}: every entry of 'attributes' must be a mapping with name, rule and (except "
                f"for rule popularity) field, e.g. {{name: decade, field: release_year, rule: decade}}; got {entry!r}."
            )
        rule = entry["rule"]
        if rule not in RULES:
            raise ConfigError(f"{model}: attribute {entry['name']!r} has rule {rule!r}; choose one of {', '.join(RULES)}.")
        field = entry.get("field")
        if rule != "popularity" and not field:
            raise ConfigError(f"{model}: attribute {entry['name']!r} (rule {rule}) needs a 'field'.")
        levels = entry.get("levels", 5)
        if not isinstance(levels, int) or isinstance(levels, bool) or levels < 2:
            raise ConfigError(f"{model}: attribute {entry['name']!r}: 'levels' must be an integer >= 2, not {levels!r}.")
        return cls(str(entry["name"]), field, rule, levels)


@dataclass
class ItemAttributes:
    """Attribute labels aligned to RecBole's internal item ids (row 0 = padding, label -1)."""

    names: list[str]
    labels: torch.Tensor  # (item_num, A) long, -1 = unknown
    classes: list[list[str]]  # value names per attribute, index = label

    @property
    def n_classes(self) -> list[int]:
        return [len(c) for c in self.classes]


def _require_field(dataset, field: str) -> None:
    """Raise the clear error when the attribute's item field was not loaded."""
    if dataset.item_feat is None or field not in dataset.item_feat.columns:
        have = loaded_item_fields(dataset)
        raise DatasetError(
            f"Data set {dataset.dataset_name}: the attribute field '{field}' is not loaded from "
            f"{dataset.dataset_name}.item (loaded item fields: {', '.join(have) or 'none'}). Add it to "
            f"load_col: {{item: [...]}}, or drop the attribute (missing_attribute: skip runs without it)."
        )


def _field_values(dataset, field: str) -> list[str]:
    """The item field as text per internal item id (token_seq joined by spaces)."""
    _require_field(dataset, field)
    feat = dataset.item_feat
    column = _column(feat, field)
    ftype = dataset.field2type[field].value
    if ftype in ("token", "token_seq"):
        id2token = dataset.field2id_token[field]
        if ftype == "token":
            return [str(id2token[int(i)]) if i > 0 else "" for i in column]
        return [" ".join(str(id2token[int(t)]) for t in np.ravel(row) if t > 0) for row in column]
    return [str(v) for v in column]


def _column(feat, field: str) -> list:
    """A field as a Python list, from a pandas frame (before ``build()``) or an Interaction (after)."""
    column = feat[field]
    return column.tolist() if isinstance(column, (torch.Tensor, pd.Series)) else list(column)


def _labels_from_text(values: list[str]) -> tuple[np.ndarray, list[str]]:
    classes = sorted({v for v in values if v not in ("", UNKNOWN)})
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(v, -1) for v in values], dtype=np.int64), classes


def derive_attribute(dataset, spec: AttributeSpec) -> tuple[np.ndarray, list[str]]:
    """Labels (item_num,) and class names of one attribute under its rule (module docstring)."""
    n = dataset.item_num
    if spec.rule == "popularity":
        counts = np.bincount(np.asarray(_column(dataset.inter_feat, dataset.iid_field), dtype=np.int64), minlength=n).astype(np.float64)
        counts[0] = np.nan  # padding item
        labels = quantile_levels(counts, spec.levels)
        return labels, [f"level{i}" for i in range(spec.levels)]
    if spec.rule == "quantile":
        _require_field(dataset, spec.field)
        raw = np.asarray(_column(dataset.item_feat, spec.field), dtype=np.float64)
        # RecBole fills an *empty* float with the field's mean, so missing prices must be written
        # non-positive (the Amazon converter writes -1); those are unknown here.
        raw = np.where(raw > 0, raw, np.nan)
        raw[0] = np.nan
        return quantile_levels(raw, spec.levels), [f"level{i}" for i in range(spec.levels)]
    values = _field_values(dataset, spec.field)
    if spec.rule == "first_token":
        values = [v.split(" ")[0] if v else "" for v in values]
    elif spec.rule == "decade":
        values = decade_of(values)
    elif spec.rule == "top":
        values = top_n_or_other([v or None for v in values], spec.levels)
    values[0] = ""  # padding item
    return _labels_from_text(values)


def item_attributes(dataset, specs: Sequence[AttributeSpec]) -> ItemAttributes:
    """Labels of every attribute in ``specs`` for every item of ``dataset``."""
    columns, classes = [], []
    for spec in specs:
        labels, names = derive_attribute(dataset, spec)
        if (labels >= 0).sum() == 0:
            raise DatasetError(f"Data set {dataset.dataset_name}: attribute '{spec.name}' has no known value for any item.")
        columns.append(labels)
        classes.append(names)
    labels = np.stack(columns, axis=1) if columns else np.zeros((dataset.item_num, 0), dtype=np.int64)
    return ItemAttributes([s.name for s in specs], torch.from_numpy(labels), classes)
