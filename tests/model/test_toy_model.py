"""A model from outside the package, written with only the documented hooks, runs end to end.

The seam a new contributor uses (docs/architecture.md, "Where a new model goes"): a RecBole model
class that also subclasses :class:`~recbole_disentangle.model.base.ModelHooks`, registered with
:func:`~recbole_disentangle.registry.register_model` together with its YAML of defaults. The toy
here is a linear auto-encoder over user rows (``train_by_user``, ``fold_in_predict``), with its
``hyperparameters`` declared (``check_config`` comes from them), an ``on_epoch_end`` and a ``report``. It must train and be evaluated under both
protocols, and learn something: its test NDCG must beat the same model untrained.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

from model_contract import FAST
from recbole_disentangle import registry
from recbole_disentangle.config import Config
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.model.base import ModelHooks
from recbole_disentangle.model.hyperparameters import Hyperparameter, integer, yaml_mismatches
from recbole_disentangle.quick_start import build, load_data_and_model, run
from recbole_disentangle.trainer import get_trainer

NAME = "ToyLinearAE"
YAML = """\
toy_size: 32                    # (int) Width of the linear bottleneck, >= 1.
"""


class ToyLinearAE(GeneralRecommender, ModelHooks):
    """scores(x_u) = (x_u E) F^T + b, trained by the multinomial likelihood of the user's row."""

    input_type = InputType.POINTWISE
    train_by_user = True
    # checked by ModelHooks.check_config, listed in the docstring, and held to the YAML's comment
    hyperparameters = (Hyperparameter("toy_size", "int", "Width of the linear bottleneck, >= 1.",
                                      integer(1), "it must be an integer >= 1"),)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        history = dataset.inter_matrix(form="csr").astype(np.float32)
        history.data[:] = 1.0
        self.register_buffer("history", torch.from_numpy(history.toarray()), persistent=False)
        self.encoder = torch.nn.Linear(self.n_items, config["toy_size"], bias=False)
        self.decoder = torch.nn.Linear(config["toy_size"], self.n_items)
        self.epochs_ended = 0
        self.fold_in_batches = 0

    def on_epoch_end(self) -> None:
        self.epochs_ended += 1

    def report(self) -> dict:
        return {"epochs_ended": self.epochs_ended, "fold_in_batches": self.fold_in_batches}

    def _scores(self, rows: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(rows))

    def calculate_loss(self, interaction):
        rows = self.history[interaction[self.USER_ID]]
        return -(torch.log_softmax(self._scores(rows), dim=1) * rows).sum(1).mean()

    def full_sort_predict(self, interaction):
        return self._scores(self.history[interaction[self.USER_ID]]).view(-1)

    def predict(self, interaction):
        scores = self._scores(self.history[interaction[self.USER_ID]])
        return scores.gather(1, interaction[self.ITEM_ID].view(-1, 1)).view(-1)

    def fold_in_predict(self, fold_in) -> torch.Tensor:
        self.fold_in_batches += 1
        rows = torch.from_numpy((fold_in.toarray() > 0).astype(np.float32)).to(self.history.device)
        return self._scores(rows)


@pytest.fixture(scope="module", autouse=True)
def registered(tmp_path_factory):
    yaml_file = tmp_path_factory.mktemp("toy") / f"{NAME}.yaml"
    yaml_file.write_text(YAML, encoding="utf-8")
    registry.register_model(NAME, ToyLinearAE, yaml_file)
    yield
    registry.unregister_model(NAME)


SETTINGS = {**FAST, "epochs": 4, "learning_rate": 0.01, "train_batch_size": 128, "eval_step": 1}
METRIC = {"recbole": "ndcg@10", "paper": "ndcg@100"}


def untrained_test_result(config) -> dict:
    """The test result of the same model on the same split, straight after construction."""
    _, train_data, _, test_data, model = build(config)
    trainer = get_trainer(config, model)
    trainer.eval_collector.data_collect(train_data)
    return dict(trainer.evaluate(test_data, load_best_model=False))


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["recbole", "paper"])
def test_a_toy_model_registers_trains_and_evaluates(protocol, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(NAME, "ml-100k", config_dict={**SETTINGS, "eval_protocol": protocol})
    assert result["model"] == NAME and result["eval_protocol"] == protocol
    # on_epoch_end and report were called; the paper protocol scored held-out users by their fold-in rows
    assert result["model_report"]["epochs_ended"] == 4
    assert (result["model_report"]["fold_in_batches"] > 0) == (protocol == "paper")
    trained = result["test_result"][METRIC[protocol]]

    config, model, *_ = load_data_and_model(result["model_file"])
    assert isinstance(model, ToyLinearAE) and config["toy_size"] == 32  # defaults from its YAML
    untrained = untrained_test_result(config)[METRIC[protocol]]
    print(f"{protocol}: {METRIC[protocol]} trained {trained:.4f}, untrained {untrained:.4f}")
    assert trained > untrained + 0.05


def test_its_check_config_is_called_and_its_yaml_read():
    with pytest.raises(ConfigError, match=r"^ToyLinearAE: 'toy_size' = 0 is invalid: it must be an integer >= 1\.$"):
        Config(NAME, "ml-100k", config_dict={**FAST, "toy_size": 0})
    assert Config(NAME, "ml-100k", config_dict=FAST)["toy_size"] == 32
    assert yaml_mismatches(ToyLinearAE.hyperparameters, [registry.registered_yaml_file(NAME)]) == []
    assert "``toy_size`` (int): Width of the linear bottleneck" in ToyLinearAE.__doc__


def test_built_in_names_cannot_be_taken():
    with pytest.raises(ValueError, match="taken"):
        registry.register_model("MacridVAE", ToyLinearAE)
    with pytest.raises(ValueError, match="taken"):
        registry.register_model("MultiVAE", ToyLinearAE)
