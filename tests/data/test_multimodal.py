"""The multimodal models' data set: the model's declaration picks it, features are aligned once
per loaded data set and shared by its copies, and a data set loaded for another model is taken over."""

import numpy as np
import pytest
from recbole.data.dataset import Dataset

from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.data.dataset import create_dataset, dataset_class, reuse_dataset
from recbole_disentangle.data.features import save_item_features
from recbole_disentangle.data.multimodal import MultimodalDataset
from recbole_disentangle.data.scalable import ScalableDataset
from recbole_disentangle.model.addrl import ADDRL
from recbole_disentangle.model.sem_macridvae import SEMMacridVAE
from recbole_disentangle.model.vbpr import VBPR


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    save_item_features(folder, "ml-100k", "text", ["1", "2", "50"], np.eye(3, 4, dtype=np.float32) * 3)
    return {**FAST, "feature_dir": str(folder), "modalities": ["text"]}


def test_the_multimodal_models_declare_the_multimodal_data_set(settings):
    assert VBPR.dataset_class is ADDRL.dataset_class is SEMMacridVAE.dataset_class is MultimodalDataset
    assert dataset_class(Config("VBPR", "ml-100k", config_dict=settings)) is MultimodalDataset
    # RecBole's own rule, whose plain Dataset becomes its array-code twin (same results, test_scalable.py)
    assert dataset_class(Config("BPR", "ml-100k", config_dict=FAST)) is ScalableDataset
    assert issubclass(ScalableDataset, Dataset) and issubclass(MultimodalDataset, ScalableDataset)


def test_features_are_aligned_once_and_shared_by_copies(settings):
    dataset = create_dataset(Config("VBPR", "ml-100k", config_dict=settings))
    assert type(dataset) is MultimodalDataset
    features = dataset.item_features("text")
    assert int(features.present.sum()) == 3
    train = dataset.build()[0]
    assert train.item_features("text") is features  # RecBole's split copies share the aligned arrays
    normalised = train.modality_features(["id", "text"])
    assert list(normalised) == ["text"]
    assert np.allclose(normalised["text"].norm(dim=1)[features.present].numpy(), 1.0)


def test_a_data_set_loaded_for_another_model_is_taken_over(settings):
    plain = create_dataset(Config("BPR", "ml-100k", config_dict=FAST))
    config = Config("VBPR", "ml-100k", config_dict=settings)
    reused = reuse_dataset(plain, config)
    assert type(reused) is MultimodalDataset and type(plain) is ScalableDataset
    assert reused.config is config and reused.item_num == plain.item_num
    assert int(reused.item_features("text").present.sum()) == 3
