#!/usr/bin/env python
"""Where a training epoch would make the host wait for a GPU, counted on any machine (issue 14).

    OMP_NUM_THREADS=1 python benchmarks/step_syncs.py --dataset ml-100k \\
        --models MacridVAE MacridVAE:sampled_negatives=1000 MultiVAE RecBoleMacridVAE

For each model one training epoch runs through the package's trainer (``_train_epoch``) under
``tests/host_syncs.HostSyncRecorder``, which lists the operations that read a device value on the
host or size their output by one (``item``, ``nonzero``, ``unique``, ...). Printed per model: the
operations seen in the epoch's steps (with where they were called and how many times), and those
after its last step. Data loading and the optimizer's update are not recorded (host work; torch's
Adam keeps its step counts on the host). On a GPU, ``torch.cuda.set_sync_debug_mode("warn")``
reports the real waits; this finds them on a CPU-only machine too, before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from host_syncs import epoch_syncs  # noqa: E402
from recbole_disentangle.config import Config, parse_cmd_args  # noqa: E402
from recbole_disentangle.quick_start import build  # noqa: E402
from recbole_disentangle.trainer import get_trainer  # noqa: E402


def model_syncs(spec: str, dataset: str, settings: dict) -> tuple[int, collections.Counter]:
    """(steps, Counter of (phase, operation, caller)) for one epoch of ``spec`` ('Model:key=value,...')."""
    name, _, extra = spec.partition(":")
    overrides = parse_cmd_args([f"--{item}" for item in extra.split(",") if item])
    config = Config(name, dataset, config_dict={"show_progress": False, "state": "WARNING", **settings, **overrides})
    _, train_data, _, _, model = build(config)
    events = epoch_syncs(get_trainer(config, model), train_data)
    phases = collections.Counter(("after the last step" if phase == "after the last step" else "in the steps", op, caller)
                                 for phase, op, caller in events)
    return len(train_data), phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", nargs="+", default=["MacridVAE", "MacridVAE:sampled_negatives=1000", "MultiVAE"])
    parser.add_argument("--train_batch_size", type=int, default=100)
    args, rest = parser.parse_known_args(argv)
    settings = {"train_batch_size": args.train_batch_size, **parse_cmd_args(rest)}
    print("| model | steps | where | operation | called at | times |\n|---|---|---|---|---|---|")
    for spec in args.models:
        steps, phases = model_syncs(spec, args.dataset, settings)
        if not phases:
            print(f"| {spec} | {steps} | – | none | – | 0 |")
        for (phase, op, caller), times in sorted(phases.items()):
            print(f"| {spec} | {steps} | {phase} | {op} | {caller} | {times} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
