"""Did a change make training slower? Epoch times of one model at two commits, interleaved.

    python benchmarks/compare_commits.py --base 2b5d9cf --head HEAD --model MacridVAE \
        --dataset ml-latest-small --rounds 4 --epochs 6 -- --data_path=dataset_atomic

Each commit is checked out into a temporary git worktree; each round runs one process per
commit (base, head, base, head, ...), every process building the model and training
``--epochs`` epochs with validation and checkpoints as a run does. Reported per commit: the
training epoch (the fastest of each process's epochs) and the whole fit per epoch (training,
validation, checkpoints), with the ratio head / base of their minima and medians over rounds.
Interleaving is what makes the ratio mean something on a shared, noisy machine: both commits
see the same load, in turn. Settings after ``--`` apply to both (``--key=value``); relative
paths are resolved where you stand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # this checkout's package, for its command-line reading

from recbole_disentangle.config import parse_cmd_args  # noqa: E402
from recbole_disentangle.errors import ConfigError  # noqa: E402

# Runs inside each worktree's own code (PYTHONPATH), so it must use only what both commits have.
CHILD = r"""
import json, sys, tempfile, time
import torch
torch.set_num_threads(1)
from recbole.utils import init_logger
from recbole_disentangle.config import Config
from recbole_disentangle.quick_start import build
from recbole_disentangle.trainer import get_trainer
model, dataset, epochs, settings = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
settings = {"show_progress": False, "state": "WARNING", "checkpoint_dir": tempfile.mkdtemp(),
            "epochs": epochs, "stopping_step": 10 * epochs, **settings}
config = Config(model, dataset, config_dict=settings)
init_logger(config)
_, train_data, valid_data, _, net = build(config)
trainer = get_trainer(config, net)
epoch_seconds = []
original = trainer._train_epoch
def timed(*args, **kwargs):
    start = time.perf_counter()
    out = original(*args, **kwargs)
    epoch_seconds.append(time.perf_counter() - start)
    return out
trainer._train_epoch = timed
start = time.perf_counter()
trainer.fit(train_data, valid_data, saved=True, show_progress=False)
fit = time.perf_counter() - start
print("RESULT " + json.dumps({"train_epoch": min(epoch_seconds), "fit_per_epoch": fit / len(epoch_seconds)}))
"""


def parse_settings(extra: list[str]) -> dict:
    """``--key=value`` settings read as ``run_recbole_dis.py`` reads them (values as YAML), with
    relative ``*path`` values made absolute: the runs start inside their worktrees."""
    try:
        settings = parse_cmd_args(extra)
    except ConfigError as err:
        raise SystemExit(f"compare_commits.py: {err}") from None
    for key, value in settings.items():
        if key.endswith("path") and isinstance(value, str) and not os.path.isabs(value):
            settings[key] = os.path.abspath(value)
    return settings


def run_once(worktree: Path, args, settings: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(worktree), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, args.model, args.dataset, str(args.epochs), json.dumps(settings)],
        cwd=worktree, env=env, capture_output=True, text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"compare_commits.py: the run at {worktree} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summary(base: list[float], head: list[float]) -> str:
    return (f"base min {min(base):.3f} s, median {statistics.median(base):.3f} s; "
            f"head min {min(head):.3f} s, median {statistics.median(head):.3f} s; "
            f"ratio head / base: min {min(head) / min(base):.3f}, median {statistics.median(head) / statistics.median(base):.3f}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the commit before the change")
    parser.add_argument("--head", default="HEAD", help="the commit with it (default HEAD)")
    parser.add_argument("--model", default="MacridVAE")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--rounds", type=int, default=4, help="processes per commit, interleaved")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per process")
    args = parser.parse_args(own)
    settings = parse_settings(extra)
    times = {"base": [], "head": []}
    with tempfile.TemporaryDirectory(prefix="compare-commits-") as tmp:
        worktrees = {}
        for side in ("base", "head"):
            worktrees[side] = Path(tmp, side)
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(worktrees[side]),
                            getattr(args, side)], check=True, capture_output=True)
        try:
            for round_ in range(args.rounds):
                for side in ("base", "head"):
                    result = run_once(worktrees[side], args, settings)
                    times[side].append(result)
                    print(f"round {round_ + 1}/{args.rounds} {side}: training epoch {result['train_epoch']:.3f} s, "
                          f"fit per epoch {result['fit_per_epoch']:.3f} s", flush=True)
        finally:
            for path in worktrees.values():
                subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)
    for key, name in (("train_epoch", "training epoch"), ("fit_per_epoch", "fit per epoch (training, validation, checkpoints)")):
        print(f"{name}: " + summary([t[key] for t in times["base"]], [t[key] for t in times["head"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
