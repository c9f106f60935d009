"""VBPR: the score of the paper, multi-negative BPR, feature loading shared with AD-DRL."""

import pytest
import torch

from model_contract import FAST, ModelContract
from recbole_disentangle.config import Config
from recbole_disentangle.data import synthetic_multimodal
from recbole_disentangle.errors import ConfigError, DatasetError
from recbole_disentangle.quick_start import build

NEGATIVES = {"distribution": "uniform", "sample_num": 2, "alpha": 1.0, "dynamic": False, "candidate_num": 0}


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    synthetic_multimodal.write(root, seed=1)
    return root


class TestVBPRContract(ModelContract):
    """Trains on the planted multimodal data set (text + image features)."""

    model_name = "VBPR"
    dataset = "planted-multimodal"
    epochs = 3  # test NDCG@10 0.2416 vs popularity 0.1325 (seeds 1, 2: 0.2216 vs 0.1292, 0.2294 vs 0.1150)

    @pytest.fixture(scope="class", autouse=True)
    def _data(self, tmp_path_factory):
        root = tmp_path_factory.mktemp("vbpr-data")
        synthetic_multimodal.write(root, seed=2)
        type(self).settings = {"data_path": str(root), "learning_rate": 0.01, "train_batch_size": 4096}


def config(planted_dir, **settings):
    return Config("VBPR", "planted-multimodal", config_dict={
        **FAST, "data_path": str(planted_dir), "embedding_size": 16, "train_neg_sample_args": NEGATIVES, **settings})


def test_score_is_the_papers_with_the_concatenated_normalised_features(planted_dir, workdir):
    *_, model = build(config(planted_dir))
    assert model.features.shape == (model.n_items, 32 + 48)
    assert torch.allclose(model.features[1:].norm(dim=1), torch.full((model.n_items - 1,), 2 ** 0.5), atol=1e-5)
    users, items = torch.tensor([1, 2]), torch.tensor([3, 7])
    with torch.no_grad():
        f = model.features[items]
        expected = ((model.gamma_user(users) * model.gamma_item(items)).sum(1)
                    + (model.theta_user(users) * (f @ model.projection.weight.T)).sum(1)
                    + model.item_bias(items).squeeze(1) + f @ model.feature_bias.weight.squeeze(0))
        full = model.full_sort_predict({"user_id": users}).view(2, -1)
    assert torch.allclose(model.predict({"user_id": users, "item_id": items}), expected, atol=1e-5)
    assert torch.allclose(full[[0, 1], items], expected, atol=1e-5)
    assert model.gamma_user.embedding_dim + model.theta_user.embedding_dim == 16  # same budget as BPR's 16


def test_bpr_loss_averages_every_positive_negative_pair(planted_dir, workdir):
    _, train_data, _, _, model = build(config(planted_dir, reg_weight=0.0))
    batch = next(iter(train_data))
    users, pos, neg = batch["user_id"], batch["item_id"], batch["neg_item_id"]  # row = one (pos, neg) pair
    with torch.no_grad():
        diff = model.pair_scores(users, pos) - model.pair_scores(users, neg)
        expected = torch.nn.functional.softplus(-diff).mean()
        assert model.calculate_loss(batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_one_modality_or_a_missing_one(planted_dir, workdir):
    *_, model = build(config(planted_dir, modalities=["image"]))
    assert model.modalities == ["image"] and model.features.shape[1] == 48
    with pytest.raises(DatasetError, match="modality 'text' needs the item features 'titles'"):
        build(config(planted_dir, feature_names={"text": "titles"}))
    *_, model = build(config(planted_dir, feature_names={"text": "titles"}, missing_modality="skip"))
    assert model.modalities == ["image"]
    with pytest.raises(DatasetError, match="VBPR without features is BPR"):
        build(config(planted_dir, feature_names={"text": "a", "image": "b"}, missing_modality="skip"))


@pytest.mark.parametrize("settings, key", [({"modalities": ["id"]}, "modalities"), ({"embedding_size": 1}, "embedding_size"),
                                           ({"reg_weight": -1.0}, "reg_weight")])
def test_invalid_settings(planted_dir, workdir, settings, key):
    with pytest.raises(ConfigError, match=key):
        config(planted_dir / "nowhere", **settings)
