"""What a run prints for a person: the epoch line, the filtered warnings, the report command, the PNGs."""

import json
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

from recbole_disentangle import compat, figures
from recbole_disentangle.cli import main
from recbole_disentangle.console import aligned, format_duration, format_epoch_line
from recbole_disentangle.report import main as report_main

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import benchmark  # noqa: E402


def test_epoch_line_says_epoch_of_budget_loss_metric_best_patience_and_time():
    line = format_epoch_line(12, 200, 5677.83, "ndcg@10", 0.15412, best=0.1601, best_epoch=9, patience_left=7,
                             elapsed=75, remaining=3725)
    assert line.startswith("epoch  12/200")
    for part in ("loss 5677.8", "valid ndcg@10 0.1541", "best 0.1601 (epoch 9)", "patience 7 left",
                 "1:15 elapsed", "≤ 1:02:05 left"):
        assert part in line
    # A model with several loss terms: the sum is what was trained.
    assert "loss 3" in format_epoch_line(1, 5, (1.0, 2.0))
    assert "not validated" in format_epoch_line(2, 5, 1.0, elapsed=1, remaining=3)
    assert "early stop" in format_epoch_line(30, 200, 1.0, "ndcg@10", 0.1, best=0.2, patience_left=-1)


def test_durations_and_aligned_columns():
    assert [format_duration(s) for s in (0, 59.6, 61, 3600)] == ["0:00", "1:00", "1:01", "1:00:00"]
    lines = aligned([["metric", "test"], ["ndcg@10", "0.1933"]])
    assert lines == ["metric   test", "ndcg@10  0.1933"]


RECBOLE_WARNINGS = [
    (FutureWarning, "A value is trying to be set on a copy of a DataFrame or Series through chained assignment "
                    "using an inplace method.\nThe behavior will change in pandas 3.0.", "recbole.data.dataset.dataset"),
    (FutureWarning, "using <built-in function len> in Series.agg cannot aggregate and has been deprecated. "
                    "Use Series.transform to keep behavior unchanged.", "recbole.data.dataset.dataset"),
    (FutureWarning, "`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use "
                    "`torch.amp.GradScaler('cuda', args...)` instead.", "recbole.trainer.trainer"),
]


def shown(category, message, module) -> list:
    """The warnings that reach the user when ``module`` warns ``message``, after the known ones are filtered."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # pytest's own filters must not hide anything here
        compat.filter_known_warnings()
        warnings.warn_explicit(message, category, filename=module.replace(".", "/") + ".py", lineno=1, module=module)
    return caught


@pytest.mark.parametrize("category, message, module", RECBOLE_WARNINGS)
def test_recbole_known_harmless_warnings_are_filtered_where_they_arise(category, message, module):
    assert shown(category, message, module) == []
    # The same message from any other module still shows: the filter is by message and module.
    assert len(shown(category, message, "my_project.code")) == 1


def test_a_new_warning_from_recbole_still_shows():
    assert len(shown(FutureWarning, "Something new changes in pandas 4.", "recbole.data.dataset.dataset")) == 1
    assert len(shown(UserWarning, "using <built-in function len> in Series.agg", "recbole.data.dataset.dataset")) == 1


def result_file(path: Path, model: str, seed: int, users: list[int], ndcg: list[float]) -> Path:
    per_user = {"user": users, "ndcg@100": ndcg}
    mean = sum(ndcg) / len(ndcg)
    path.write_text(json.dumps({
        "model": model, "dataset": "ml-100k", "eval_protocol": "paper", "seed": seed, "epochs": 3,
        "test_result": {"ndcg@100": mean, "ndcg@100_se": 0.01, "users": len(users)}, "test_per_user": per_user,
    }))
    return path


def test_report_compares_two_result_files_with_their_paired_difference(tmp_path, capsys):
    a = result_file(tmp_path / "a.json", "MacridVAE", 1, [5, 6, 7, 8], [0.9, 0.5, 0.1, 0.4])
    b = result_file(tmp_path / "b.json", "MultiVAE", 1, [8, 7, 6, 5], [0.3, 0.0, 0.4, 0.8])  # A minus 0.1 each
    assert report_main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert "MacridVAE" in header and "MultiVAE" in header
    assert "0.4750 ± 0.0100" in out and "0.3750 ± 0.0100" in out
    assert "MacridVAE minus MultiVAE, paired on 4 shared test users" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("ndcg@100") and "+0.1000" in line)
    assert row.split()[-1] == "better"  # the same 0.1 for every user: no doubt


def test_report_says_why_runs_cannot_be_paired(tmp_path, capsys):
    a = result_file(tmp_path / "a.json", "MacridVAE", 1, [5, 6, 7], [0.9, 0.5, 0.1])
    b = result_file(tmp_path / "b.json", "MacridVAE", 2, [8, 9, 10], [0.3, 0.0, 0.4])  # another seed's users
    assert report_main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "MacridVAE (a.json)" in out and "share no test users" in out


def assert_png(path) -> None:
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def benchmark_result(seed, ndcg):
    return {"seed": seed, "epochs": 10, "seconds_per_epoch": 0.5, "peak_memory_mb": {"cpu_rss": 600.0},
            "test_result": {"ndcg@100": ndcg, "ndcg@100_se": 0.02, "recall@20": ndcg, "recall@20_se": 0.02,
                            "recall@50": ndcg, "recall@50_se": 0.03, "users": 50}}


def test_benchmark_draws_a_figure_per_protocol_and_links_it(tmp_path):
    runs = {"MacridVAE": [benchmark_result(1, 0.30), benchmark_result(2, 0.32)],
            "MultiVAE:config_files=properties/tuned/x.yaml": [benchmark_result(1, 0.28), {"error": "exit 1"}]}
    published = {"MacridVAE": {"ndcg@100": 0.289, "recall@20": 0.31, "recall@50": 0.41}}
    lines = benchmark.figure_lines(tmp_path / "results.md", "tiny", "paper", runs, published, speed=True)
    assert "![tiny, " in lines[1] and "(figures/tiny-paper.png)" in lines[1]
    assert "(figures/tiny-paper-speed.png)" in lines[3]
    assert_png(tmp_path / "figures" / "tiny-paper.png")
    assert_png(tmp_path / "figures" / "tiny-paper-speed.png")


def test_learning_curve_png(tmp_path):
    path = figures.learning_curve(tmp_path / "run.curve.png",
                                  [(0, 9.0), (1, 7.5), (2, 7.0)], [(0, 0.1), (1, 0.2), (2, 0.18)], "ndcg@10")
    assert_png(path)


@pytest.mark.slow
def test_a_run_prints_settings_data_epochs_table_and_paths(workdir, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as a user's console would: pytest's filters off
        code = main(["--model=MacridVAE", "--dataset=ml-100k", "--epochs=2", "--embedding_size=16", "--kfac=2"])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    first_epoch = next(i for i, line in enumerate(out) if line.startswith("epoch"))
    assert first_epoch <= 25
    assert out[0].startswith("MacridVAE on ml-100k, RecBole protocol")
    assert any(line.startswith("  epochs = 2") and "--epochs on the command line" in line for line in out)
    assert any(line.startswith("Data: 943 users, 1,682 items, 100,000 interactions") for line in out)
    assert out[first_epoch].startswith("epoch 1/2") and "valid ndcg@10" in out[first_epoch + 1]
    assert any(line.strip().startswith("ndcg@10") for line in out)
    paths = dict(line.split(None, 1) if not line.startswith(("result json", "learning curve")) else
                 (line[:14].strip(), line[14:].strip()) for line in out[-5:])
    assert set(paths) == {"checkpoint", "log", "tensorboard", "result json", "learning curve"}
    for name in ("checkpoint", "log", "result json"):
        assert (workdir / paths[name]).is_file(), name
    assert (workdir / paths["tensorboard"]).is_dir()
    assert_png(workdir / paths["learning curve"])
    assert json.loads((workdir / paths["result json"]).read_text())["epochs"] == 2
    recbole_future = [w for w in caught if issubclass(w.category, FutureWarning) and "recbole" in w.filename]
    assert recbole_future == []


@pytest.mark.slow
def test_quiet_prints_only_the_metrics_table(workdir, capsys):
    assert main(["--model=MacridVAE", "--dataset=ml-100k", "--epochs=1", "--embedding_size=16", "--kfac=2",
                 "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("Test results: MacridVAE on ml-100k")
    assert out[1].split() == ["metric", "test", "valid", "(best", "epoch)"]
    assert len(out) == 2 + 10  # RecBole's 5 metrics at 2 cut-offs
