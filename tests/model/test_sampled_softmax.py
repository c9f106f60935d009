"""MacridVAE's sampled-softmax step: it reads, differentiates and updates only the rows of h and t
of the batch's items and the samples (issue 14), with the estimator of the catalog-wide computation."""

import pytest
import torch

from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.model.sampled_step import sampled_step_loss
from recbole_disentangle.optim import RowSparseAdam
from recbole_disentangle.quick_start import build
from recbole_disentangle.trainer import get_trainer

SMALL = {**FAST, "kfac": 4, "embedding_size": 16, "train_batch_size": 5}


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("sampled"))
        # weight decay and reg_weight on: their lazy forms must not touch other rows either
        config = Config("MacridVAE", "ml-100k", config_dict={**SMALL, "sampled_negatives": 30, "reg_weight": 1e-3,
                                                             "weight_decay": 1e-4})
        _, train_data, _, _, model = build(config)
    return config, train_data, model


def recording_samples(model, patch):
    drawn = []
    draw = model.draw_negatives

    def record():
        drawn.append(draw())
        return drawn[-1]

    patch.setattr(model, "draw_negatives", record)
    return drawn


def sparse_rows(grad):
    assert grad.is_sparse
    return set(grad.coalesce().indices()[0].tolist())


def changed_rows(table, before):
    return set(torch.nonzero((table.detach() != before).any(1)).view(-1).tolist())


def test_a_sampled_step_touches_only_the_rows_of_the_batch_and_the_samples(sampled, workdir):
    config, train_data, model = sampled
    trainer = get_trainer(config, model)
    assert isinstance(trainer.optimizer, RowSparseAdam)
    h, t = model.item_embedding, model.encoder.context
    model.train()
    batches = iter(train_data)
    with pytest.MonkeyPatch.context() as patch:
        drawn = recording_samples(model, patch)
        for step in range(2):  # the second step: rows of the first must not move by their momentum
            interaction = next(batches)
            items = set(model.user_rows(interaction["user_id"]).cols.tolist())
            before_h, before_t = h.detach().clone(), t.detach().clone()
            trainer.optimizer.zero_grad()
            model.calculate_loss(interaction).backward()
            samples = set(drawn[-1].tolist())
            assert sparse_rows(h.grad) == items | samples
            assert sparse_rows(t.grad) == items  # the encoder reads the batch's items only
            assert not model.prototypes.grad.is_sparse
            trainer.optimizer.step()
            assert changed_rows(h, before_h) == items | samples, step
            assert changed_rows(t, before_t) == items, step
            assert len(items | samples) < model.n_items / 2  # part of the catalog, not all of it


def test_the_row_step_computes_what_the_catalog_wide_step_computed(sampled, monkeypatch):
    """Without noise (eval mode: no dropout, Gumbel or z sampling) and with the same samples, the
    row step's loss and gradients equal the catalog-wide sampled loss of before: s_ik and c_i for
    all N items, h and t indexed from the whole tables (reg_weight is lazy there, so 0 here)."""
    _, train_data, model = sampled
    monkeypatch.setattr(model, "reg_weight", 0.0)
    model.eval()
    torch.manual_seed(0)
    samples = model.draw_negatives()
    monkeypatch.setattr(model, "draw_negatives", lambda: samples)
    batch = model.user_rows(next(iter(train_data))["user_id"])
    h, t = model.item_embedding, model.encoder.context

    model.zero_grad()
    rows = sampled_step_loss(model, batch)
    rows.backward()
    row_grads = [h.grad.to_dense(), t.grad.to_dense(), model.prototypes.grad.clone()]

    model.zero_grad()
    log_c = model.log_concepts()
    z, mu, log_var_ratio = model.encode(batch, log_c)
    whole = model.sampled_recon_loss(z, log_c, batch) + model.beta_tensor() * model.kl_loss(mu, log_var_ratio)
    whole.backward()
    assert rows.item() == pytest.approx(whole.item(), rel=1e-5)
    for row_grad, grad in zip(row_grads, (h.grad, t.grad, model.prototypes.grad)):
        assert torch.allclose(row_grad, grad, rtol=1e-4, atol=1e-7)
    model.zero_grad()


def test_full_softmax_keeps_one_torch_adam_and_dense_gradients(workdir):
    config = Config("MacridVAE", "ml-100k", config_dict=SMALL)
    _, train_data, _, _, model = build(config)
    trainer = get_trainer(config, model)
    assert type(trainer.optimizer) is torch.optim.Adam and model.row_sparse_parameters() == []
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(list(model.parameters()))
    model.train()
    interaction = next(iter(train_data))
    torch.manual_seed(5)
    loss = model.calculate_loss(interaction)
    loss.backward()
    assert not model.item_embedding.grad.is_sparse and not model.encoder.context.grad.is_sparse
    # The step as it always was: all N items' c_i, the full softmax, the KL.
    torch.manual_seed(5)
    model.anneal_step -= 1
    batch = model.user_rows(interaction["user_id"])
    log_c = model.log_concepts()
    z, mu, log_var_ratio = model.encode(batch, log_c)
    expected = model.recon_loss(z, log_c, batch) + model.beta_tensor() * model.kl_loss(mu, log_var_ratio)
    assert loss.item() == expected.item()


def test_samples_follow_the_sampling_distribution(sampled, monkeypatch):
    _, _, model = sampled
    monkeypatch.setattr(model, "sampled_negatives", 200_000)
    torch.manual_seed(1)
    counts = torch.bincount(model.draw_negatives(), minlength=model.n_items).double()
    assert counts[0] == 0  # padding
    expected = model.sampling_probs.double() * 200_000
    assert ((counts - expected).abs() / expected.clamp_min(1).sqrt()).max() < 6  # < 6 sigma everywhere


@pytest.mark.parametrize(("settings", "key"), [({"learner": "sgd"}, "learner"),
                                               ({"clip_grad_norm": {"max_norm": 5}}, "clip_grad_norm")])
def test_settings_the_row_wise_updates_cannot_honour_are_refused(workdir, settings, key):
    with pytest.raises(ConfigError, match=key):
        Config("MacridVAE", "ml-100k", config_dict={**SMALL, "sampled_negatives": 10, **settings})
    Config("MacridVAE", "ml-100k", config_dict={**SMALL, **settings})  # full softmax takes them


def test_sem_macridvae_refuses_category_supervision_with_sampled_softmax(workdir):
    with pytest.raises(ConfigError, match="category_supervision"):
        Config("SEM-MacridVAE", "ml-100k", config_dict={**SMALL, "sampled_negatives": 10, "visual_init": False,
                                                         "category_field": "class"})
