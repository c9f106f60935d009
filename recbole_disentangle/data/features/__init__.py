"""Item features: their storage format (:mod:`.storage`), their extraction from images and
texts (:mod:`.extract`), and the command that runs an extractor (:mod:`.command`,
``python -m recbole_disentangle.data.features image|text ...``).

Reading a feature set into a loaded data set, aligned to its internal item ids, is the
multimodal data set's work: :mod:`recbole_disentangle.data.multimodal`.
"""

from .storage import feature_folder, feature_paths, read_item_features, save_item_features

__all__ = ["feature_folder", "feature_paths", "read_item_features", "save_item_features"]
