"""Compare finished runs from their result JSON files.

    python -m recbole_disentangle.report RUN_JSON [RUN_JSON ...]

prints one aligned table (a row per test metric, a column per run; "± SE" where the paper
protocol kept per-user scores) and, when runs were tested on the same users (paper protocol, same
data set and seed), the paired difference of the first run minus each other one with its standard
error. Result files are what ``run_recbole_dis.py`` writes (beside its log, or ``--result_json``)
and what ``benchmarks/benchmark.py`` keeps in its work folder.

The paired difference is computed here once; the benchmark's markdown tables use the same code.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from recbole_disentangle.console import aligned


@dataclass(frozen=True)
class PairedDifference:
    """Reference minus other, over every (seed, test user) pair both were scored on."""

    mean: float
    paired_se: float  # standard error over the pairs: the test set's sampling error of the difference
    seed_se: float  # standard error of the per-seed mean differences (nan with one seed): adds training noise
    pairs: int

    @property
    def verdict(self) -> str:
        # A margin under two paired SEs is within what a different draw of test users could give.
        return "better" if self.mean > 2 * self.paired_se else "worse" if self.mean < -2 * self.paired_se else "tie"


def per_user_scores(results: list[dict], metric: str) -> dict[tuple, float]:
    """(seed, internal user id) -> the user's ``metric``, over the runs of one model.

    Every seed holds out its own users; the seed is part of the key so that only the same user
    of the same split is paired. Result files written without a seed pair on the user alone.
    """
    values = {}
    for result in results:
        per_user = result.get("test_per_user") or {}
        for user, value in zip(per_user.get("user", []), per_user.get(metric, [])):
            values[(result.get("seed"), user)] = value
    return values


def paired_difference(ours: list[dict], theirs: list[dict], metric: str) -> PairedDifference | None:
    """``ours`` minus ``theirs`` on their shared test users; None with fewer than two pairs."""
    a, b = per_user_scores(ours, metric), per_user_scores(theirs, metric)
    shared = sorted(a.keys() & b.keys(), key=str)
    if len(shared) < 2:
        return None
    diffs = [a[k] - b[k] for k in shared]
    seeds = sorted({seed for seed, _ in shared}, key=str)
    seed_means = [statistics.fmean(d for k, d in zip(shared, diffs) if k[0] == s) for s in seeds]
    return PairedDifference(
        mean=statistics.fmean(diffs),
        paired_se=statistics.stdev(diffs) / len(diffs) ** 0.5,
        seed_se=statistics.stdev(seed_means) / len(seed_means) ** 0.5 if len(seed_means) > 1 else float("nan"),
        pairs=len(shared),
    )


def paired_differences(runs: dict[str, list[dict]], reference: str, metrics: list[str]) -> list[str]:
    """Markdown: reference model minus each other model, paired on the same test users of the same seed.

    Every seed holds out its own users, and every model of a seed is tested on the same ones, so
    a (seed, user) pair gives one difference per metric. Reported: the mean difference, its
    standard error over those pairs (the paired SE; the verdict uses it: a margin under two
    paired SEs is a tie), and the standard error of the per-seed mean differences, which also
    carries training noise.
    """
    if reference not in runs:
        return []
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
            diff = paired_difference(ours, theirs, metric)
            if diff is None:
                cells.append("–")
                continue
            cells.append(f"{diff.mean:+.4f} ± {diff.paired_se:.4f} (± {diff.seed_se:.4f})")
            verdicts.append(diff.verdict)
            n_pairs = diff.pairs
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {n_pairs} | {', '.join(verdicts) or '–'} |")
    return lines


def metric_names(result: dict) -> list[str]:
    """The metric names of a result's test scores (``ndcg@100``), without their ``_se`` and user counts."""
    return [key for key in result.get("test_result", {}) if not key.endswith("_se") and key != "users"]


def score_cell(result: dict, metric: str) -> str:
    scores = result.get("test_result", {})
    if metric not in scores:
        return "–"
    se = scores.get(f"{metric}_se")
    return f"{scores[metric]:.4f}" + (f" ± {se:.4f}" if se is not None else "")


def comparison(results: dict[str, dict]) -> list[str]:
    """Console lines comparing ``results`` (label -> result dict), the first one the reference."""
    labels = list(results)
    first = results[labels[0]]
    metrics = [m for m in metric_names(first) if all(m in r.get("test_result", {}) for r in results.values())]
    header = ["metric", *labels]
    rows = [[metric, *(score_cell(results[label], metric) for label in labels)] for metric in metrics]
    rows.append(["epochs", *(str(results[label].get("epochs", "–")) for label in labels)])
    lines = aligned([header, *rows])
    users = {label: r["test_result"].get("users") for label, r in results.items() if r.get("test_result", {}).get("users")}
    if users:
        lines += ["", "± SE: standard error over the test users (" + ", ".join(f"{u} for {l}" for l, u in users.items()) + ")."]
    for label in labels[1:]:
        lines += ["", *paired_lines(labels[0], first, label, results[label], metrics)]
    return lines


def paired_lines(ref_label: str, ref: dict, label: str, other: dict, metrics: list[str]) -> list[str]:
    """The paired difference ``ref`` minus ``other``, or why there is none."""
    title = f"{ref_label} minus {label}"
    for key in ("dataset", "eval_protocol"):
        if ref.get(key) != other.get(key):
            return [f"{title}: not paired, the runs differ in {key} ({ref.get(key)} / {other.get(key)})."]
    if not ref.get("test_per_user") or not other.get("test_per_user"):
        return [f"{title}: not paired, per-user scores are kept under the paper protocol only."]
    rows = []
    for metric in metrics:
        diff = paired_difference([ref], [other], metric)
        if diff is not None:
            rows.append([metric, f"{diff.mean:+.4f}", f"± {diff.paired_se:.4f}", diff.verdict])
    if not rows:
        return [f"{title}: not paired, the runs share no test users (each seed holds out its own)."]
    pairs = paired_difference([ref], [other], rows[0][0]).pairs
    return [f"{title}, paired on {pairs} shared test users ('better'/'worse' beyond 2 SE):",
            *aligned([["metric", "difference", "SE", "verdict"], *rows], indent=2)]


def run_labels(paths: list[Path], results: list[dict]) -> list[str]:
    """A column label per file: the model, with the file name where two files hold the same model."""
    models = [r.get("model", "?") for r in results]
    return [f"{m} ({p.name})" if models.count(m) > 1 else m for m, p in zip(models, paths)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_disentangle.report",
        description="Compare finished runs: test metrics side by side, and the paired difference of the "
                    "first run minus each other one when they were tested on the same users.",
    )
    parser.add_argument("results", nargs="+", metavar="RUN_JSON", help="result files of run_recbole_dis.py")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.results]
    results = []
    for path in paths:
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as err:
            print(f"report: cannot read {path}: {err}", file=sys.stderr)
            return 2
        if "test_result" not in results[-1]:
            print(f"report: {path} is not a run's result file (it has no test_result)", file=sys.stderr)
            return 2
    print("\n".join(comparison(dict(zip(run_labels(paths, results), results)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
