"""MacridVAE concept formation: adaptive K (SEM-MacridVAE paper Sec. 4.1.4) on hand-made cases
and on planted data."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon

from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.model.prototypes import js_divergence_matrix
from recbole_disentangle.quick_start import build

SMALL = {**FAST, "embedding_size": 16, "kfac": 4}


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    """build() on ml-100k with the given settings; the data set is read once."""
    from recbole_disentangle.data.dataset import create_dataset

    folder = tmp_path_factory.mktemp("concepts")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        dataset = create_dataset(Config("MacridVAE", "ml-100k", config_dict=SMALL))

        def make(**settings):
            config = Config("MacridVAE", "ml-100k", config_dict={**SMALL, **settings})
            return config, build(config, dataset)

        yield make


def test_js_divergence_matches_scipy_and_its_bounds():
    rng = np.random.default_rng(0)
    rows = rng.dirichlet(np.ones(30), size=4)
    rows[3] = 0.0
    rows[3, :5] = 0.2  # zeros in the support: 0 ln 0 = 0, no NaN
    js = js_divergence_matrix(torch.as_tensor(rows)).numpy()
    expected = np.array([[jensenshannon(p, q) ** 2 for q in rows] for p in rows])  # scipy: sqrt of JS, nats
    assert np.allclose(js, expected, atol=1e-10)
    assert np.allclose(np.diag(js), 0.0) and np.allclose(js, js.T)
    disjoint = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]], dtype=torch.float64)
    assert js_divergence_matrix(disjoint)[0, 1].item() == pytest.approx(math.log(2))


def planted_by_hand(model, duplicate: bool):
    """Three orthogonal prototypes, items clustered around them; the fourth prototype is a copy of
    the first (``duplicate``) or a fourth orthogonal direction with items of its own."""
    with torch.no_grad():
        directions = torch.eye(model.embedding_size)[:4]
        if duplicate:
            directions[3] = directions[0]
        model.prototypes.copy_(directions * 1.3)
        owner = torch.arange(model.n_items) % (3 if duplicate else 4)
        noise = 0.1 * torch.randn(model.n_items, model.embedding_size, generator=torch.Generator().manual_seed(0))
        model.item_embedding.copy_(torch.eye(model.embedding_size)[owner] + noise)


def test_two_identical_prototypes_merge_and_distinct_ones_do_not(ml100k):
    _, (_, _, _, _, model) = ml100k(adaptive_k=True, merge_threshold=0.1)
    planted_by_hand(model, duplicate=False)
    assert model.merge_concepts() is None and model.concept_active.all()
    planted_by_hand(model, duplicate=True)
    kept, removed = model.merge_concepts()
    assert (kept, removed) == (0, 3)
    assert model.concept_active.tolist() == [True, True, True, False]
    assert torch.allclose(F.normalize(model.prototypes[0], dim=0), torch.eye(model.embedding_size)[0], atol=1e-6)
    assert model.merge_concepts() is None  # the three left are distinct
    # The removed concept is out of Eq. 6: probability 0 for every item, in training and at test.
    assert torch.isneginf(model.concept_logits()[:, 3]).all()
    for training in (True, False):
        model.train(training)
        assert (model.log_concepts().exp()[:, 3] == 0).all()


def test_training_goes_on_after_a_merge_with_the_same_optimizer_and_checkpoint(ml100k):
    config, (_, train_data, _, _, model) = ml100k(adaptive_k=True, merge_threshold=0.1)
    planted_by_hand(model, duplicate=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = next(iter(train_data))
    model.train()
    model.calculate_loss(batch).backward()
    optimizer.step()
    optimizer.zero_grad()
    assert model.merge_concepts() == (0, 3)
    loss = model.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert (model.prototypes.grad[3] == 0).all() and model.prototypes.grad[:3].abs().sum() > 0
    optimizer.step()  # the same Adam state, the same shapes
    assert torch.isfinite(model.prototypes).all()
    # The switched-off prototype may still drift with Adam's decaying momentum; it stays out.
    assert torch.isneginf(model.concept_logits()[:, 3]).all()
    # The mask is part of the checkpoint: a model rebuilt from the same config restores it.
    state = model.state_dict()
    assert "concept_active" in state
    _, (_, _, _, _, fresh) = ml100k(adaptive_k=True, merge_threshold=0.1)
    fresh.load_state_dict(state)
    assert fresh.concept_active.tolist() == [True, True, True, False]


def test_without_adaptive_k_checkpoints_have_no_mask(ml100k):
    # Checkpoints written before adaptive K existed load into a model without it.
    _, (_, _, _, _, model) = ml100k()
    assert "concept_active" not in model.state_dict()
    model.on_epoch_end()
    assert model.concept_active.all()


@pytest.mark.parametrize("key, value", [("merge_threshold", -0.1), ("merge_threshold", 0.8), ("adaptive_k", "yes")])
def test_invalid_adaptive_k_settings_are_rejected(workdir, key, value):
    with pytest.raises(ConfigError, match=key):
        Config("MacridVAE", "no-such-data", config_dict={key: value})


def test_sem_macridvae_refuses_adaptive_k_with_category_supervision(workdir):
    with pytest.raises(ConfigError, match="adaptive_k"):
        Config("SEM-MacridVAE", "no-such-data", config_dict={"adaptive_k": True, "category_field": "class", "text_features": "t"})


# ---- prototype re-centring -------------------------------------------------------------------
def test_recentring_moves_each_prototype_to_the_mean_direction_of_its_items(ml100k):
    _, (_, _, _, _, model) = ml100k()
    planted_by_hand(model, duplicate=False)  # items around e_0..e_3, prototypes on them
    with torch.no_grad():
        rotation = torch.linalg.qr(torch.randn(model.embedding_size, model.embedding_size, generator=torch.Generator().manual_seed(1)))[0]
        turned = torch.eye(model.embedding_size)[:4] + 0.3 * rotation[:4]  # still nearest its own items
        model.prototypes.copy_(turned * torch.tensor([[1.0], [2.0], [0.5], [1.5]]))
    lengths = model.prototypes.norm(dim=1).clone()
    p = torch.softmax(model.concept_logits()[model.trained_items], dim=1)
    h = F.normalize(model.item_embedding[model.trained_items], dim=1)
    n = model.history.sum(0).A1[model.trained_items.numpy()]  # training interactions per item
    expected = F.normalize((p * torch.as_tensor(n, dtype=torch.float32).unsqueeze(1)).t() @ h, dim=1)  # the M-step, by hand
    model.recentre_prototypes(1.0)
    assert torch.allclose(model.prototypes.norm(dim=1), lengths, atol=1e-5)  # Eq. 6 reads only directions
    assert torch.allclose(F.normalize(model.prototypes, dim=1), expected, atol=1e-5)
    assert (F.normalize(model.prototypes, dim=1) @ torch.eye(model.embedding_size)[:4].T).diagonal().min() > 0.99


def test_recentring_runs_before_each_training_step_and_only_for_cosine(ml100k):
    _, (_, train_data, _, _, cosine) = ml100k(prototype_recentring=0.5)
    _, (_, _, _, _, inner) = ml100k(prototype_recentring=0.5, similarity="inner")
    batch = next(iter(train_data))
    for model, moves in ((cosine, True), (inner, False)):
        model.train()
        before = model.prototypes.detach().clone()
        model.calculate_loss(batch)  # no optimizer step: any change is the re-centring
        assert (not torch.equal(before, model.prototypes)) == moves
        model.eval()
        before = model.prototypes.detach().clone()
        with torch.no_grad():
            model.calculate_loss(batch)  # validation losses never move m
        assert torch.equal(before, model.prototypes)


@pytest.mark.parametrize("value", [-0.1, 1.5, True])
def test_invalid_recentring_rate_is_rejected(workdir, value):
    with pytest.raises(ConfigError, match="prototype_recentring"):
        Config("MacridVAE", "no-such-data", config_dict={"prototype_recentring": value})



def test_prototypes_start_shorter_for_cosine_only(ml100k):
    # The default 0.1 shortens m_k's Xavier initialisation, so Adam turns it ~10x faster
    # (only its direction enters cosine Eq. 6); the inner product reads m_k's length, so it
    # keeps Xavier's.
    def lengths(**settings):
        torch.manual_seed(0)
        _, (_, _, _, _, model) = ml100k(**settings)
        return model.prototypes.norm(dim=1)

    default, xavier = lengths(), lengths(prototype_init_scale=1.0)
    assert torch.allclose(default, 0.1 * xavier)
    assert torch.allclose(lengths(similarity="inner"), lengths(similarity="inner", prototype_init_scale=1.0))


@pytest.mark.parametrize("value", [0, -1.0, True, "small"])
def test_invalid_prototype_init_scale_is_rejected(workdir, value):
    with pytest.raises(ConfigError, match="prototype_init_scale"):
        Config("MacridVAE", "no-such-data", config_dict={"prototype_init_scale": value})
