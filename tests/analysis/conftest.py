"""Small trained models for the analysis tests: MacridVAE on a planted data set of 300 users."""

from __future__ import annotations

import pytest

from recbole_disentangle.data.synthetic import generate, write_atomic

# A few seconds on one CPU thread: enough training for an analysis to run on, not to be good.
TINY = {"show_progress": False, "state": "WARNING", "epochs": 20, "kfac": 3, "embedding_size": 16, "seed": 1}


@pytest.fixture(scope="module", autouse=True)
def _run_in_tmp(tmp_path_factory):
    """Analyses and load_data_and_model rebuild a run, and RecBole writes ./log when they do: run
    every analysis test module in a folder of its own under tmp, not in the working directory.
    (Autouse at module scope: it comes before the modules' own module-scoped fixtures.)"""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("analysis-cwd"))
        yield


def _train(folder, settings):
    from recbole_disentangle.quick_start import run

    data = generate(n_concepts=3, items_per_concept=40, n_users=300, seed=0)
    write_atomic(data, folder / "data", name="planted")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = run("MacridVAE", "planted", config_dict={"data_path": str(folder / "data"), **TINY, **settings})
    return folder / result["model_file"]


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """A checkpoint whose data set has categories (``concept``), factors and titles."""
    return _train(tmp_path_factory.mktemp("tiny"), {})


@pytest.fixture(scope="session")
def tiny_model_without_categories(tmp_path_factory):
    """The same data with the ``concept`` column left unloaded (load_col), and factor_1 declared an
    angle in fractions of a turn (``circular_fields``)."""
    settings = {
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "factor_0", "factor_1", "title"]},
        "circular_fields": ["factor_1:1"],
    }
    return _train(tmp_path_factory.mktemp("tiny_nocat"), settings)
