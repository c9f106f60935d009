#!/usr/bin/env python
"""MacridVAE's training epoch with full softmax against sampled softmax, at a large catalog (issue 14).

    OMP_NUM_THREADS=1 python benchmarks/sampled_softmax.py --items 200000 --users 1000 --reps 3

One process builds a synthetic users x items matrix in memory (benchmarks/scale_data.py: its
popularity curve, every one of the ``--items`` columns in the catalog whether or not it was drawn,
where RecBole's Dataset would drop the items nobody has), then one MacridVAE per variant from the
same initial weights, each with its trainer (the optimizer RecBole's Trainer builds, through this
package's ``_build_optimizer``: torch.optim.Adam for full softmax, RowSparseAdam for sampled).
Epochs run interleaved (full sampled full sampled ...), the trainer's ``_train_epoch`` over
the same user batches; each variant trains on across its reps, so from the second rep on its
optimizer state exists before the epoch starts.

Printed per epoch: seconds, loss, and the epoch's peak memory: the process's peak resident set
(VmHWM, reset through /proc/self/clear_refs before the epoch) minus its resident set at the
start of the epoch, i.e. what the epoch itself allocated at its peak. Rep 0 includes the
optimizer's state, allocated by the first step (for either variant 2 x N x d per item table plus
the small ones); later reps exclude it. At the end: min and median of sampled / full epoch time,
and ``--json`` keeps every figure.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _status_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


def reset_peak() -> None:
    """Linux: reset the process's peak resident set (VmHWM) to its current one."""
    Path("/proc/self/clear_refs").write_text("5")


def build_variants(args, dataset):
    import copy

    from recbole.utils import init_seed

    from recbole_disentangle.config import Config
    from recbole_disentangle.model.macridvae import MacridVAE
    from recbole_disentangle.trainer import get_trainer

    variants, initial = {}, None
    for name, negatives in (("full", 0), ("sampled", args.sampled_negatives)):
        settings = ["--show_progress=false", "--state=WARNING", f"--seed={args.seed}", "--use_gpu=false",
                    f"--sampled_negatives={negatives}", f"--train_batch_size={args.batch_size}",
                    "--checkpoint_dir=/tmp/sampled_softmax_saved"]
        config = Config("MacridVAE", "synthetic", None, None, settings)
        init_seed(config["seed"], config["reproducibility"])
        model = MacridVAE(config, dataset)
        if initial is None:
            initial = copy.deepcopy(model.state_dict())
        model.load_state_dict(initial)  # the same weights for both
        variants[name] = (config, model, get_trainer(config, model))
    return variants


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--per_user", type=float, default=50.0)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--sampled_negatives", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=["full", "sampled"], help="run one variant (e.g. memory at several catalogs)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from recbole.utils import init_seed

    import scale_data
    from recbole_disentangle import compat

    compat.filter_known_warnings()
    shape = scale_data.Shape("synthetic", args.users, args.items, int(args.users * args.per_user))
    dataset = scale_data.ArrayDataset.with_padding(scale_data.generate(shape, seed=args.seed))
    variants = build_variants(args, dataset)
    if args.only:
        variants = {args.only: variants[args.only]}
    users = np.flatnonzero(np.diff(dataset.matrix.indptr) > 0)
    n_items, d = dataset.item_num, next(iter(variants.values()))[1].embedding_size
    table_mib = n_items * d * 4 / 2**20
    batches = scale_data.UserIdBatches(users, args.batch_size, seed=args.seed)
    print(f"{len(users)} users, {n_items} items (with padding), {dataset.matrix.nnz} interactions, {len(batches)} steps "
          f"per epoch, d = {d}, S = {args.sampled_negatives}, threads = {torch.get_num_threads()}; one N x d table = "
          f"{table_mib:.1f} MiB", flush=True)
    runs = []
    for rep in range(args.reps):
        for name, (config, model, trainer) in variants.items():
            init_seed(config["seed"] + rep, config["reproducibility"])
            batches.rng = np.random.default_rng(args.seed + rep)  # the same batches for both variants
            model.train()
            start_kib = _status_kib("VmRSS")
            reset_peak()
            started = time.perf_counter()
            loss = trainer._train_epoch(batches, rep, show_progress=False)
            seconds = time.perf_counter() - started
            peak_mib = (_status_kib("VmHWM") - start_kib) / 1024
            runs.append({"rep": rep, "variant": name, "seconds": seconds, "loss": float(loss), "peak_mib": peak_mib})
            print(f"rep {rep} {name:>7}: {seconds:8.3f} s, loss {float(loss):12.4f}, epoch peak +{peak_mib:8.1f} MiB",
                  flush=True)
    summary = {}
    for name in variants:
        times = [r["seconds"] for r in runs if r["variant"] == name]
        peaks = [r["peak_mib"] for r in runs if r["variant"] == name and r["rep"] > 0] or \
                [r["peak_mib"] for r in runs if r["variant"] == name]
        summary[name] = {"min_s": min(times), "median_s": statistics.median(times), "peak_mib_median": statistics.median(peaks)}
        print(f"{name:>7}: epoch min {min(times):.3f} s, median {statistics.median(times):.3f} s; epoch peak (reps >= 1) "
              f"median +{statistics.median(peaks):.1f} MiB")
    if len(variants) == 2:
        print(f"full / sampled epoch time: min {summary['full']['min_s'] / summary['sampled']['min_s']:.1f}x, "
              f"median {summary['full']['median_s'] / summary['sampled']['median_s']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
