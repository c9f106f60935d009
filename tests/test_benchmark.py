"""A tiny end-to-end benchmark: two models, both protocols, one seed, one epoch."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import benchmark  # noqa: E402
from recbole_disentangle.report import paired_differences  # noqa: E402


@pytest.mark.slow
def test_benchmark_writes_the_table_and_keeps_the_rest_of_the_file(tmp_path):
    out = tmp_path / "results.md"
    out.write_text("# Results\n\nNotes written by hand.\n")
    args = ["--models", "MacridVAE:kfac=2,epochs=2", "MultiVAE", "--seeds", "1", "--out", str(out), "--name", "tiny",
            "--workdir", str(tmp_path / "work"), "--", "--epochs=1", "--paper_heldout_users=50"]
    assert benchmark.main(args) == 0
    text = out.read_text()
    assert "Notes written by hand." in text
    assert "Command: `python benchmarks/benchmark.py --models MacridVAE:kfac=2,epochs=2" in text and "Machine:" in text
    for header in ("| model | recall@10 | ndcg@10 |", "| model | ndcg@100 | recall@20 | recall@50 |"):
        assert header in text
    # The metric tables' rows: 8 or 9 cells (the paired-difference table's rows have 6).
    rows = [line for line in text.splitlines()
            if line.startswith(("| MacridVAE:kfac=2,epochs=2 |", "| MultiVAE |")) and line.count(" | ") >= 7]
    assert len(rows) == 4 and not any("failed" in row for row in rows)
    # A model's own settings win over the common ones: 2 epochs for MacridVAE, 1 for MultiVAE.
    assert all(row.split(" | ")[-4] == ("2" if row.startswith("| MacridVAE") else "1") for row in rows)
    assert benchmark.main(args) == 0  # a second run replaces its section instead of appending
    assert out.read_text().count("<!-- benchmark:tiny -->") == 1


def test_relative_paths_given_to_runs_are_resolved_where_the_user_stands(tmp_path):
    (tmp_path / "features").mkdir()
    args = ["--feature_dir=features", "--epochs=5", "--data_path=/abs/elsewhere", "--name=not_a_path", "--flag"]
    resolved = benchmark.absolute_paths(args, tmp_path)
    assert resolved[0] == f"--feature_dir={(tmp_path / 'features').resolve()}"
    assert resolved[1:] == args[1:]  # numbers, absolute paths, names and bare flags stay as typed


def test_data_path_is_where_the_user_stands_even_when_only_a_default_names_it(tmp_path):
    # The docs' recipe: atomic files converted into ./dataset_atomic, no --data_path typed; runs
    # execute in the work folder, so the plugin's default dataset_atomic/ must mean ./dataset_atomic.
    (tmp_path / "dataset_atomic" / "ml-latest-small").mkdir(parents=True)
    (tmp_path / "dataset_atomic" / "ml-latest-small" / "ml-latest-small.inter").write_text("user_id:token\n")
    args = benchmark.absolute_paths(["--epochs=1"], tmp_path)
    resolved = benchmark.data_path_of_run(args, "MacridVAE", "ml-latest-small", tmp_path)
    assert resolved == ["--epochs=1", f"--data_path={(tmp_path / 'dataset_atomic').resolve()}"]
    # The default folder without the data set is not passed on: ml-100k then comes from RecBole's
    # wheel, which a run refuses once it is told a data path that lacks the data set.
    assert benchmark.data_path_of_run(args, "MacridVAE", "ml-100k", tmp_path) == ["--epochs=1"]
    # Any other data set missing there still gets the folder where the user stands (the sweeps'
    # rule, config.data_path_for_runs_elsewhere): its error, or RecBole's download, names that folder.
    assert benchmark.data_path_of_run(args, "MacridVAE", "ml-1m", tmp_path) == [
        "--epochs=1", f"--data_path={(tmp_path / 'dataset_atomic').resolve()}"]

    # A data_path of a --config_files YAML counts (relative to where the user stands), and
    # --data_path on the command line still wins over it; an absolute one is kept as typed.
    (tmp_path / "my.yaml").write_text("data_path: mine/\n")
    with_yaml = ["--config_files=my.yaml"]
    assert benchmark.data_path_of_run(with_yaml, "MacridVAE", "ml-1m", tmp_path)[-1] == f"--data_path={(tmp_path / 'mine').resolve()}"
    typed = [*with_yaml, "--data_path=not_yet_made"]
    assert benchmark.data_path_of_run(typed, "MacridVAE", "ml-1m", tmp_path)[-1] == f"--data_path={(tmp_path / 'not_yet_made').resolve()}"
    assert benchmark.data_path_of_run(["--data_path=/abs/d"], "MacridVAE", "ml-1m", tmp_path) == ["--data_path=/abs/d"]


def test_run_reads_the_data_set_from_where_the_user_stands(tmp_path, monkeypatch):
    """The whole path from main() to the run's command line: the run's cwd is the work folder,
    its --data_path the user's folder."""
    user = tmp_path / "user"
    (user / "dataset_atomic" / "ml-latest-small").mkdir(parents=True)
    (user / "dataset_atomic" / "ml-latest-small" / "ml-latest-small.inter").write_text("user_id:token\n")
    monkeypatch.chdir(user)
    commands = []
    monkeypatch.setattr(benchmark, "run_one", lambda *a, **k: (commands.append(a), {"error": "boom"})[1])
    monkeypatch.setattr(benchmark, "machine", lambda: "test")
    assert benchmark.main(["--dataset", "ml-latest-small", "--protocols", "paper", "--seeds", "1", "--models", "MacridVAE",
                           "--out", str(tmp_path / "out.md"), "--workdir", str(tmp_path / "work")]) == 0
    (run,) = commands  # run_one(label, model, dataset, protocol, seed, settings, workdir, resume)
    assert run[-2] == tmp_path / "work"
    assert f"--data_path={(user / 'dataset_atomic').resolve()}" in run[5]


def test_an_ablation_row_shows_its_own_paper_figures_never_the_full_models():
    published = benchmark.paper_values("sem-table2-ml-latest-small")
    full = published["SEM-MacridVAE"]
    assert benchmark.published_for("SEM-MacridVAE", published) == full
    assert benchmark.published_for("SEM-MacridVAE:config_files=a.yaml,kfac=7", published) == full
    no_visual = benchmark.published_for("SEM-MacridVAE:config_files=a.yaml,visual_init=false", published)
    assert no_visual == published["SEM-MacridVAE:visual_init=False"] != full
    assert benchmark.published_for("SEM-MacridVAE:category_supervision=False", published)["ndcg@100"] == 0.34469
    assert benchmark.published_for("MacridVAE:kfac=2", published) == published["MacridVAE"]
    assert benchmark.published_for("BPR", published) is None


def test_resume_reuses_finished_runs_and_never_a_stale_file_of_a_failed_one(tmp_path, monkeypatch):
    finished = tmp_path / "MacridVAE_kfac_2-paper-1.json"
    finished.write_text('{"test_result": {"ndcg@100": 0.5}}')
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return type("Done", (), {"returncode": 1, "stderr": "boom", "stdout": ""})()

    monkeypatch.setattr(benchmark.subprocess, "run", fake_run)
    kept = benchmark.run_one("MacridVAE:kfac=2", "MacridVAE", "ml-100k", "paper", 1, [], tmp_path, resume=True)
    assert kept == {"test_result": {"ndcg@100": 0.5}, "seed": 1} and not calls
    rerun = benchmark.run_one("MacridVAE:kfac=2", "MacridVAE", "ml-100k", "paper", 1, [], tmp_path, resume=False)
    assert len(calls) == 1 and rerun["error"].startswith("exit 1") and not finished.exists()


def result(seed, users, ndcg):
    return {"seed": seed, "test_per_user": {"user": users, "ndcg@100": ndcg}}


def test_paired_differences_pair_the_same_users_of_the_same_seed():
    # B is A minus 0.1 for every user: a certain win although the users' scores vary widely.
    a = [result(1, [5, 6, 7], [0.9, 0.5, 0.1]), result(2, [5, 8, 9], [0.2, 0.6, 0.4])]
    b = [result(1, [7, 6, 5], [0.0, 0.4, 0.8]), result(2, [9, 8, 5], [0.3, 0.5, 0.1])]
    c = [result(1, [5, 6, 7], [0.9, 0.4, 0.2]), result(2, [5, 8, 9], [0.2, 0.7, 0.3])]  # +-0.1 noise: a tie
    lines = paired_differences({"A": a, "B": b, "C": c}, "A", ["ndcg@100"])
    row_b = next(line for line in lines if line.startswith("| B |"))
    row_c = next(line for line in lines if line.startswith("| C |"))
    assert "+0.1000 ± 0.0000" in row_b and "| 6 | better |" in row_b
    assert "+0.0000" in row_c and row_c.endswith("| 6 | tie |")
    assert paired_differences({"B": b}, "A", ["ndcg@100"]) == []


def test_a_run_still_rising_at_its_end_is_flagged_and_a_plateau_is_not():
    rising = {"valid_scores": [(e, 0.1 + 0.01 * e) for e in range(40)]}
    plateau = {"valid_scores": [(e, min(0.3, 0.01 * e) + 0.02 * (e % 2)) for e in range(80)]}
    assert benchmark.still_improving(rising)
    assert not benchmark.still_improving(plateau)
    assert benchmark.still_improving({"valid_scores": [(e, 1 - 0.01 * e) for e in range(40)], "valid_score_bigger": False})
