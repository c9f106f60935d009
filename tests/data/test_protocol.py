"""The paper protocol: user split, fold-in, metrics, and its wiring into training."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.data.dataset import create_dataset
from recbole_disentangle.evaluation.protocols import data_preparation
from recbole_disentangle.data.protocol import split_users
from recbole_disentangle.evaluation.metrics import ranking_metrics, summarise
from recbole_disentangle.errors import ConfigError


def toy_interactions(n_users=40, seed=0):
    rng = np.random.RandomState(seed)
    rows = [(u, i) for u in range(1, n_users + 1) for i in rng.choice(np.arange(1, 61), size=rng.randint(5, 30), replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_users_are_split_in_three_disjoint_parts_with_exact_seeded_fold_in():
    inter = toy_interactions()
    train, parts, train_items = split_users(inter, "user_id", "item_id", held_out=8, target_fraction=0.2, seed=7)
    groups = [set(train.user_id)] + [set(pd.concat(parts[p]).user_id) for p in ("valid", "test")]
    assert sum(map(len, groups)) == len(set.union(*groups)) == 40
    assert len(groups[1]) == len(groups[2]) == 8
    for fold_in, targets in parts.values():
        assert set(targets.item_id) <= set(train_items) and set(fold_in.item_id) <= set(train_items)
        assert not set(map(tuple, fold_in.values)) & set(map(tuple, targets.values))  # targets never in the input
        for user, count in pd.concat([fold_in, targets]).user_id.value_counts().items():
            assert (targets.user_id == user).sum() == math.floor(0.2 * count)
    again = split_users(inter, "user_id", "item_id", held_out=8, target_fraction=0.2, seed=7)
    assert again[1]["test"][1].equals(parts["test"][1])
    other = split_users(inter, "user_id", "item_id", held_out=8, target_fraction=0.2, seed=8)
    assert not set(other[1]["test"][1].user_id) == set(parts["test"][1].user_id)


def test_a_fraction_of_users_can_be_held_out():
    train, parts, _ = split_users(toy_interactions(), "user_id", "item_id", held_out=0.1, target_fraction=0.2, seed=0)
    assert len(set(parts["test"][0].user_id)) == 4 and len(set(train.user_id)) == 32


def test_metrics_on_hand_computed_cases():
    n_items = 200
    scores = torch.arange(n_items, 0, -1, dtype=torch.float).repeat(2, 1)  # item i ranked at position i
    targets = torch.zeros(2, n_items, dtype=torch.bool)
    targets[0, [0, 2, 150]] = True  # hits at ranks 1 and 3 of the top 100, one target beyond
    targets[1, :60] = True  # 60 targets, all at the top
    out = ranking_metrics(scores, targets)
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert out["ndcg@100"][0].item() == pytest.approx(dcg / idcg)
    assert out["recall@20"][0].item() == pytest.approx(2 / 3)
    assert out["ndcg@100"][1].item() == pytest.approx(1.0)
    # min(k, n) normalisation: 20 hits of 60 targets in the top 20 is a perfect Recall@20.
    assert out["recall@20"][1].item() == pytest.approx(1.0)
    assert out["recall@50"][1].item() == pytest.approx(1.0)
    summary = summarise(out)
    assert summary["recall@20"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-5)
    assert summary["recall@20_se"] == pytest.approx(np.std([2 / 3, 1], ddof=1) / math.sqrt(2), abs=1e-5)
    assert summary["users"] == 2


def test_masked_items_are_never_ranked():
    scores = torch.tensor([[9.0, 8.0, 7.0, 6.0]])
    targets = torch.tensor([[False, False, True, False]])
    assert ranking_metrics(scores, targets)["ndcg@100"].item() < 1
    scores[0, :2] = float("-inf")  # fold-in items
    assert ranking_metrics(scores, targets)["ndcg@100"].item() == pytest.approx(1.0)


@pytest.mark.parametrize("settings, key", [({"eval_protocol": "leave-one-out"}, "eval_protocol"),
                                          ({"eval_protocol": "paper", "paper_heldout_users": 0.6}, "paper_heldout_users"),
                                          ({"eval_protocol": "paper", "paper_target_fraction": 1.5}, "paper_target_fraction")])
def test_bad_protocol_settings_are_rejected(settings, key):
    with pytest.raises(ConfigError, match=key):
        Config("MacridVAE", "ml-100k", config_dict=settings)


@pytest.mark.parametrize("model", ["MacridVAE", "MultiVAE", "BPR"])
def test_paper_protocol_on_ml100k_trains_only_on_training_users(model):
    config = Config(model, "ml-100k", config_dict={**FAST, "eval_protocol": "paper", "paper_heldout_users": 50})
    assert config["val_interval"] == {"rating": "[4,inf)"} and config["valid_metric"] == "NDCG@100"
    dataset = create_dataset(config)
    raw = pd.read_csv(f"{config['data_path']}/ml-100k.inter", sep="\t")
    positive = raw[raw["rating:float"] >= 4]
    active = positive.groupby("user_id:token").size().loc[lambda n: n >= 5].index
    assert len(dataset.inter_feat) == positive["user_id:token"].isin(active).sum()  # ratings >= 4, users >= 5
    train_data, valid, test, model_dataset = data_preparation(config, dataset)
    held_out = set(valid.users) | set(test.users)
    assert len(valid.users) <= 50 and len(test.users) <= 50 and not set(valid.users) & set(test.users)
    trained_users = set(torch.cat([batch["user_id"] for batch in train_data]).tolist())
    if model == "BPR":  # needs a user id: the fold-in part of held-out users is trained on too
        assert held_out & trained_users
    else:
        assert not held_out & trained_users
    # The model reads fold-in rows, never targets.
    model_pairs = set(zip(model_dataset.inter_feat["user_id"].tolist(), model_dataset.inter_feat["item_id"].tolist()))
    targets = test.targets.tocoo()
    assert not {(int(test.users[r]), int(c)) for r, c in zip(targets.row, targets.col)} & model_pairs


def test_protocols_are_registered_objects_and_an_unknown_name_is_refused():
    from recbole_disentangle.evaluation.protocols import PROTOCOLS, PaperProtocol, get_protocol

    assert list(PROTOCOLS) == ["recbole", "paper"]
    assert isinstance(get_protocol("paper"), PaperProtocol)
    assert get_protocol("paper").metrics == ("ndcg@100", "recall@20", "recall@50")
    with pytest.raises(ConfigError, match="choose one of recbole, paper"):
        get_protocol("papr")


def test_a_new_ranking_metric_is_one_function():
    from recbole_disentangle.evaluation import metrics

    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    targets = torch.tensor([[False, True, False, True]])
    assert metrics.ranking_metrics(scores, targets, ["recall@2", "ndcg@4"])["recall@2"].item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="name@k"):
        metrics.ranking_metrics(scores, targets, ["mrr@2"])
