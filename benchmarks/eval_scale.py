#!/usr/bin/env python
"""One evaluation pass of MacridVAE at a large catalog: time and peak memory, at two commits (issue 14).

    OMP_NUM_THREADS=1 python benchmarks/eval_scale.py --before /path/to/old/checkout \\
        --out docs/results.md --name eval-scale-cpu

A data set of ``--users`` x ``--items`` with ``--interactions`` is generated (``scale_data``,
item-popularity Gini ``--gini``: low enough that nearly every item of the catalog occurs, so RecBole
loads the whole catalog), written as an atomic file and read through the package's pipeline. Each
run of ``--runs`` (``protocol:eval_batch_size[:eval_memory_budget_mb]``) builds MacridVAE
(untrained: the cost of a pass does not depend on the weights) and times one validation pass,
``Trainer.evaluate`` (RecBole protocol: RecBole's full-sort loader and Evaluator; paper protocol:
the held-out users' fold-in scoring and per-user metrics). Every run is a process of its own, once
with this checkout's code and once with ``--before``'s (a checkout of an older commit; its
``benchmarks`` are not used), interleaved for ``--reps``.

Peak memory: the process's resident set is sampled every millisecond during the pass (a thread
reading /proc/self/statm; glibc is told to map every block over 64 KB of its own, so freed blocks
leave the resident set at once); the table gives the peak over the resident set at the pass's
start: what the pass itself added.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_MB


class PeakSampler:
    """The largest resident set seen while the block runs (sampled every ``interval`` seconds)."""

    def __init__(self, interval: float = 0.001):
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_mb())
            time.sleep(self.interval)

    def __enter__(self):
        self.start_mb = self.peak = resident_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_mb())


def child(job: dict) -> dict:
    """One pass in this process, with the code of ``job['code']`` first on the path."""
    sys.path.insert(0, job["code"])
    import torch

    from recbole_disentangle import compat
    from recbole_disentangle.config import Config
    from recbole_disentangle.quick_start import build
    from recbole_disentangle.trainer import get_trainer

    compat.filter_known_warnings()
    torch.set_num_threads(1)
    settings = [f"--data_path={job['data_path']}", "--download=false", "--show_progress=false", "--state=WARNING",
                "--use_gpu=false", "--seed=1", f"--checkpoint_dir={job['workdir']}/saved", f"--eval_protocol={job['protocol']}",
                f"--eval_batch_size={job['eval_batch_size']}", "--paper_rating_threshold=~",
                f"--paper_heldout_users={job['heldout']}", "--metrics=['Recall','NDCG']", "--topk=[20]", "--valid_metric=NDCG@20"]
    if job.get("budget"):
        settings.append(f"--eval_memory_budget_mb={job['budget']}")
    config = Config("MacridVAE", job["dataset"], None, None, settings)
    dataset, train_data, valid_data, _, model = build(config)
    trainer = get_trainer(config, model)
    if job["protocol"] == "recbole":
        trainer.eval_collector.data_collect(train_data)
    n_items = model.n_items
    started = time.perf_counter()
    with torch.no_grad(), PeakSampler() as memory:
        result = trainer.evaluate(valid_data, load_best_model=False)
    seconds = time.perf_counter() - started
    users = len(valid_data.users) if job["protocol"] == "paper" else valid_data._dataset.user_num - 1
    return {"s": seconds, "peak_mb": memory.peak - memory.start_mb, "items": n_items - 1, "users": users,
            "users_per_batch": max(1, job["eval_batch_size"] // n_items), "batches": len(valid_data),
            "result": {k: float(v) for k, v in dict(result).items()}}


def run_child(job: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": job["code"]}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"ok": False, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return {"ok": True, **json.loads(lines[-1])}


def generate(args, data_dir: Path) -> str:
    sys.path.insert(0, str(HERE))
    import scale_data

    shape = scale_data.Shape("eval", users=args.users, items=args.items, interactions=args.interactions, item_gini=args.gini)
    name = f"eval-{args.users}x{args.items}-{args.interactions}"
    if not (data_dir / name / f"{name}.inter").is_file():
        scale_data.write_atomic(scale_data.generate(shape, seed=1), data_dir, name)
    return name


def table(rows: list[dict], reps: int) -> list[str]:
    lines = ["| protocol | items | users scored (per batch) | eval_memory_budget_mb | code | s / pass | "
             "peak memory over the pass's start (MB) | a batch's (users x items) float32 scores (MB) | NDCG (check) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ok = [r for r in row["runs"] if r.get("ok")]
        if not ok:
            lines.append(f"| {row['protocol']} | | | {row['budget'] or '–'} | {row['code_label']} | failed: "
                         f"{row['runs'][-1].get('error', '')[:120]} | | | |")
            continue
        first = ok[0]
        seconds = [r["s"] for r in ok]
        peaks = [r["peak_mb"] for r in ok]
        ndcg = next((v for k, v in first["result"].items() if k.startswith("ndcg")), float("nan"))
        timing = f"{min(seconds):.1f} / {statistics.median(seconds):.1f}" if reps > 1 else f"{seconds[0]:.1f}"
        lines.append(f"| {row['protocol']} | {first['items']:,} | {first['users']:,} ({first['users_per_batch']}) | "
                     f"{row['budget'] or ('none' if row['code_label'] == 'before' else '256 (default)')} | {row['code_label']} | {timing} | {max(peaks):.0f} | "
                     f"{first['users_per_batch'] * (first['items'] + 1) * 4 / 2**20:.0f} | {ndcg:.5f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--interactions", type=int, default=400_000)
    parser.add_argument("--gini", type=float, default=0.5)
    parser.add_argument("--heldout", type=int, default=200, help="paper protocol: users held out for validation")
    parser.add_argument("--runs", nargs="+", default=["recbole:1000000", "paper:1000000"],
                        help="protocol:eval_batch_size[:eval_memory_budget_mb] (the budget only for this checkout)")
    parser.add_argument("--before", default=None, help="a checkout of the older commit to compare with")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--name", default="eval-scale")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="eval-scale-"))
    data_dir = workdir / "data"
    started = time.perf_counter()
    dataset = generate(args, data_dir)
    print(f"data set {dataset} in {data_dir} ({time.perf_counter() - started:.0f} s)", flush=True)
    codes = [("this commit", str(REPO_ROOT))] + ([("before", str(Path(args.before).resolve()))] if args.before else [])
    rows = []
    for spec in args.runs:
        protocol, batch, *budget = spec.split(":")
        for label, code in codes:
            if label == "before" and any(r["protocol"] == protocol and r["eval_batch_size"] == int(batch)
                                         and r["code_label"] == "before" for r in rows):
                continue  # the older code has no budget: one row per protocol and batch size
            rows.append({"protocol": protocol, "eval_batch_size": int(batch), "budget": budget[0] if budget and label != "before" else None,
                         "code_label": label, "code": code, "runs": []})
    for rep in range(args.reps):
        for row in rows:
            job = {"code": row["code"], "data_path": str(data_dir), "dataset": dataset, "workdir": str(workdir),
                   "protocol": row["protocol"], "eval_batch_size": row["eval_batch_size"], "budget": row["budget"],
                   "heldout": args.heldout}
            result = run_child(job)
            row["runs"].append(result)
            summary = f"{result['s']:.1f} s, +{result['peak_mb']:.0f} MB" if result["ok"] else result["error"]
            print(f"[rep {rep}] {row['protocol']} batch {row['eval_batch_size']} budget {row['budget']} {row['code_label']}: {summary}", flush=True)
    sys.path.insert(0, str(HERE))
    from benchmark import git_commit, machine, write_section

    command = "OMP_NUM_THREADS=1 python benchmarks/eval_scale.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    before = ""
    if args.before:
        before = subprocess.run(["git", "-C", args.before, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    header = [f"## {args.name}", "", f"Command: `{command}`  ", f"Machine: {machine()}  ",
              f"Date: {datetime.date.today().isoformat()}, commit {git_commit()}" + (f", before = commit {before}" if before else ""), "",
              f"- data: {args.users:,} users x {args.items:,} items, {args.interactions:,} interactions generated (item Gini {args.gini})", ""]
    body = [*header, *table(rows, args.reps), ""]
    print("\n".join(body), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "rows": rows, "reps": args.reps}, indent=1))
    if args.out:
        write_section(Path(args.out), args.name, body)
    return 0 if all(r.get("ok") for row in rows for r in row["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
