"""RecBole's auto-encoders as the papers' baselines: KL annealing within the run, per-user results."""

import subprocess
import sys

import pytest

from model_contract import FAST
from recbole_disentangle.config import Config
from recbole_disentangle.quick_start import build, run

PAPER = {**FAST, "eval_protocol": "paper", "paper_heldout_users": 50, "train_batch_size": 100}


def kl_weight(model) -> float:
    """RecBole's MultiVAE / MacridVAE weight of the KL term after ``model.update`` steps."""
    return min(model.anneal_cap, model.update / model.total_anneal_steps)


@pytest.mark.parametrize("model_name", ["MultiVAE", "RecBoleMacridVAE"])
def test_anneal_epochs_brings_recbole_vaes_to_their_kl_cap_within_the_run(workdir, model_name):
    # The ramp step / total_anneal_steps reaches 1 after anneal_epochs = 4 epochs, so the weight
    # is 0.25 after one epoch and at its cap 0.3 after two (RecBole's 200000 steps: 0.00005).
    config = Config(model_name, "ml-100k", config_dict={**PAPER, "anneal_epochs": 4, "anneal_cap": 0.3})
    _, train_data, _, _, model = build(config)
    assert len(train_data) == 9  # 843 training users in batches of 100
    assert model.total_anneal_steps == 4 * len(train_data)
    model.train()
    for expected in (0.25, 0.3):
        for batch in train_data:
            model.calculate_loss(batch)
        assert kl_weight(model) == pytest.approx(expected)


def test_without_anneal_epochs_recbole_keeps_its_own_steps(workdir):
    config = Config("MultiVAE", "ml-100k", config_dict=PAPER)
    _, _, _, _, model = build(config)
    assert model.total_anneal_steps == 200000


def test_paper_protocol_results_carry_every_test_users_metrics(workdir):
    result = run("MultiDAE", "ml-100k", config_dict={**PAPER, "epochs": 1}, saved=False)
    per_user = result["test_per_user"]
    assert len(per_user["user"]) == len(per_user["ndcg@100"]) == result["test_result"]["users"]
    mean = sum(per_user["ndcg@100"]) / len(per_user["ndcg@100"])
    assert mean == pytest.approx(result["test_result"]["ndcg@100"], abs=1e-5)


def test_a_recbole_sequential_model_leaves_autograd_anomaly_detection_as_it_was(repo_env):
    """RecBole's sine.py switches anomaly detection on at import (1.5x the time of a MacridVAE epoch);
    fresh processes, as the import happens once per process."""
    check = "import torch; print(torch.is_anomaly_enabled())"
    recbole_import = subprocess.run([sys.executable, "-c", "import recbole.model.sequential_recommender; " + check],
                                    capture_output=True, text=True, env=repo_env, check=True)
    assert recbole_import.stdout.split()[-1] == "True"  # what the package undoes
    ours = subprocess.run([sys.executable, "-c", "from recbole_disentangle.registry import get_model; "
                           "get_model('SASRec'); " + check], capture_output=True, text=True, env=repo_env, check=True)
    assert ours.stdout.split()[-1] == "False"
