"""AD-DRL: each loss term on a hand-checkable case, RecBole's multi-negative layout, missing
modalities/attributes, explanations and control, and end to end on ml-100k and planted data."""

import math

import numpy as np
import pytest
import torch

from model_contract import FAST, ModelContract
from recbole_disentangle.analysis import control
from recbole_disentangle.config import Config
from recbole_disentangle.data import synthetic_multimodal
from recbole_disentangle.errors import ConfigError, DatasetError
from recbole_disentangle.quick_start import build, run

ML_100K_ATTRIBUTES = [
    {"name": "genre", "field": "class", "rule": "first_token"},
    {"name": "decade", "field": "release_year", "rule": "decade"},
    {"name": "popularity", "rule": "popularity", "levels": 5},
]


class TestADDRLContract(ModelContract):
    """ml-100k, ID modality with the demo's attributes (no feature file is needed)."""

    model_name = "AD-DRL"
    epochs = 3  # test NDCG@10 0.2375 vs popularity 0.1421 (seeds 1, 2: 0.2308 vs 0.1409, 0.2336 vs 0.1453)
    settings = {"modalities": ["id"], "attributes": ML_100K_ATTRIBUTES, "kfac": 4, "embedding_size": 32,
                "learning_rate": 0.01, "attribute_weight": 1.0, "train_batch_size": 8192}


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    synthetic_multimodal.write(root, seed=0)
    return root


def planted_config(planted_dir, **settings):
    base = {**FAST, "data_path": str(planted_dir), "kfac": 4, "embedding_size": 32, "learning_rate": 0.01,
            "train_batch_size": 1200}
    base["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 3, "alpha": 1.0, "dynamic": False, "candidate_num": 0}
    return Config("AD-DRL", "planted-multimodal", config_dict={**base, **settings})


@pytest.fixture(scope="module")
def built(planted_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("addrl"))
        config = planted_config(planted_dir)
        _, train_data, _, _, model = build(config)
    return config, train_data, model


def test_recbole_lays_out_n_negatives_as_n_repeats_of_the_positive_batch(built):
    config, train_data, model = built
    batch = next(iter(train_data))
    n = config["train_neg_sample_args"]["sample_num"]
    users = batch["user_id"].view(n, -1)
    positives = batch["item_id"].view(n, -1)
    assert (users == users[0]).all() and (positives == positives[0]).all()
    from recbole_disentangle.model.multimodal import pairwise_batch

    u, pos, neg = pairwise_batch(batch, "user_id", "item_id", "neg_item_id", n)
    assert neg.shape == (len(u), n) and torch.equal(neg[:, 1], batch["neg_item_id"].view(n, -1)[1])
    history = model.history
    for row in range(0, len(u), 97):  # sampled negatives are never the user's training items
        assert not set(neg[row].tolist()) & set(history[u[row].item()].indices.tolist())


def test_ranking_loss_takes_the_hardest_of_the_negatives():
    from recbole_disentangle.model.addrl import ADDRL

    s_pos = torch.tensor([1.0, 0.0])
    s_neg = torch.tensor([[0.0, 2.0, -1.0], [-1.0, -2.0, -3.0]])
    expected = math.log1p(math.exp(1.0)) + math.log1p(math.exp(-1.0))  # softplus(-(1-2)) + softplus(-(0+1)): summed
    assert ADDRL.ranking_loss(s_pos, s_neg).item() == pytest.approx(expected, rel=1e-6)


def test_factor_classifier_targets_chunk_k_with_label_k(built):
    _, _, model = built
    k, c = model.kfac, model.chunk
    reps = torch.zeros(2, k, c)
    reps[:, torch.arange(k), torch.arange(k)] = 1.0  # chunk j = e_j
    with torch.no_grad():
        model.factor_classifier.weight.zero_()
        model.factor_classifier.weight[:, :k] = 3 * torch.eye(k)  # logit_j(x) = 3 x_j
        model.factor_classifier.bias.zero_()
        right = model.intra_loss([reps]).item()
        wrong = model.intra_loss([reps.roll(1, dims=1)]).item()  # chunk j holds e_(j-1)
        two = model.intra_loss([reps, reps[:1]]).item()  # e.g. users and one modality: summed
    # batch mean of the cross-entropy, summed over the K factors
    assert right == pytest.approx(-k * math.log(math.exp(3) / (math.exp(3) + k - 1)), rel=1e-5)
    assert wrong == pytest.approx(-k * math.log(1 / (math.exp(3) + k - 1)), rel=1e-5)
    assert two == pytest.approx(2 * right, rel=1e-6)


def test_infonce_with_identical_orthonormal_chunks_is_its_closed_form(built):
    _, _, model = built
    k, c, t = model.kfac, model.chunk, model.inter_temperature
    chunks = torch.zeros(5, 1, k, c)
    chunks[:, 0, torch.arange(k), torch.arange(k)] = 3.0  # any norm: the loss reads cosines
    loss = model.inter_loss(chunks.expand(5, 3, k, c)).item()
    # per factor log(1 + (K-1) e^{-1/t}); summed over K factors, 2 directions and 3 modality pairs
    assert loss == pytest.approx(6 * k * math.log(1 + (k - 1) * math.exp(-1 / t)), rel=1e-5)
    assert model.inter_loss(chunks).item() == 0.0  # one modality: nothing to align


def test_attention_weights_over_modalities_sum_to_one(built):
    _, _, model = built
    alpha = control.modality_weights(model, torch.arange(1, 50))
    assert model.modalities == ["id", "text", "image"]
    assert alpha.shape == (49, model.kfac, 3) and torch.allclose(alpha.sum(-1), torch.ones(49, model.kfac))
    chunks = model.modality_chunks(torch.arange(1, 50))
    fused, _ = model.fuse(chunks)
    units = torch.nn.functional.normalize(chunks, dim=-1)  # every modality's chunk at unit norm
    assert torch.allclose(fused, (alpha.unsqueeze(-1) * units.transpose(1, 2)).sum(2), atol=1e-6)
    assert (fused.norm(dim=-1) <= 1 + 1e-5).all()
    # scaling one modality's chunks changes nothing: no modality wins by its scale
    scaled = chunks.clone()
    scaled[:, 1] *= 10
    assert torch.allclose(model.fuse(scaled)[0], fused, atol=1e-6)
    model.fusion_normalize = False  # the raw chunks, weighted by attention on the raw chunks
    try:
        raw, raw_alpha = model.fuse(chunks)
        assert torch.allclose(raw, (raw_alpha.unsqueeze(-1) * chunks.transpose(1, 2)).sum(2), atol=1e-6)
        assert torch.allclose(raw_alpha.sum(-1), torch.ones(49, model.kfac))
    finally:
        model.fusion_normalize = True


def test_attribute_loss_reads_attribute_k_from_fused_chunk_k_and_skips_unknowns(built):
    _, _, model = built
    items = torch.arange(1, 40)
    fused = torch.randn(len(items), model.kfac, model.chunk)
    labels = model.attribute_labels[items].clone()
    expected = np.sum([torch.nn.functional.cross_entropy(cls(fused[:, a]), labels[:, a]).item()
                       for a, cls in enumerate(model.attribute_classifiers)])
    assert model.attribute_loss(fused, items).item() == pytest.approx(expected, rel=1e-5)
    model.attribute_labels[items[:10], 0] = -1  # unknown values are left out
    try:
        expected0 = torch.nn.functional.cross_entropy(model.attribute_classifiers[0](fused[10:, 0]), labels[10:, 0]).item()
        others = [torch.nn.functional.cross_entropy(cls(fused[:, a]), labels[:, a]).item()
                  for a, cls in enumerate(model.attribute_classifiers) if a > 0]
        assert model.attribute_loss(fused, items).item() == pytest.approx(np.sum([expected0, *others]), rel=1e-5)
    finally:
        model.attribute_labels[items[:10], 0] = labels[:10, 0]


def test_score_is_a_sum_of_softplus_factor_terms_and_explain_shares_sum_to_one(built):
    _, _, model = built
    model.eval()
    users, items = torch.tensor([1, 2, 3]), torch.arange(1, 30)
    with torch.no_grad():
        full = model.full_sort_predict({"user_id": users}).view(3, -1)
        u = torch.nn.functional.normalize(model.user_chunks(users), dim=-1)
        fused, _ = model.fuse(model.modality_chunks(items))
        brute = torch.nn.functional.softplus(torch.einsum("bkc,ikc->bik", u, fused)).sum(-1)
    assert torch.allclose(full[:, 1:30], brute, atol=1e-5)
    shares = control.explain_factors(model, users, items)
    assert shares.shape == (3, 29, model.kfac) and torch.allclose(shares.sum(-1), torch.ones(3, 29))
    assert model.factor_names == ["category", "price", "brand", "free3"]


def test_rerank_follows_the_turned_up_factor_and_skips_training_items(built):
    _, _, model = built
    model.eval()
    users = torch.tensor([4, 5])
    scores, items = control.rerank_by_factors(model, users, {"price": 1.0, "category": 0.0, "brand": 0.0, "free3": 0.0}, k=5)
    terms = model.all_factor_scores(users)[..., 1].detach()
    for row, user in enumerate(users.tolist()):
        allowed = torch.ones(model.n_items, dtype=torch.bool)
        allowed[0] = False
        allowed[torch.from_numpy(model.history[user].indices).long()] = False
        best = torch.topk(terms[row].masked_fill(~allowed, -torch.inf), 5).indices
        assert items[row].tolist() == best.tolist()
    _, default = control.rerank_by_factors(model, users, [1.0] * model.kfac, k=5)
    full = model.full_sort_predict({"user_id": users}).view(2, -1)
    assert torch.allclose(full.gather(1, default), control.rerank_by_factors(model, users, torch.ones(model.kfac), k=5)[0], atol=1e-5)
    with pytest.raises(ValueError, match="unknown factor"):
        control.rerank_by_factors(model, users, {"colour": 2.0})


def test_missing_modality_is_an_error_or_switched_off(planted_dir, workdir):
    with pytest.raises(DatasetError, match="modality 'image' needs the item features 'photos'.*missing_modality: skip"):
        build(planted_config(planted_dir, feature_names={"image": "photos"}))
    *_, model = build(planted_config(planted_dir, feature_names={"image": "photos"}, missing_modality="skip"))
    assert model.modalities == ["id", "text"]


def test_missing_attribute_is_an_error_or_its_factor_stays_free(planted_dir, workdir):
    attributes = [{"name": "colour", "field": "colour", "rule": "token"}, {"name": "brand", "field": "brand", "rule": "token"}]
    with pytest.raises(DatasetError, match="'colour' is not loaded"):
        build(planted_config(planted_dir, attributes=attributes))
    *_, model = build(planted_config(planted_dir, attributes=attributes, missing_attribute="skip"))
    assert model.factor_names == ["brand", "free1", "free2", "free3"]


@pytest.mark.parametrize(
    "settings, key",
    [({"embedding_size": 30}, "embedding_size"), ({"kfac": 2}, "attributes"), ({"intra_weight": -1}, "intra_weight"),
     ({"modalities": ["id", "audio"]}, "modalities"), ({"modalities": []}, "modalities"),
     ({"inter_temperature": 0}, "inter_temperature"), ({"attribute_holdout": 1.0}, "attribute_holdout"),
     ({"missing_modality": "ignore"}, "missing_modality"), ({"train_neg_sample_args": None}, "train_neg_sample_args"),
     ({"fusion_normalize": "yes"}, "fusion_normalize")],
)
def test_invalid_settings_are_rejected_before_data_is_read(planted_dir, workdir, settings, key):
    with pytest.raises(ConfigError, match=key):
        planted_config(planted_dir / "nowhere", **settings)


@pytest.mark.slow
def test_planted_attributes_are_learned_far_above_the_majority_class(planted_dir, workdir):
    result = run("AD-DRL", "planted-multimodal", config_dict={
        **FAST, "data_path": str(planted_dir), "kfac": 4, "embedding_size": 32, "learning_rate": 0.01, "epochs": 8,
        "attribute_weight": 50.0, "inter_weight": 1.0, "attribute_holdout": 0.2, "train_batch_size": 4096})
    from recbole_disentangle.quick_start import load_data_and_model

    _, model, *_ = load_data_and_model(result["model_file"])
    model.eval()
    report = model.attribute_accuracy()
    for name in ("category", "price", "brand"):
        assert report[name]["held_out_accuracy"] > report[name]["held_out_majority"] + 0.3, (name, report[name])
    # the run's result records the same numbers for the best model (the reloaded checkpoint)
    recorded = result["model_report"]["attribute_accuracy"]
    assert recorded.keys() == report.keys()
    assert all(recorded[name] == pytest.approx(report[name]) for name in report)
    assert result["train_losses"][-1] < result["train_losses"][0]
