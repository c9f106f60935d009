"""Checkpoints: tensors and plain values only, never code."""

from pathlib import Path

import pytest
import torch

from model_contract import FAST
from recbole_disentangle.checkpoint import load_checkpoint, save_checkpoint
from recbole_disentangle.errors import CheckpointError
from recbole_disentangle.quick_start import run


class Payload:
    """Unpickling this object would create a file: a stand-in for code in a malicious checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_loading_a_pickled_object_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"format": "recbole_disentangle.checkpoint/1", "config": Payload(str(marker))}, evil)
    with pytest.raises(CheckpointError, match="safely"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_a_foreign_checkpoint_is_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a recbole-disentangle checkpoint"):
        load_checkpoint(tmp_path / "other.pth")


def test_round_trip_keeps_tensors_and_plain_values(tmp_path):
    state = {"w": torch.arange(6.0).view(2, 3)}
    save_checkpoint(tmp_path / "c.pth", state_dict=state, config={"kfac": 7, "topk": [10, 20]}, best_valid_score=0.5)
    loaded = load_checkpoint(tmp_path / "c.pth")
    assert torch.equal(loaded["state_dict"]["w"], state["w"])
    assert loaded["config"] == {"kfac": 7, "topk": [10, 20]} and loaded["best_valid_score"] == 0.5
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_training_resumes_from_a_checkpoint(workdir):
    first = run("MacridVAE", "ml-100k", config_dict={**FAST, "epochs": 2, "eval_step": 1})
    resumed = run("MacridVAE", "ml-100k", config_dict={**FAST, "epochs": 4}, resume_file=first["model_file"])
    assert resumed["epochs"] == 2  # epochs 2 and 3 only
    # It continues from the trained weights: its first epoch's loss is below the fresh run's.
    assert resumed["train_losses"][0] < first["train_losses"][0]


@pytest.mark.parametrize("imports_first", ["recbole_disentangle.quick_start", "recbole.quick_start"])
def test_recboles_own_loader_refuses_a_package_checkpoint_naming_ours(tmp_path, imports_first):
    """recbole.quick_start.load_data_and_model failed with an AttributeError deep in its logger; with
    this package imported it names the loader that reads the file. In a fresh process, with either
    package imported first, as a user's script would."""
    import subprocess
    import sys

    save_checkpoint(tmp_path / "ours.pth", state_dict={}, config={"model": "MacridVAE", "dataset": "ml-100k"})
    torch.save({"state_dict": {}, "config": {}}, tmp_path / "recboles.pth")
    script = (
        f"import sys, {imports_first}, recbole_disentangle.checkpoint\n"
        "from recbole.quick_start import load_data_and_model\n"
        "from recbole_disentangle.errors import CheckpointError\n"
        "try:\n    load_data_and_model(sys.argv[1])\nexcept CheckpointError as err:\n    print('REFUSED', err)\n"
        "try:\n    load_data_and_model(sys.argv[2])\nexcept CheckpointError:\n    print('WRONGLY REFUSED')\n"
        "except Exception as err:\n    print('RECBOLE', type(err).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "ours.pth"), str(tmp_path / "recboles.pth")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = done.stdout
    assert "REFUSED" in out and "recbole_disentangle.quick_start.load_data_and_model" in out, done.stderr[-2000:]
    # RecBole's own files still go to RecBole's code (which fails on this empty stand-in in its own way).
    assert "WRONGLY REFUSED" not in out and "RECBOLE" in out, done.stderr[-2000:]
