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
into ``--out`` between ``<!-- benchmark:NAME -->`` markers; the rest of that file is kept.
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
PAPER_VALUES = Path(__file__).resolve().parent / "paper_values.yaml"
PROTOCOL_METRICS = {
    "paper": ["ndcg@100", "recall@20", "recall@50"],
    "recbole": ["recall@10", "ndcg@10", "recall@20", "ndcg@20"],
}
PROTOCOL_TITLES = {
    "paper": "Paper protocol (held-out users, fold-in 80% / rank 20%)",
    "recbole": "RecBole protocol (per-user random split 80/10/10, full ranking)",
}


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
        if protocol == "paper" and not ok[0].get("trained_on_user_batches", True):
            notes.append("trained with held-out users' fold-in interactions")
        if protocol == "paper":
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


def paired_differences(runs: dict[str, list[dict]], reference: str, metrics: list[str]) -> list[str]:
    """Reference model minus each other model, paired on the same test users of the same seed.

    Every seed holds out its own users, and every model of a seed is tested on the same ones, so
    a (seed, user) pair gives one difference per metric. Reported: the mean difference, its
    standard error over those pairs (the paired SE; the verdict uses it: a margin under two
    paired SEs is a tie), and the standard error of the per-seed mean differences, which also
    carries training noise.
    """
    if reference not in runs:
        return []

    def by_pair(results, metric):
        values = {}
        for result in results:
            per_user = result.get("test_per_user") or {}
            for user, value in zip(per_user.get("user", []), per_user.get(metric, [])):
                values[(result["seed"], user)] = value
        return values

    lines = [
        f"Paired differences on the same test users, {reference} minus each model (mean over every "
        "(seed, test user) pair; paired SE over those pairs; SE over the per-seed means; "
        "'better'/'worse' when |difference| > 2 paired SE, else 'tie'):",
        "",
        "| model | " + " | ".join(f"{m} diff ± paired SE (± seed SE)" for m in metrics) + " | pairs | verdict |",
        "|---|" + "---|" * (len(metrics) + 2),
    ]
    ours = [r for r in runs[reference] if "error" not in r]
    for label, results in runs.items():
        if label == reference:
            continue
        theirs = [r for r in results if "error" not in r]
        cells, verdicts, n_pairs = [], [], 0
        for metric in metrics:
            a, b = by_pair(ours, metric), by_pair(theirs, metric)
            shared = sorted(a.keys() & b.keys())
            if len(shared) < 2:
                cells.append("–")
                continue
            diffs = [a[k] - b[k] for k in shared]
            mean, paired_se = statistics.fmean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5
            seeds = sorted({seed for seed, _ in shared})
            seed_means = [statistics.fmean(d for k, d in zip(shared, diffs) if k[0] == s) for s in seeds]
            seed_se = statistics.stdev(seed_means) / len(seed_means) ** 0.5 if len(seed_means) > 1 else float("nan")
            cells.append(f"{mean:+.4f} ± {paired_se:.4f} (± {seed_se:.4f})")
            verdicts.append("better" if mean > 2 * paired_se else "worse" if mean < -2 * paired_se else "tie")
            n_pairs = len(shared)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {n_pairs} | {', '.join(verdicts) or '–'} |")
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
        if protocol == "paper":
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
