"""Validation every N epochs (RecBole's eval_step) for this package's models: large catalogs
validate less often, and early stopping then counts validations, not epochs."""

import pytest

from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.quick_start import build, run
from recbole_disentangle.trainer import get_trainer

SMALL = {**FAST, "kfac": 2, "embedding_size": 16}


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["recbole", "paper"])
def test_eval_step_validates_every_nth_epoch(workdir, protocol):
    extra = {"paper_heldout_users": 50} if protocol == "paper" else {}
    result = run("MacridVAE", "ml-100k", config_dict={**SMALL, **extra, "eval_protocol": protocol, "epochs": 5, "eval_step": 2})
    assert result["epochs"] == 5
    assert [epoch for epoch, _ in result["valid_scores"]] == [1, 3]
    assert "ndcg@10" in result["test_result"] or "ndcg@100" in result["test_result"]


def test_early_stopping_counts_validations_not_epochs(workdir, monkeypatch):
    """stopping_step = 1, validation every 2 epochs, scores that only fall: the best is the first
    validation (epoch 1), the run stops at the second one without improvement (epoch 5)."""
    config = Config("MacridVAE", "ml-100k", config_dict={**SMALL, "epochs": 20, "eval_step": 2, "stopping_step": 1})
    _, train_data, valid_data, _, model = build(config)
    trainer = get_trainer(config, model)
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1])
    validated = []

    def falling_scores(valid_data, show_progress=False):
        score = next(scores)
        return score, {"ndcg@10": score}

    monkeypatch.setattr(trainer, "_valid_epoch", falling_scores)
    best, _ = trainer.fit(train_data, valid_data, saved=False, callback_fn=lambda epoch, score: validated.append(epoch))
    assert validated == [1, 3, 5]
    assert best == 0.5
    assert sorted(trainer.train_loss_dict) == list(range(6))  # 6 epochs of 20
