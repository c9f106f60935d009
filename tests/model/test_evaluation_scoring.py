"""Evaluation that scales (issue 14): the item side once per pass, scoring in chunks under
``eval_memory_budget_mb``, the same scores and metrics as scoring everything at once, never stale."""

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.evaluation.metrics import ranking_metrics
from recbole_disentangle.evaluation.protocols import per_user_metrics
from recbole_disentangle.model.base import evaluation_pass
from recbole_disentangle.model.scoring import chunk_sizes, logsumexp_in_place
from recbole_disentangle.quick_start import build
from recbole_disentangle.trainer import get_trainer

SMALL = {**FAST, "kfac": 4, "embedding_size": 16, "eval_protocol": "paper", "paper_heldout_users": 50}
MODELS = {
    "MacridVAE": {},
    # Category supervision without features: the subclass's own loss, MacridVAE's prediction.
    "SEM-MacridVAE": {"visual_init": False, "category_field": "class", "kfac": 7},
}
TINY_BUDGET_MB = 0.01  # 10 KB: a few hundred (user, item) pairs per chunk, so users and items are both cut


@pytest.fixture(scope="module", params=list(MODELS))
def built(request, tmp_path_factory):
    """A model (paper protocol: fold-in scoring of held-out users, full_sort_predict of training
    users) after two training steps, so that concepts and scores are not the initial ones."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp(request.param))
        config = Config(request.param, "ml-100k", config_dict={**SMALL, **MODELS[request.param]})
        _, train_data, valid, _, model = build(config)
    train_steps(model, train_data, 2)
    return config, train_data, valid, model


def train_steps(model, train_data, n_steps):
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _, batch in zip(range(n_steps), train_data):
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    model.eval()


@pytest.fixture
def budget(built):
    """Set the model's budget for one test; restored afterwards."""
    model = built[3]
    saved = model.eval_memory_budget_mb

    def set_budget(mb):
        model.eval_memory_budget_mb = mb

    yield set_budget
    model.eval_memory_budget_mb = saved


def unchunked_fold_in_scores(model, fold_in):
    """What fold_in_predict computed before issue 14: the item side and the whole (B, K, items) block at once."""
    log_c = model.log_concepts()
    block = fold_in.tocoo()
    from recbole_disentangle.model.layers import SparseRows

    batch = SparseRows(torch.as_tensor(block.row, dtype=torch.long), torch.as_tensor(block.col, dtype=torch.long),
                       torch.ones(block.nnz), fold_in.shape[0])
    z, _, _ = model.encode(batch, log_c)
    return model.scores(z, log_c)


def unchunked_user_scores(model, users):
    log_c = model.log_concepts()
    z, _, _ = model.encode(model.user_rows(users), log_c)
    return model.scores(z, log_c)


# ---- the chunk arithmetic -------------------------------------------------------------------
@pytest.mark.parametrize("n_users,n_items,k,mb", [(5, 200_000, 7, 256), (500, 200_000, 7, 64), (600, 1683, 4, 0.01),
                                                  (1, 50_000, 20, 0.001), (3000, 9000, 7, 1)])
def test_one_chunk_block_fits_the_budget(n_users, n_items, k, mb):
    user_chunk, item_chunk = chunk_sizes(n_users, n_items, k, mb)
    assert 1 <= user_chunk <= n_users and 1 <= item_chunk <= n_items
    assert user_chunk * item_chunk * k * 4 <= max(mb * 2**20, k * 4)  # one pair is the least there is


def test_default_budget_scores_a_default_batch_of_a_small_data_set_in_one_chunk():
    config = Config("MacridVAE", "ml-100k", config_dict=FAST)
    assert config["eval_memory_budget_mb"] == 256
    n_items = 9_742  # ml-latest-small
    n_users = config["eval_batch_size"] // n_items
    assert chunk_sizes(n_users, n_items, 7, config["eval_memory_budget_mb"]) == (n_users, n_items)


def test_in_place_logsumexp_is_torchs_including_all_minus_infinity_slices():
    values = torch.randn(3, 4, 5)
    values[0, :, 1] = float("-inf")  # no concept: -inf, as torch gives
    values[1, 1:, 2] = float("-inf")  # one-hot mode assignment
    expected = torch.logsumexp(values, dim=1)
    assert torch.allclose(logsumexp_in_place(values.clone(), dim=1), expected, equal_nan=False)
    assert torch.isneginf(logsumexp_in_place(values.clone(), dim=1)[0, 1])


@pytest.mark.parametrize("value", [0, -1, "big", True])
def test_budget_must_be_positive(value):
    with pytest.raises(ConfigError, match="eval_memory_budget_mb"):
        Config("MacridVAE", "ml-100k", config_dict={**FAST, "eval_memory_budget_mb": value})


# ---- scores equal the unchunked ones, both protocols' paths -------------------------------
def test_chunked_scores_equal_the_unchunked_ones(built, budget):
    _, _, valid, model = built
    users = torch.as_tensor(np.arange(1, 40))
    fold_in = valid.fold_in[:30]
    with torch.no_grad():
        expected_users, expected_fold_in = unchunked_user_scores(model, users), unchunked_fold_in_scores(model, fold_in)
        for mb in (TINY_BUDGET_MB, 256):
            budget(mb)
            with evaluation_pass(model):
                by_user = model.full_sort_predict(Interaction({model.USER_ID: users})).view(len(users), -1)
                by_fold_in = model.fold_in_predict(fold_in)
            assert torch.allclose(by_user, expected_users, rtol=1e-5, atol=1e-5)
            assert torch.allclose(by_fold_in, expected_fold_in, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("protocol", ["recbole", "paper"])
def test_a_tiny_budget_gives_the_same_metrics(built, budget, protocol, tmp_path, monkeypatch):
    config, train_data, valid, model = built
    monkeypatch.chdir(tmp_path)
    if protocol == "recbole":  # RecBole's split has other items: a model of its own, trained alike
        config = Config(config["model"], "ml-100k", config_dict={**SMALL, **MODELS[config["model"]], "eval_protocol": "recbole"})
        _, train_data, valid, _, model = build(config)
        train_steps(model, train_data, 2)
    trainer = get_trainer(config, model)
    trainer.eval_collector.data_collect(train_data)
    results = []
    for mb in (256, TINY_BUDGET_MB):
        model.eval_memory_budget_mb = mb
        results.append(dict(trainer.evaluate(valid, load_best_model=False)))
    model.eval_memory_budget_mb = 256
    assert results[0] == pytest.approx(results[1], abs=1e-6)


def test_paper_metrics_equal_ranking_metrics_on_dense_matrices(built):
    """The per-user metrics with sparse fold-in and targets are ranking_metrics' (pinned on
    hand-computed cases in tests/data/test_protocol.py) on the dense matrices."""
    _, _, valid, model = built
    per_user = per_user_metrics(model, valid, "cpu")
    with torch.no_grad():
        scores = unchunked_fold_in_scores(model, valid.fold_in)
    scores[torch.as_tensor(valid.fold_in.toarray() > 0)] = float("-inf")
    scores[:, np.concatenate([[0], valid.excluded_items])] = float("-inf")
    expected = ranking_metrics(scores, torch.as_tensor(valid.targets.toarray() > 0))
    assert per_user.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(per_user[name], expected[name], atol=1e-6), name


# ---- the item side: once per pass, never stale --------------------------------------------
def test_item_side_is_computed_once_per_pass_and_dropped_after_it(built, monkeypatch, tmp_path):
    config, _, valid, model = built
    monkeypatch.chdir(tmp_path)
    calls = []
    original = model.log_concepts
    monkeypatch.setattr(model, "log_concepts", lambda: calls.append(1) or original())
    valid.batch_size = 10  # several batches of held-out users
    try:
        assert len(valid) > 2
        get_trainer(config, model).evaluate(valid, load_best_model=False)
    finally:
        valid.batch_size = max(1, config["eval_batch_size"] // model.n_items)
    assert len(calls) == 1
    assert model._cached_item_side is None and model._evaluation_depth == 0
    with torch.no_grad():  # outside a pass nothing is kept: each call computes its own
        model.fold_in_predict(valid.fold_in[:2])
        model.fold_in_predict(valid.fold_in[:2])
    assert len(calls) == 3 and model._cached_item_side is None


def test_training_between_evaluations_changes_the_scores(built):
    """Inside one open block (the worst case): a training step, then an in-place change of h
    without model.train(); each time the scores are those of the model as it now is."""
    _, train_data, valid, model = built
    fold_in = valid.fold_in[:20]
    with torch.no_grad(), evaluation_pass(model):
        before = model.fold_in_predict(fold_in)
        assert model._cached_item_side is not None
        with torch.enable_grad():
            train_steps(model, train_data, 1)
        after_step = model.fold_in_predict(fold_in)
        assert not torch.allclose(after_step, before)
        assert torch.allclose(after_step, unchunked_fold_in_scores(model, fold_in), rtol=1e-5, atol=1e-5)
        model.item_embedding.mul_(-1.0)  # no train(): the parameter's version tells
        try:
            flipped = model.fold_in_predict(fold_in)
            assert not torch.allclose(flipped, after_step)
            assert torch.allclose(flipped, unchunked_fold_in_scores(model, fold_in), rtol=1e-5, atol=1e-5)
        finally:
            model.item_embedding.mul_(-1.0)


def test_predict_reads_the_same_item_side(built):
    _, _, _, model = built
    users = torch.tensor([1, 2, 3, 3])
    items = torch.tensor([5, 17, 1, 1500])
    with torch.no_grad(), evaluation_pass(model):
        pairs = model.predict(Interaction({model.USER_ID: users, model.ITEM_ID: items}))
        full = model.full_sort_predict(Interaction({model.USER_ID: users})).view(len(users), -1)
    assert torch.allclose(pairs, full[torch.arange(4), items], rtol=1e-5, atol=1e-5)
