"""The data set of the models that read item side information: item features and attributes.

As RecBole-GNN gives its graph models a Dataset subclass that builds their graph
(``GeneralGraphDataset``), the models that read item features or item attributes (VBPR, AD-DRL,
SEM-MacridVAE) declare :class:`MultimodalDataset` as their ``dataset_class``;
:func:`recbole_disentangle.data.dataset.create_dataset` builds it, and the model asks it for
arrays aligned to RecBole's internal item ids, never for files. Feature sets are read from their
memory-mapped ``.npy`` files (:mod:`recbole_disentangle.data.features.storage`) and aligned once
per loaded data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from logging import getLogger

import numpy as np
import torch
import torch.nn.functional as F
from recbole.data.dataset import Dataset
from recbole.utils import FeatureType

from recbole_disentangle.data.attributes import AttributeSpec, ItemAttributes, item_attributes
from recbole_disentangle.data.features.storage import feature_folder, feature_paths, read_item_features
from recbole_disentangle.data.scalable import ScalableDataset
from recbole_disentangle.errors import DatasetError

FEATURE_MODALITIES = ("text", "image")
MISSING_POLICIES = ("error", "skip")


@dataclass
class ItemFeatures:
    """Features aligned to RecBole's internal item ids (row 0 is the padding item)."""

    values: torch.Tensor  # (item_num, F) float32; zeros where an item has no feature
    present: torch.Tensor  # (item_num,) bool

    @property
    def dim(self) -> int:
        return self.values.shape[1]


def load_item_features(dataset, name: str, expected_dim: int | None = None) -> ItemFeatures:
    """The feature set ``name`` of ``dataset`` (a RecBole Dataset), row i = internal item id i.

    The files are looked up in ``feature_dir`` (plugin setting; default the data set's data_path).
    Without them, a float_seq field ``name`` of the .item file is used (small data only).

    Feature rows of items the data set does not hold (filtered out, say) are skipped and
    counted in the log; items without a row get zeros and ``present=False``, also counted.
    Errors: no id in common, a dimension other than ``expected_dim``, NaN or infinite values.
    """
    config = dataset.config
    array_path, _ = feature_paths(feature_folder(config), config["dataset"], name)
    if not array_path.is_file() and _is_item_float_seq(dataset, name):
        return _item_column_features(dataset, name, expected_dim)
    ids, array = read_item_features(feature_folder(config), config["dataset"], name)
    if expected_dim is not None and array.shape[1] != expected_dim:
        raise DatasetError(f"Item features '{name}' have {array.shape[1]} dimensions; {expected_dim} expected.")
    token_to_id = dataset.field2token_id[dataset.iid_field]
    internal = np.array([token_to_id.get(token, -1) for token in ids], dtype=np.int64)
    known = internal >= 0
    if not known.any():
        raise DatasetError(
            f"None of the {len(ids)} item ids of the features '{name}' (first: {', '.join(ids[:3])}) is an "
            f"item of {config['dataset']} (first: {', '.join(list(token_to_id)[1:4])})."
        )
    rows = np.flatnonzero(known)
    values = np.zeros((dataset.item_num, array.shape[1]), dtype=np.float32)
    values[internal[rows]] = array[rows]
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        first = dataset.id2token(dataset.iid_field, int(np.flatnonzero(bad)[0]))
        raise DatasetError(f"Item features '{name}' hold NaN or infinite values (item {first}, among {int(bad.sum())}).")
    present = np.zeros(dataset.item_num, dtype=bool)
    present[internal[rows]] = True
    logger = getLogger()
    if (~known).any():
        logger.info(f"Item features '{name}': {int((~known).sum())} rows for items not in the data set were skipped.")
    n_without = int((~present[1:]).sum())
    if n_without:
        logger.warning(f"Item features '{name}': {n_without} of {dataset.item_num - 1} items have none (zeros used).")
    return ItemFeatures(torch.from_numpy(values), torch.from_numpy(present))


def _is_item_float_seq(dataset, name: str) -> bool:
    return dataset.item_feat is not None and dataset.field2type.get(name) == FeatureType.FLOAT_SEQ and name in dataset.item_feat


def _item_column_features(dataset, name: str, expected_dim: int | None) -> ItemFeatures:
    """Features from a float_seq column ``name`` of the .item file: fine for small data (the
    text parse is slow for 4096-d vectors), used only when no ``.npy`` feature set of that name
    exists. An empty cell means no feature; other lengths than the column's longest are errors."""
    column = dataset.item_feat[name]
    if isinstance(column, torch.Tensor):  # a prepared data set: padded (item_num, L) tensor
        values = column.numpy().astype(np.float32)
        lengths = np.full(len(values), values.shape[1])
        lengths[~values.any(axis=1)] = 0
        ids = dataset.item_feat[dataset.iid_field].numpy()
    else:  # straight from create_dataset: a DataFrame of lists
        rows = [np.asarray(v, dtype=np.float32).ravel() for v in column]
        lengths = np.array([len(v) for v in rows])
        dim = int(lengths.max(initial=0))
        values = np.zeros((len(rows), dim), dtype=np.float32)
        for i, v in enumerate(rows):
            values[i, : len(v)] = v
        ids = dataset.item_feat[dataset.iid_field].to_numpy()
    dim = values.shape[1]
    short = (lengths > 0) & (lengths != dim)
    if short.any():
        raise DatasetError(f".item column '{name}': every vector must have {dim} values; {int(short.sum())} items have fewer.")
    if expected_dim is not None and dim != expected_dim:
        raise DatasetError(f"Item features '{name}' (.item column) have {dim} dimensions; {expected_dim} expected.")
    if not np.isfinite(values).all():
        raise DatasetError(f".item column '{name}' holds NaN or infinite values.")
    aligned = np.zeros((dataset.item_num, dim), dtype=np.float32)
    present = np.zeros(dataset.item_num, dtype=bool)
    aligned[ids] = values
    present[ids] = lengths > 0
    present[0] = False
    n_without = int((~present[1:]).sum())
    if n_without:
        getLogger().warning(f"Item features '{name}' (.item column): {n_without} of {dataset.item_num - 1} items have none (zeros used).")
    return ItemFeatures(torch.from_numpy(aligned), torch.from_numpy(present))


class MultimodalDataset(ScalableDataset):
    """RecBole's Dataset that also serves item features and item attributes, aligned to its
    internal item ids (row 0 is the padding item).

    A feature set is read and aligned once per loaded data set: the copies RecBole's split and the
    paper protocol make, and the runs of a sweep that reuse the data set, share the aligned arrays
    (treat them as read-only). Attributes are derived from the data set they are asked of, each
    time: the popularity rule counts that data set's interactions, which for the data set a model
    is built on are the training interactions.
    """

    def __init__(self, config):
        super().__init__(config)
        self._aligned_features: dict[tuple[str, str], ItemFeatures] = {}

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> MultimodalDataset:
        """A loaded data set of another class (one prepared for another model) as this class:
        the same data, shared as RecBole's ``Dataset.copy`` shares it."""
        adopted = cls.__new__(cls)
        adopted.__dict__.update(vars(dataset))
        adopted._aligned_features = {}
        return adopted

    def item_features(self, name: str) -> ItemFeatures:
        """The feature set ``name`` (see :func:`load_item_features`), aligned on first use."""
        key = (feature_folder(self.config), name)
        if key not in self._aligned_features:
            self._aligned_features[key] = load_item_features(self, name)
        return self._aligned_features[key]

    def modality_features(self, modalities) -> dict[str, torch.Tensor]:
        """{modality: (n_items, F) L2-normalised features} for the feature modalities asked for.

        Feature set names come from ``feature_names`` (default: the modality's name, i.e. files
        ``<dataset>.text.npy`` / ``.image.npy``). Items without a feature row get zeros. A missing
        feature set is a DatasetError saying what to do, or, with ``missing_modality: skip``, a
        warning and the run goes on without that modality.
        """
        config = self.config
        names = config["feature_names"] or {}
        features = {}
        for modality in modalities:
            if modality not in FEATURE_MODALITIES:
                continue
            name = names.get(modality, modality)
            try:
                loaded = self.item_features(name)
            except DatasetError as err:
                if config["missing_modality"] == "skip":
                    getLogger().warning(f"{config['model']}: modality '{modality}' switched off: {err}")
                    continue
                raise DatasetError(
                    f"{config['model']}: modality '{modality}' needs the item features '{name}' of "
                    f"{config['dataset']}: {err} Extract them (python -m recbole_disentangle.data.features "
                    f"{modality} ...), point feature_names: {{{modality}: NAME}} at an existing set, drop "
                    f"'{modality}' from modalities, or set missing_modality: skip."
                ) from None
            # Feature scales differ wildly between extractors (CNN activations vs unit sentence vectors).
            features[modality] = F.normalize(loaded.values, dim=1)
        return features

    def item_attributes(self, specs: list[AttributeSpec]) -> ItemAttributes:
        """The labels of the attributes ``specs`` (rules in :mod:`recbole_disentangle.data.attributes`).

        An attribute that cannot be derived (its field not loaded, no known value) is a
        DatasetError, or, with ``missing_attribute: skip``, a warning and left out (its factor
        stays free).
        """
        derived = []
        for spec in specs:
            try:
                derived.append(item_attributes(self, [spec]))
            except DatasetError as err:
                if self.config["missing_attribute"] != "skip":
                    raise
                getLogger().warning(f"{self.config['model']}: attribute '{spec.name}' switched off (its factor stays free): {err}")
        if not derived:
            return item_attributes(self, [])
        return ItemAttributes([a.names[0] for a in derived], torch.cat([a.labels for a in derived], dim=1),
                              [a.classes[0] for a in derived])
