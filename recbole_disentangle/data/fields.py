"""Field names: of an atomic file, and of a loaded data set's item features.

A leaf of the data layer (it imports nothing of this package), so that the attribute rules, the
converters and the loader can all name fields without importing one another.
"""

from __future__ import annotations

from pathlib import Path


def read_header(path: Path) -> list[str]:
    """Field names of an atomic file (``name:type`` columns of its first line)."""
    with open(path, encoding="utf-8") as f:
        return [column.split(":")[0] for column in f.readline().rstrip("\n").split("\t")]


def loaded_item_fields(dataset) -> list[str]:
    """The .item fields this data set loaded, besides the item id ([] without an .item file).

    For the "field not loaded" errors, which list what the user could name instead.
    """
    feat = dataset.item_feat
    return [] if feat is None else [c for c in feat.columns if c != dataset.iid_field]
