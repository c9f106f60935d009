"""Item feature arrays stored beside the atomic files: the storage format.

Storage (one feature set called NAME of data set DATA):
    <data_path>/DATA.NAME.npy   float32 array (rows, F), NumPy .npy: memory-mapped on load
    <data_path>/DATA.NAME.ids   one item token per line, the row order of the array

A binary array loads 130k x 4096 floats in seconds where a text column of the .item file would
take minutes to parse; the .ids file keeps the array independent of RecBole's internal ids,
which change with filtering. Aligning a feature set to a loaded data set's internal ids is the
data set's work (:mod:`recbole_disentangle.data.multimodal`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from recbole_disentangle.errors import DatasetError


def feature_paths(data_path: str | os.PathLike, dataset_name: str, name: str) -> tuple[Path, Path]:
    base = Path(data_path) / f"{dataset_name}.{name}"
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".ids")


def save_item_features(data_path, dataset_name: str, name: str, item_ids, array: np.ndarray) -> tuple[Path, Path]:
    """Write ``array`` (rows follow ``item_ids``) atomically; returns the two paths."""
    array = np.asarray(array, dtype=np.float32)
    item_ids = [str(i) for i in item_ids]
    if array.ndim != 2 or array.shape[0] != len(item_ids):
        raise ValueError(f"features must be (len(item_ids), F); got {array.shape} for {len(item_ids)} ids")
    array_path, ids_path = feature_paths(data_path, dataset_name, name)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_array, tmp_ids = array_path.with_suffix(".npy.part"), ids_path.with_suffix(".ids.part")
    with open(tmp_array, "wb") as f:
        np.save(f, array)
    tmp_ids.write_text("".join(f"{i}\n" for i in item_ids), encoding="utf-8")
    os.replace(tmp_array, array_path)
    os.replace(tmp_ids, ids_path)
    return array_path, ids_path


def read_item_features(data_path, dataset_name: str, name: str) -> tuple[list[str], np.ndarray]:
    """(item tokens, memory-mapped array) as stored, after checking the two files agree."""
    array_path, ids_path = feature_paths(data_path, dataset_name, name)
    missing = [str(p) for p in (array_path, ids_path) if not p.is_file()]
    if missing:
        raise DatasetError(
            f"Item features '{name}' of {dataset_name}: missing {', '.join(missing)}. Make them with "
            f"`python -m recbole_disentangle.data.features image|text --dataset {dataset_name} --name {name} ...`, "
            "or point --feature_dir at the folder that holds them."
        )
    try:
        array = np.load(array_path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise DatasetError(f"{array_path} is not a NumPy .npy array file: {err}") from None
    ids = ids_path.read_text(encoding="utf-8").splitlines()
    if array.ndim != 2:
        raise DatasetError(f"{array_path} holds an array of shape {array.shape}; (items, dimensions) expected.")
    if array.shape[0] != len(ids):
        raise DatasetError(f"{array_path} has {array.shape[0]} rows but {ids_path} lists {len(ids)} item ids.")
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{ids_path} lists some item ids more than once.")
    return ids, array


def feature_folder(config) -> str:
    """Where ``config``'s feature arrays live: ``feature_dir`` if set, else the data set's data_path."""
    folder = config["feature_dir"] if "feature_dir" in config else None
    return os.path.expanduser(str(folder)) if folder else config["data_path"]
