#!/usr/bin/env python
"""MacridVAE's encoder product with torch.sparse.mm's backward against the nnz-only backward (issue 14).

    OMP_NUM_THREADS=1 python benchmarks/encoder_backward.py --data ml-latest-small --data_path dataset_atomic
    OMP_NUM_THREADS=1 python benchmarks/encoder_backward.py --data synthetic --users 2000 --items 50000

Both variants train the same model from the same weights and seed, in one process, interleaved
(old new old new ...): one training epoch each, RecBole's Trainer._train_epoch. Printed: every
epoch's seconds and loss, and the ratio new / old of the minimum and the median epoch time; the
losses of the two variants must agree (same numbers up to float rounding). ``--sampled_negatives``
gives the sampled-softmax variant.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def old_sparse_rows_times(values, dense, rows, cols, n_rows):
    """The encoder's product as it was: torch.sparse.mm on a COO matrix (dense-product backward)."""
    import torch

    matrix = torch.sparse_coo_tensor(torch.stack((rows, cols)), values, (n_rows, dense.shape[0]), check_invariants=False)
    return torch.sparse.mm(matrix, dense)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["ml-latest-small", "synthetic"], default="ml-latest-small")
    parser.add_argument("--data_path", default=str(REPO_ROOT / "dataset_atomic"))
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=50000)
    parser.add_argument("--per_user", type=float, default=50.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sampled_negatives", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from recbole.utils import init_seed

    from recbole_disentangle import compat
    from recbole_disentangle.config import Config
    from recbole_disentangle.model import layers
    from recbole_disentangle.trainer import get_trainer

    compat.filter_known_warnings()
    settings = ["--show_progress=false", "--state=WARNING", f"--seed={args.seed}", f"--sampled_negatives={args.sampled_negatives}",
                f"--use_gpu={'true' if args.device == 'cuda' else 'false'}", "--checkpoint_dir=/tmp/encoder_backward_saved"]
    if args.data == "ml-latest-small":
        from recbole_disentangle.quick_start import build

        config = Config("MacridVAE", "ml-latest-small", None, None, [*settings, f"--data_path={args.data_path}", "--download=false"])
        _, train_data, _, _, model = build(config)
        batches = train_data
    else:
        import scale_data

        shape = scale_data.Shape("synthetic", args.users, args.items, int(args.users * args.per_user))
        dataset = scale_data.ArrayDataset.with_padding(scale_data.generate(shape, seed=args.seed))
        config = Config("MacridVAE", "synthetic", None, None, settings)
        init_seed(config["seed"], config["reproducibility"])
        from recbole_disentangle.model.macridvae import MacridVAE

        model = MacridVAE(config, dataset).to(config["device"])
        users = np.flatnonzero(np.diff(dataset.matrix.indptr) > 0)
        batches = scale_data.UserIdBatches(users, config["train_batch_size"], seed=args.seed)
    initial = copy.deepcopy(model.state_dict())
    print(f"{args.data}: {model.n_users} users, {model.n_items} items, {len(batches)} steps per epoch, "
          f"sampled_negatives={args.sampled_negatives}, threads={torch.get_num_threads()}", flush=True)

    new_product = layers.sparse_rows_times
    variants = {"old": old_sparse_rows_times, "new": new_product}
    times = {name: [] for name in variants}
    losses = {name: [] for name in variants}
    for rep in range(args.reps):
        for name, product in variants.items():
            layers.sparse_rows_times = product
            model.load_state_dict(initial)
            trainer = get_trainer(config, model)  # a fresh optimizer
            init_seed(config["seed"] + rep, config["reproducibility"])
            if hasattr(batches, "rng"):  # the same batches for both variants
                batches.rng = np.random.default_rng(args.seed + rep)
            if hasattr(batches, "generator"):
                batches.generator.manual_seed(args.seed + rep)
            model.train()
            started = time.perf_counter()
            loss = trainer._train_epoch(batches, rep, show_progress=False)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
            losses[name].append(float(loss))
            print(f"rep {rep} {name}: {times[name][-1]:.3f} s, loss {float(loss):.6f}", flush=True)
    layers.sparse_rows_times = new_product
    gap = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(losses["old"], losses["new"]))
    print(f"new / old: min {min(times['new']) / min(times['old']):.3f}, "
          f"median {statistics.median(times['new']) / statistics.median(times['old']):.3f}; "
          f"largest relative loss difference {gap:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
