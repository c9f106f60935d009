#!/usr/bin/env python
"""Train and evaluate models side by side under RecBole's protocol and the papers' protocol.

    python benchmarks/benchmark.py --dataset ml-100k --seeds 1 2 3 \\
        --models MultiDAE MultiVAE RecBoleMacridVAE DGCF MacridVAE --protocols recbole paper \\
        --out docs/results.md --name ml-100k

Every (protocol, model, seed) is one run of ``run_recbole_dis.py`` in its own process, so peak
memory is that run's own and nothing leaks between runs. A model is a name accepted by
``--model`` (any model of this package or of RecBole), optionally with settings of its own:
``MacridVAE:test_assignment=softmax,kfac=1``. Any ``--key=value`` after ``--`` applies to all
runs (e.g. ``-- --epochs=100 --paper_heldout_users=50``).

The markdown table (mean +- spread over seeds, seconds per training epoch, peak memory) goes
into ``--out`` between ``<!-- benchmark:NAME -->`` markers; the rest of that file is kept. Beside
each table, a PNG per protocol in ``figures/`` next to ``--out`` (one bar per model with its
standard error, the paper's value marked where ``--paper_table`` has one; with ``--speed_figure``
also seconds per epoch and peak memory per model), linked from the section. ``--resume`` with the
same command re-renders the section and its figures from the saved results without training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the package of this checkout, for its report and figures

from recbole_disentangle import figures  # noqa: E402
from recbole_disentangle.evaluation.protocols import PROTOCOLS  # noqa: E402
from recbole_disentangle.report import paired_differences  # noqa: E402

PAPER_VALUES = Path(__file__).resolve().parent / "paper_values.yaml"
# Each protocol's table columns and heading come from its registered object (evaluation/protocols.py).
PROTOCOL_METRICS = {name: list(protocol.metrics) for name, protocol in PROTOCOLS.items()}
PROTOCOL_TITLES = {name: protocol.title for name, protocol in PROTOCOLS.items()}


def parse_model(spec: str) -> tuple[str, str, list[str]]:
    """'Name:key=value,key=value' -> (label, model name, ['--key=value', ...])."""
    name, _, settings = spec.partition(":")
    args = [f"--{item.strip()}" for item in settings.split(",") if item.strip()]
    return spec, name, args


def merge_settings(common: list[str], own: list[str]) -> list[str]:
    """``--key=value`` lists merged by key, the model's own settings winning over the common ones."""
    merged = {}
    for arg in [*common, *own]:
        merged[arg.split("=", 1)[0]] = arg
    return list(merged.values())


def absolute_paths(args: list[str], base: Path) -> list[str]:
    """``--key=value`` with every value that names an existing file or folder under ``base`` made absolute.

    Runs execute inside the work folder (RecBole writes ``log/`` and ``saved/`` into the current
    folder), so a relative ``--feature_dir=dataset_atomic/ml-100k`` typed by the user would
    otherwise point into the work folder instead of where the user stands.
    """
    resolved = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and value and not Path(value).is_absolute() and (base / value).exists():
            arg = f"{key}={(base / value).resolve()}"
        resolved.append(arg)
    return resolved


def data_path_of_run(args: list[str], model: str, dataset: str, base: Path) -> list[str]:
    """``args`` with the run's ``--data_path`` spelled out, absolute (relative ones taken from ``base``).

    Runs execute in the work folder, so a relative data_path anywhere (the plugin's default
    ``dataset_atomic/``, a ``--config_files`` YAML, ``--data_path`` itself) must mean where the
    user stands, as it does for ``run_recbole_dis.py``. The rule is the sweeps' too:
    :func:`recbole_disentangle.config.data_path_for_runs_elsewhere`.
    """
    from recbole_disentangle.config import data_path_for_runs_elsewhere

    value, config_files, rest = None, [], []
    for arg in args:
        key, _, text = arg.partition("=")
        if key == "--data_path":
            value = text
            continue
        if key == "--config_files":
            config_files += [f if Path(f).is_absolute() else str(base / f) for f in text.split()]
        rest.append(arg)
    path = data_path_for_runs_elsewhere(model, dataset, config_files, value, base)
    return rest if path is None else [*rest, f"--data_path={path}"]


def run_one(
    label: str, model: str, dataset: str, protocol: str, seed: int, extra: list[str], workdir: Path, resume: bool = False
) -> dict:
    # Named after the label, not the model: two variants of one model must not share a file.
    result_file = workdir / f"{re.sub(r'[^A-Za-z0-9]+', '_', label)}-{protocol}-{seed}.json"
    if resume and result_file.is_file():
        return {**json.loads(result_file.read_text()), "seed": seed}
    result_file.unlink(missing_ok=True)  # a failed run must not leave an older result behind
    command = [
        sys.executable, str(REPO_ROOT / "run_recbole_dis.py"), f"--model={model}", f"--dataset={dataset}",
        f"--eval_protocol={protocol}", f"--seed={seed}", "--show_progress=false", "--state=WARNING",
        f"--result_json={result_file}", *extra,
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-3000:]
        return {"error": f"exit {done.returncode}: {tail.strip().splitlines()[-1] if tail.strip() else ''}", "log": tail}
    return {**json.loads(result_file.read_text()), "seed": seed}


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {statistics.stdev(values):.4f}"


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (
        f"{platform.node() or 'host'}: {platform.platform()}, {os.cpu_count()} CPU cores, {device}; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def still_improving(result: dict, window: int = 10) -> bool:
    """Whether a run ended while its validation metric was still rising.

    Validation on a few dozen users is noisy from one epoch to the next, so the curve is
    smoothed by a moving average over ``window`` validations; the run was still improving when
    that average peaks within the last ``window`` validations (early stopping fired on noise, or
    the epoch budget ran out first).
    """
    scores = [score for _, score in result.get("valid_scores") or []]
    if len(scores) < 2 * window:
        return bool(scores)
    smoothed = [statistics.fmean(scores[i - window : i]) for i in range(window, len(scores) + 1)]
    if not result.get("valid_score_bigger", True):
        smoothed = [-s for s in smoothed]
    return smoothed.index(max(smoothed)) >= len(smoothed) - window


def paper_values(name: str | None) -> dict[str, dict[str, float]]:
    """The published figures of ``name`` in benchmarks/paper_values.yaml (model -> metric -> value)."""
    if not name:
        return {}
    import yaml

    tables = yaml.safe_load(PAPER_VALUES.read_text(encoding="utf-8"))
    if name not in tables:
        raise SystemExit(f"--paper_table {name!r}: {PAPER_VALUES} has {', '.join(tables)}")
    return tables[name]


def published_for(label: str, published: dict[str, dict[str, float]]) -> dict[str, float] | None:
    """The published figures of the row ``label`` (``Model:key=value,...``): the entry of
    paper_values.yaml for the same model whose settings are all among the label's, the most
    specific one winning. So ``SEM-MacridVAE:visual_init=False`` (an ablation) gets its own
    figures, never the full model's, while ``SEM-MacridVAE:config_files=...`` gets the model's."""
    model, _, settings = label.partition(":")

    def pairs(text):
        return {item.strip().lower() for item in text.split(",") if item.strip()}

    ours, best = pairs(settings), None
    for name, values in published.items():
        entry_model, _, entry_settings = name.partition(":")
        wanted = pairs(entry_settings)
        if entry_model == model and wanted <= ours and (best is None or len(wanted) > best[0]):
            best = (len(wanted), values)
    return best[1] if best else None


def table(protocol: str, runs: dict[str, list[dict]], seeds: list[int], published: dict | None = None) -> list[str]:
    metrics = PROTOCOL_METRICS[protocol]
    published = published or {}
    lines = [
        f"### {PROTOCOL_TITLES[protocol]}",
        "",
        "| model | " + " | ".join(metrics) + " | epochs | s / epoch | peak RSS MB | notes |",
        "|---|" + "---|" * (len(metrics) + 4),
    ]
    for label, results in runs.items():
        ok = [r for r in results if "error" not in r]
        errors = [r["error"] for r in results if "error" in r]
        if not ok:
            lines.append(f"| {label} | " + " | ".join("–" for _ in metrics) + f" | – | – | – | failed: {errors[0][:120]} |")
            continue
        cells = [spread([r["test_result"][m] for r in ok]) for m in metrics]
        notes = []
        if PROTOCOLS[protocol].holds_out_users and not ok[0].get("trained_on_user_batches", True):
            notes.append("trained with held-out users' fold-in interactions")
        if PROTOCOLS[protocol].keeps_per_user:
            notes.append(f"SE over {ok[0]['test_result']['users']} test users: ndcg@100 ± {statistics.fmean(r['test_result']['ndcg@100_se'] for r in ok):.4f}")
            paper = published_for(label, published)
            if paper:
                notes.append("paper: " + " / ".join(f"{paper[m]:.4f}" for m in metrics if m in paper))
        improving = sum(still_improving(r) for r in ok if r.get("valid_scores"))
        if improving:
            notes.append(f"{improving} of {len(ok)} runs still improving at their end")
        if errors:
            notes.append(f"{len(errors)} of {len(results)} seeds failed")
        lines.append(
            f"| {label} | " + " | ".join(cells)
            + f" | {statistics.fmean(r['epochs'] for r in ok):.0f}"
            + f" | {statistics.fmean(r['seconds_per_epoch'] for r in ok):.3f}"
            + f" | {max(r['peak_memory_mb']['cpu_rss'] for r in ok):.0f}"
            + f" | {'; '.join(notes)} |"
        )
    lines.append("")
    lines.append(f"Mean ± standard deviation over seeds {', '.join(map(str, seeds))}; test split; "
                 "'epochs' counts training epochs run (early stopping on the validation metric).")
    return lines


def figure_path(out: Path, section: str, protocol: str, kind: str = "") -> Path:
    """``figures/<section>-<protocol>[-kind].png`` beside the markdown file ``out``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{section}-{protocol}" + (f"-{kind}" if kind else ""))
    return out.parent / "figures" / f"{stem}.png"


def metric_figure(path: Path, protocol: str, runs: dict[str, list[dict]], published: dict | None = None) -> Path | None:
    """One bar per model and metric: the mean over seeds with its standard error, the paper's value marked.

    The paper protocol's error bar is the standard error over the test users (the mean over seeds
    of each run's own, as the papers report theirs); the RecBole protocol keeps no per-user
    scores, so there it is the standard error over seeds (none with one seed).
    """
    metrics = PROTOCOL_METRICS[protocol]
    ok = {label: [r for r in results if "error" not in r] for label, results in runs.items()}
    labels = [label for label, results in ok.items() if results]
    if not labels:
        return None
    seeds = max(len(ok[label]) for label in labels)
    means, errors, reference = {}, {}, {}
    for metric in metrics:
        means[metric] = [statistics.fmean(r["test_result"][metric] for r in ok[label]) for label in labels]
        if PROTOCOLS[protocol].keeps_per_user:
            errors[metric] = [statistics.fmean(r["test_result"][f"{metric}_se"] for r in ok[label]) for label in labels]
        else:
            errors[metric] = [statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else None
                              for values in ([r["test_result"][metric] for r in ok[label]] for label in labels)]
        reference[metric] = [(published_for(label, published or {}) or {}).get(metric) for label in labels]
    if PROTOCOLS[protocol].keeps_per_user:
        users = ok[labels[0]][0]["test_result"].get("users")
        error_name = f"standard error over the {users} test users (mean over {seeds} seed(s))"
    else:
        error_name = f"standard error over {seeds} seeds" if seeds > 1 else "none (one seed)"
    return figures.metric_bars(path, PROTOCOL_TITLES[protocol], metrics, labels, means, errors, error_name, reference)


def speed_figure(path: Path, protocol: str, runs: dict[str, list[dict]]) -> Path | None:
    """Seconds per training epoch (mean over seeds) and peak resident memory (max over seeds) per model."""
    ok = {label: [r for r in results if "error" not in r] for label, results in runs.items()}
    labels = [label for label, results in ok.items() if results]
    if not labels:
        return None
    return figures.speed_bars(
        path, f"{PROTOCOL_TITLES[protocol]}: training speed and memory", labels,
        [statistics.fmean(r["seconds_per_epoch"] for r in ok[label]) for label in labels],
        [max(r["peak_memory_mb"]["cpu_rss"] for r in ok[label]) for label in labels],
    )


def figure_lines(out: Path, section: str, protocol: str, runs: dict[str, list[dict]], published: dict,
                 speed: bool) -> list[str]:
    """Draw the protocol's figures and return the markdown that shows them (nothing without matplotlib)."""
    if not figures.matplotlib_available():
        print("no figures: matplotlib is not installed (pip install recbole-disentangle[analysis])", flush=True)
        return []
    lines = []
    drawn = [(metric_figure(figure_path(out, section, protocol), protocol, runs, published), "test metrics")]
    if speed:
        drawn.append((speed_figure(figure_path(out, section, protocol, "speed"), protocol, runs), "epoch time and memory"))
    for path, what in drawn:
        if path is not None:
            lines += ["", f"![{section}, {PROTOCOL_TITLES[protocol]}: {what}]({path.relative_to(out.parent).as_posix()})"]
    return lines


def epoch_time_ratio(runs: dict[str, list[dict]], ours: str, theirs: str) -> str | None:
    if ours not in runs or theirs not in runs:
        return None
    a = [r["seconds_per_epoch"] for r in runs[ours] if "error" not in r]
    b = [r["seconds_per_epoch"] for r in runs[theirs] if "error" not in r]
    if not a or not b:
        return None
    return (f"Seconds per training epoch, {ours} / {theirs}, measured in this run: "
            f"{statistics.fmean(a):.3f} / {statistics.fmean(b):.3f} = {statistics.fmean(a) / statistics.fmean(b):.2f}.")


def write_section(out: Path, name: str, body: list[str]) -> None:
    start, end = f"<!-- benchmark:{name} -->", f"<!-- /benchmark:{name} -->"
    section = "\n".join([start, *body, end])
    text = out.read_text(encoding="utf-8") if out.is_file() else "# Results\n\nEvery figure below was produced by the command printed above it.\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    own, extra = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", nargs="+", default=["MultiDAE", "MultiVAE", "RecBoleMacridVAE", "DGCF", "MacridVAE"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--protocols", nargs="+", choices=list(PROTOCOL_METRICS), default=["recbole", "paper"])
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "results.md"))
    parser.add_argument("--name", default=None, help="section name in --out (default: the data set)")
    parser.add_argument("--workdir", default=None, help="where runs write logs and checkpoints (default: a temp dir)")
    parser.add_argument(
        "--reference", default=None,
        help="model label the others are compared with, user by user (paper protocol; default: the first of --models)",
    )
    parser.add_argument(
        "--paper_table", default=None,
        help="published figures to show beside the paper protocol's rows (a name in benchmarks/paper_values.yaml)",
    )
    parser.add_argument(
        "--speed_figure", action="store_true",
        help="also draw seconds per epoch and peak memory per model (for sections about speed)",
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="reuse the result files of runs already finished in --workdir (same command; after an interruption)",
    )
    args = parser.parse_args(own)

    published = paper_values(args.paper_table)  # an unknown name fails now, not after the runs
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="benchmark-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shown = [arg for arg in own if arg != "--resume"]
    command = "python benchmarks/benchmark.py " + shlex.join(shown) + (" -- " + shlex.join(extra) if extra else "")
    body = [
        f"## {args.name or args.dataset}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}, commit {git_commit()}",
        "",
    ]
    for protocol in args.protocols:
        runs: dict[str, list[dict]] = {}
        for spec in args.models:
            label, model, model_args = parse_model(spec)
            runs[label] = []
            settings = absolute_paths(merge_settings(extra, model_args), Path.cwd())  # the same for every seed
            from recbole_disentangle.errors import RecBoleDisError

            try:
                settings = data_path_of_run(settings, model, args.dataset, Path.cwd())
            except RecBoleDisError as err:  # settings no run would accept: say so once, not per seed
                raise SystemExit(f"benchmark.py: error: {err}") from None
            for seed in args.seeds:
                result = run_one(label, model, args.dataset, protocol, seed, settings, workdir, args.resume)
                runs[label].append(result)
                status = result.get("error") or json.dumps({k: result["test_result"][k] for k in PROTOCOL_METRICS[protocol]})
                print(f"[{protocol}] {label} seed {seed}: {status}", flush=True)
        body += table(protocol, runs, args.seeds, published)
        body += figure_lines(Path(args.out), args.name or args.dataset, protocol, runs, published, args.speed_figure)
        if PROTOCOLS[protocol].keeps_per_user:
            body += ["", *paired_differences(runs, args.reference or parse_model(args.models[0])[0], PROTOCOL_METRICS[protocol])]
        ratio = epoch_time_ratio(runs, "MacridVAE", "RecBoleMacridVAE")
        if ratio:
            body += ["", ratio]
        body.append("")
    write_section(Path(args.out), args.name or args.dataset, body)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
