"""Ray Tune sweeps: space files, search algorithms, a CI sweep with a failing trial, resume."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recbole_disentangle import registry
from recbole_disentangle.config import Config, load_yaml_file, model_defaults, properties_dir
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.tuning import (
    SUMMARY_CSV,
    Dist,
    RayAPI,
    init_ray,
    ray_param_space,
    read_space,
    resume_sweep,
    run_sweep,
    tpe_searcher,
    trial_settings,
)

SPACES = sorted((properties_dir() / "tune").glob("*.yaml"))
# Small, fast trials: 1 epoch of a small MacridVAE on ml-100k (~0.3 s per epoch).
TRIAL = {"epochs": 1, "embedding_size": 16, "show_progress": False, "eval_step": 1}
RAY = {"num_cpus": 2, "object_store_memory": 100 * 1024 * 1024}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---- space files ---------------------------------------------------------------------------
def test_spaces_ship_for_every_model_the_issue_names():
    names = {p.stem for p in SPACES}
    assert {"MacridVAE", "SEM-MacridVAE", "AD-DRL", "MultiVAE", "MultiDAE", "BPR", "LightGCN", "DGCF"} <= names


@pytest.mark.parametrize("space", SPACES, ids=lambda p: p.stem)
def test_every_shipped_space_names_settings_the_model_has(space):
    searched, _ = read_space(space)
    ray_param_space(searched, {}, "random")
    if space.stem not in registry.available_models():
        pytest.skip(f"{space.stem} is not registered in this checkout")
    if registry.is_plugin_model(space.stem):  # its YAML documents every hyper-parameter (no data needed)
        known = model_defaults(space.stem)  # its YAML, over its parent model's
    else:
        known = Config(space.stem, "ml-100k").final_config_dict
    for key in searched:
        outer, _, inner = key.partition(".")
        assert outer in known, f"{space.name}: {key}"
        if inner:
            assert inner in known[outer], f"{space.name}: {key}"


def test_macridvae_space_has_the_baselines_ranges():
    # Equal budgets need equal ranges: 20 TPE trials in the papers' learning rate 1e-8..1 and
    # beta 0..100 were mostly spent on settings that do not train (docs/results.md).
    ours, ours_fixed = read_space(properties_dir() / "tune" / "MacridVAE.yaml")
    recbole_macrid, recbole_fixed = read_space(properties_dir() / "tune" / "RecBoleMacridVAE.yaml")
    multivae, multivae_fixed = read_space(properties_dir() / "tune" / "MultiVAE.yaml")
    for key in ("learning_rate", "dropout_prob", "encoder_hidden_size", "kfac", "anneal_epochs"):
        assert ours[key] == recbole_macrid[key], key
    assert ours["beta"] == recbole_macrid["anneal_cap"] == multivae["anneal_cap"]  # the KL weight's cap
    assert ours["std"] == Dist("uniform", [0.075, 0.5])  # sigma0: the papers' range
    assert ours_fixed["train_batch_size"] == recbole_fixed["train_batch_size"] == multivae_fixed["train_batch_size"] == 100
    assert "embedding_size" not in ours and "tau" not in ours  # fixed in the papers


def test_recbole_and_ray_forms_and_fixed_values(tmp_path):
    space = write(tmp_path / "s.yaml", (
        "learning_rate: loguniform -8, 0\n"
        "dropout_prob: uniform 0.1, 0.5\n"
        "kfac: choice [2, 4]\n"
        "embedding_size: {quniform: [16, 64, 16]}\n"
        "std: {grid: [0.1, 0.2]}\n"
        "similarity: cosine\n"
        "eval_args: {split: {RS: [0.8, 0.1, 0.1]}}\n"
    ))
    searched, fixed = read_space(space)
    assert searched["learning_rate"].kind == "loguniform"
    assert searched["learning_rate"].args == pytest.approx([math.exp(-8), 1.0])  # RecBole's bounds are exponents
    assert searched["dropout_prob"] == Dist("uniform", [0.1, 0.5])
    assert searched["kfac"] == Dist("choice", [2, 4])
    assert fixed == {"similarity": "cosine", "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}}}
    from ray import tune

    grid = ray_param_space(searched, fixed, "grid")
    assert grid["kfac"] == tune.grid_search([2, 4])  # --search_alg=grid makes choices grids
    assert ray_param_space(searched, fixed, "random")["kfac"].categories == [2, 4]
    with pytest.raises(ConfigError, match="'std' is a grid, which TPE cannot search"):
        ray_param_space(searched, fixed, "tpe")


@pytest.mark.parametrize("line, message", [
    ("kfac: {randint: [5, 2]}", "needs low < high"),
    ("kfac: {randint: [1.5, 4]}", "needs integers"),
    ("learning_rate: {loguniform: [-8, 0]}", "needs low > 0"),
    ("learning_rate: {uniform: [0.1]}", r"needs a list \[low, high\]"),
    ("learning_rate: uniform 0.1", "not of the form 'uniform low, high'"),
    ("encoder_hidden_size: {layers: 2, units: {choice: [50]}}", "'encoder_hidden_size.layers' must be a distribution"),
])
def test_malformed_space_names_file_and_key(tmp_path, line, message):
    space = write(tmp_path / "bad.yaml", line + "\n")
    with pytest.raises(ConfigError, match=message) as err:
        read_space(space)
    assert "bad.yaml" in str(err.value)


def test_hidden_layer_stack_and_nested_entries_become_settings():
    params = {"encoder_hidden_size": {"layers": 2, "units": 350}, "train_neg_sample_args.sample_num": 8,
              "kfac": __import__("numpy").int64(3)}
    base = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 4}}
    settings = trial_settings(params, base)
    assert settings == {"encoder_hidden_size": [350, 350], "kfac": 3,
                        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 8}}
    assert type(settings["kfac"]) is int
    assert trial_settings({"encoder_hidden_size": {"layers": 0, "units": 50}}) == {"encoder_hidden_size": []}


def test_tpe_without_optuna_or_hyperopt_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    monkeypatch.setitem(sys.modules, "hyperopt", None)
    with pytest.raises(ConfigError, match=r"--search_alg=tpe needs optuna or hyperopt.*pip install optuna.*--search_alg=random"):
        tpe_searcher("tpe", seed=0)
    with pytest.raises(ConfigError, match="--search_alg=hyperopt needs hyperopt.*pip install hyperopt"):
        tpe_searcher("hyperopt", seed=0)


def test_space_errors_come_before_ray_starts(workdir):
    import ray

    write(workdir / "typo.yaml", "learnin_rate: {loguniform: [1.0e-4, 1.0e-2]}\n")
    with pytest.raises(ConfigError, match="learnin_rate is not a setting of MacridVAE"):
        run_sweep("MacridVAE", "ml-100k", "typo.yaml", settings=dict(TRIAL), experiment_dir="exp", ray_init=RAY)
    write(workdir / "ok.yaml", "kfac: {choice: [2, 3]}\n")
    with pytest.raises(ConfigError, match="kfac is both searched"):
        run_sweep("MacridVAE", "ml-100k", "ok.yaml", settings={**TRIAL, "kfac": 2}, experiment_dir="exp", ray_init=RAY)
    with pytest.raises(ConfigError, match="'tau' = 0 is invalid"):  # the fixed settings are checked too
        run_sweep("MacridVAE", "ml-100k", "ok.yaml", settings={**TRIAL, "tau": 0}, experiment_dir="exp", ray_init=RAY)
    with pytest.raises(ConfigError, match="No search space is shipped for NeuMF.*MacridVAE"):
        run_sweep("NeuMF", "ml-100k", None, settings=dict(TRIAL), ray_init=RAY)
    assert not ray.is_initialized()


def test_plain_runs_and_help_do_not_import_ray(repo_env):
    from recbole_disentangle.cli import build_parser

    code = ("import sys; from recbole_disentangle import cli, quick_start; cli.build_parser().format_help(); "
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray imported'")
    subprocess.run([sys.executable, "-c", code], env=repo_env, check=True)
    out = build_parser().format_help()
    for option in ("--tune", "--resume_sweep", "--search_alg", "--scheduler", "--gpus_per_trial",
                   "--max_concurrent_trials", "--ray_address", "--experiment_dir", "--trial_time_limit"):
        assert option in out


def test_ray_api_shim_finds_report_and_run_config():
    api = RayAPI()
    assert callable(api.report_fn) and callable(api.trial_dir)
    api.RunConfig(name="x", storage_path="/tmp")


# ---- sweeps on ml-100k (local Ray, 2 CPUs) -------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    import ray

    init_ray(**RAY)
    yield
    ray.shutdown()


def read_summary(experiment: Path) -> list[dict]:
    with open(experiment / SUMMARY_CSV, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_ci_sweep_records_a_failing_trial_and_its_best_yaml_trains(workdir, local_ray, capsys):
    # tau = 0 is rejected by MacridVAE.check_config inside its trial: recorded as failed, the others finish.
    write(workdir / "space.yaml", "tau: {grid: [0.1, 0, 0.2]}\n")
    summary = run_sweep("MacridVAE", "ml-100k", "space.yaml", settings={**TRIAL, "epochs": 2},
                        experiment_dir="exp", search_alg="grid", max_concurrent_trials=2)
    experiment = workdir / "exp"
    rows = read_summary(experiment)
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED", "ERROR"]
    scores = [float(r["valid_ndcg@10"]) for r in rows[:2]]
    assert scores == sorted(scores, reverse=True) and all(0.01 < s < 0.6 for s in scores)
    assert {r["tau"] for r in rows[:2]} == {"0.1", "0.2"} and all(r["epochs"] == "2" for r in rows[:2])
    assert rows[2]["tau"] == "0" and "'tau' = 0 is invalid" in rows[2]["error"]
    assert not summary["interrupted"]

    markdown = (experiment / "summary.md").read_text()
    assert "1 failed" in markdown and "Test metrics of the best trial" in markdown
    assert set(summary["best_test_result"]) >= {"ndcg@10", "recall@20"}
    for row in rows[:2]:  # Ray's TensorBoard events per trial (curves + hparams) and RecBole's own
        trial_dir = experiment / row["trial"]
        assert list(trial_dir.glob("events.out.tfevents*")), trial_dir
        assert list(trial_dir.glob("log_tensorboard/*/events.out.tfevents*"))
        progress = list(csv.DictReader(open(trial_dir / "progress.csv")))
        assert [int(p["epoch"]) for p in progress] == [1, 2, 2]  # every epoch, then the final report

    best_yaml = experiment / "best_config.yaml"
    best = load_yaml_file(best_yaml)
    # The command line's run length (epochs, eval_step) and show_progress stay out: the sweep's are
    # chosen for speed, not part of the configuration; the header names them.
    assert best == {"embedding_size": 16, "tau": float(rows[0]["tau"])}
    assert "# Left out: " in best_yaml.read_text() and "epochs=2" in best_yaml.read_text()
    # The second command of a sweep: train with the best configuration (here with the sweep's run length).
    from recbole_disentangle.cli import main

    assert main(["--model=MacridVAE", "--dataset=ml-100k", "--config_files", str(best_yaml), "--epochs=2",
                 "--eval_step=1", "--show_progress=false", "--result_json=best.json"]) == 0
    retrained = json.loads((workdir / "best.json").read_text())
    assert retrained["best_valid_score"] == pytest.approx(scores[0], abs=1e-4)  # same seed, same settings


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_rerunning_finished_trials(workdir, local_ray):
    from ray.tune import Callback

    marker = workdir / "interrupted"

    class Interrupt(Callback):
        """Presses Ctrl+C once, when the first trial has finished (a marker file, not an attribute:
        Tuner.restore unpickles the run config with its callbacks)."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            if not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGINT)

    write(workdir / "space.yaml", "kfac: {grid: [2, 3, 4]}\n")
    # 2 epochs per trial, 2 at a time: the second trial is mid-run when the first one ends.
    first = run_sweep("MacridVAE", "ml-100k", "space.yaml", settings={**TRIAL, "epochs": 2}, experiment_dir="exp",
                      search_alg="grid", max_concurrent_trials=2, callbacks=[Interrupt()])
    assert "resume it with `python run_recbole_dis.py --resume_sweep=" in (workdir / "exp" / "summary.md").read_text()
    experiment = workdir / "exp"
    assert first["interrupted"] and first["resume_command"].endswith(f"--resume_sweep={experiment}")
    statuses = {r["trial"]: r["status"] for r in read_summary(experiment)}
    done = {t for t, status in statuses.items() if status == "COMPLETED"}
    assert 1 <= len(done) < 3
    # The trials Ray stopped at the interruption are not "STOPPED" (the scheduler's word)
    assert set(statuses.values()) <= {"COMPLETED", "INTERRUPTED"}, statuses
    # best_config.yaml comes from a finished trial only
    assert first["best"]["trial"] in done
    progress = {t: (experiment / t / "progress.csv").read_text() for t in done}

    with pytest.raises(ConfigError, match="already holds a sweep.*--resume_sweep"):
        run_sweep("MacridVAE", "ml-100k", "space.yaml", settings=dict(TRIAL), experiment_dir="exp")

    second = resume_sweep("exp")
    assert not second["interrupted"]
    rows = read_summary(experiment)
    assert sorted(r["kfac"] for r in rows) == ["2", "3", "4"] and {r["status"] for r in rows} == {"COMPLETED"}
    for trial, text in progress.items():  # finished trials were not run again
        assert (experiment / trial / "progress.csv").read_text() == text
    for row in rows:  # a re-run trial has its new epochs only, and one run's checkpoints
        epochs = [int(p["epoch"]) for p in csv.DictReader(open(experiment / row["trial"] / "progress.csv"))]
        assert epochs == [1, 2, 2], (row["trial"], epochs)
        assert len(list((experiment / row["trial"] / "checkpoints").glob("*.pth"))) <= 2  # best and last


def test_unfinished_trials_give_no_best_config_unless_asked(tmp_path):
    """summarize() on a sweep whose only scored trial was cut short: no best_config.yaml, the
    summary says why; --best_from_unfinished writes it."""
    from types import SimpleNamespace

    import pandas as pd

    from recbole_disentangle.tuning import ENDED_TRIALS, SweepSpec, summarize

    space = write(tmp_path / "space.yaml", "kfac: {choice: [2, 3]}\n")
    (tmp_path / ENDED_TRIALS).write_text("")  # no trial ended by the sweep's own course
    result = SimpleNamespace(metrics_dataframe=pd.DataFrame({"valid_ndcg@10": [0.1], "epoch": [1]}),
                             metrics={"valid_ndcg@10": 0.1, "epoch": 1}, error=None, config={"kfac": 2},
                             path=str(tmp_path / "MacridVAE_abc12345"))
    grid = [result]
    spec = SweepSpec(model="MacridVAE", dataset="ml-100k", space_file=str(space), experiment_dir=str(tmp_path),
                     settings={"epochs": 50}, user_keys=["epochs"], metric="valid_ndcg@10", expected_trials=1)
    summary = summarize(grid, spec)
    assert summary["rows"][0]["status"] == "INTERRUPTED" and summary["interrupted"]
    assert summary["best"] is None and not (tmp_path / "best_config.yaml").exists()
    assert "--best_from_unfinished" in (tmp_path / "summary.md").read_text()
    spec.best_from_unfinished, spec.best_keeps_run_settings = True, True
    summary = summarize(grid, spec)
    assert load_yaml_file(tmp_path / "best_config.yaml") == {"kfac": 2, "epochs": 50}


def test_interrupted_sweep_exits_non_zero_with_the_resume_command(monkeypatch, capsys, workdir):
    from recbole_disentangle import cli, tuning

    summary_md = write(workdir / "summary.md", "# Sweep\n")
    seen = {}

    def fake_sweep(*args, **options):
        seen.update(options)
        return {"summary_md": str(summary_md), "experiment_dir": "exp", "interrupted": True,
                "rows": [{"status": "INTERRUPTED"}], "resume_command": "python run_recbole_dis.py --resume_sweep=/x/exp"}

    monkeypatch.setattr(tuning, "run_sweep", fake_sweep)
    assert cli.main(["--tune", "--strict", "--epochs=1"]) == cli.SWEEP_INTERRUPTED != 0
    assert "--resume_sweep=/x/exp" in capsys.readouterr().err
    assert seen["strict"] is True  # --strict reaches the trials (SweepSpec.strict -> quick_start.run)


@pytest.mark.parametrize("package", ["optuna", "hyperopt"])
def test_shipped_spaces_suit_the_tpe_searchers(package):
    pytest.importorskip(package)
    for space in SPACES:
        searched, fixed = read_space(space)
        searcher = tpe_searcher(package, seed=0)
        assert searcher.set_search_properties("valid_ndcg@10", "max", ray_param_space(searched, fixed, package))
        params = trial_settings(searcher.suggest("trial-1"), {"train_neg_sample_args": {"sample_num": 4}})
        assert set(params) >= {k.split(".")[0] for k in searched}, space.name
        for key in ("encoder_hidden_size", "mlp_hidden_size"):
            if key in params:
                sizes = params[key]
                assert len(sizes) <= 3 and all(50 <= s <= 700 and s % 50 == 0 for s in sizes)


def test_sweep_command_errors_are_reported_like_other_errors(workdir, capsys):
    from recbole_disentangle.cli import main

    assert main(["--tune=missing.yaml", "--epochs=1"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert main(["--resume_sweep=nowhere"]) == 2
    assert "holds no sweep" in capsys.readouterr().err
    assert main(["--model=NeuMF", "--tune"]) == 2  # --tune alone: the space shipped for the model
    assert "No search space is shipped for NeuMF" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_joins_an_existing_ray_cluster(tmp_path, repo_env):
    """--ray_address: trials run on a cluster started beforehand (here a head node on loopback)."""
    import socket

    with socket.socket() as probe:  # a free port for the head node
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    # --block keeps `ray start` in the foreground as the parent of the node's processes, in a
    # session of its own: the test stops exactly this node (`ray stop` would also kill any other
    # Ray instance on the machine, a user's sweep included).
    head = subprocess.Popen(
        [*ray_cli, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats"],
        env=repo_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # wait until the head node's GCS accepts connections
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None and time.monotonic() < deadline, "the Ray head node did not start"
            time.sleep(0.5)
        write(tmp_path / "space.yaml", "tau: {grid: [0.1, 0.2]}\n")
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve().parent.parent / "run_recbole_dis.py"), "--model=MacridVAE",
             "--dataset=ml-100k", "--tune=space.yaml", "--search_alg=grid", "--epochs=1", "--embedding_size=8",
             "--show_progress=false", f"--ray_address=127.0.0.1:{port}", "--experiment_dir=exp"],
            cwd=tmp_path, env=repo_env, capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        rows = read_summary(tmp_path / "exp")
        assert len(rows) == 2 and all(row["status"] == "COMPLETED" for row in rows)
        # without --ray_address a sweep starts its own Ray even while that cluster runs (plain
        # ray.init() would join it and refuse --num_cpus)
        alone = subprocess.run(
            [sys.executable, str(Path(__file__).resolve().parent.parent / "run_recbole_dis.py"), "--model=MacridVAE",
             "--dataset=ml-100k", "--tune=space.yaml", "--search_alg=grid", "--epochs=1", "--embedding_size=8",
             "--show_progress=false", "--num_cpus=1", "--experiment_dir=alone"],
            cwd=tmp_path, env={k: v for k, v in repo_env.items() if k != "RAY_ADDRESS"}, capture_output=True, text=True,
            timeout=600,
        )
        assert alone.returncode == 0, alone.stderr[-2000:]
        assert len(read_summary(tmp_path / "alone")) == 2
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
