"""Interrupted training resumes where it stopped; every run has a log file and TensorBoard folder of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_contract import FAST
from recbole_disentangle.checkpoint import load_checkpoint
from recbole_disentangle.config import Config
from recbole_disentangle.quick_start import init_run_logger, run
from recbole_disentangle.trainer import best_checkpoint_path, last_checkpoint_path

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


@pytest.fixture
def tiny(workdir):
    folder = workdir / "data" / "tiny"
    folder.mkdir(parents=True)
    rows = [f"{u}\t{i}\t{(u * i) % 5 + 1}\t{u * 100 + i}\n" for u in range(1, 41) for i in range(1, 31) if (u * 7 + i * 3) % 4]
    (folder / "tiny.inter").write_text(HEADER + "".join(rows), encoding="utf-8")
    # dropout, shuffling and a stopping counter that moves: every kind of state resuming must restore
    return {**FAST, "data_path": "data", "load_col": None, "embedding_size": 8, "kfac": 3, "epochs": 5,
            "train_batch_size": 8, "dropout_prob": 0.5, "stopping_step": 10, "seed": 7}


class Interrupt(Exception):
    pass


def interrupt_after(epoch):
    def callback(epoch_idx, valid_score):
        if epoch_idx == epoch:
            raise Interrupt
    return callback


@pytest.mark.slow
@pytest.mark.parametrize("resume_from", ["best", "last"])
def test_an_interrupted_then_resumed_run_ends_with_the_uninterrupted_weights(tiny, resume_from):
    whole = run("MacridVAE", "tiny", config_dict={**tiny, "checkpoint_dir": "whole"})
    with pytest.raises(Interrupt):
        run("MacridVAE", "tiny", config_dict={**tiny, "checkpoint_dir": "parts"}, callback_fn=interrupt_after(1))
    (last,) = Path("parts").glob("*.last.pth")
    assert load_checkpoint(last)["epoch"] == 1
    resume_file = last if resume_from == "last" else best_checkpoint_path(last)
    resumed = run("MacridVAE", "tiny", config_dict={**tiny, "checkpoint_dir": "parts"}, resume_file=str(resume_file))

    assert whole["epochs"] == 5 and resumed["epochs"] == 3  # epochs 2, 3 and 4: those this run trained
    assert resumed["train_losses"] == whole["train_losses"][2:]
    assert load_checkpoint(last)["train_loss_dict"].keys() == {0, 1, 2, 3, 4}  # the whole curve, kept
    final_whole = load_checkpoint(last_checkpoint_path(whole["model_file"]))["state_dict"]
    final_resumed = load_checkpoint(last)["state_dict"]
    for name, tensor in final_whole.items():
        assert torch.equal(tensor, final_resumed[name]), name
    assert resumed["best_valid_score"] == whole["best_valid_score"]
    assert resumed["test_result"] == whole["test_result"]


@pytest.mark.slow
def test_a_resumed_sampled_softmax_run_restores_its_row_wise_adam(tiny):
    """Sampled softmax trains h and t with RowSparseAdam (two optimizers' states in one dict):
    resuming restores both, so the weights end as the uninterrupted run's."""
    settings = {**tiny, "sampled_negatives": 10, "epochs": 3}
    whole = run("MacridVAE", "tiny", config_dict={**settings, "checkpoint_dir": "whole"})
    with pytest.raises(Interrupt):
        run("MacridVAE", "tiny", config_dict={**settings, "checkpoint_dir": "parts"}, callback_fn=interrupt_after(0))
    (last,) = Path("parts").glob("*.last.pth")
    optimizer = load_checkpoint(last)["optimizer"]  # weights_only=True
    assert set(optimizer) == {"dense", "rows"} and optimizer["rows"]["state"]
    resumed = run("MacridVAE", "tiny", config_dict={**settings, "checkpoint_dir": "parts"}, resume_file=str(last))
    assert resumed["train_losses"] == whole["train_losses"][1:]
    final_whole = load_checkpoint(last_checkpoint_path(whole["model_file"]))["state_dict"]
    final_resumed = load_checkpoint(last)["state_dict"]
    for name, tensor in final_whole.items():
        assert torch.equal(tensor, final_resumed[name]), name


@pytest.mark.slow
def test_resuming_a_run_that_stopped_early_trains_no_further(tiny):
    settings = {**tiny, "epochs": 30, "stopping_step": 0, "checkpoint_dir": "stop"}
    first = run("MacridVAE", "tiny", config_dict=settings)
    assert first["epochs"] < 30  # early stopping ended it
    again = run("MacridVAE", "tiny", config_dict=settings, resume_file=first["model_file"])
    assert again["epochs"] == 0
    assert again["test_result"] == first["test_result"]  # the best model, not overwritten by the last epoch's


def test_two_runs_in_the_same_second_log_to_files_of_their_own(workdir, monkeypatch):
    import recbole.utils.logger as recbole_logger

    monkeypatch.setattr(recbole_logger, "get_local_time", lambda: "Nov-30-2026_02-00-00")  # the same second
    config = Config("MacridVAE", "ml-100k", config_dict={"state": "WARNING"})
    for _ in range(2):
        init_run_logger(config)
    files = sorted(p.name for p in Path("log", "MacridVAE").glob("*.log"))  # RecBole's FileHandler creates them
    assert len(files) == 2, files
    assert all(f.startswith("MacridVAE-ml-100k-Nov-30-2026_02-00-00-") for f in files)
    # TensorBoard's folder is named after the log file up to its first dot: unique as well
    assert len({f.split(".")[0] for f in files}) == 2
