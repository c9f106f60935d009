"""How much the atomic-file check adds to loading a large .inter file (issue 15: at most 10%).

    OMP_NUM_THREADS=1 python benchmarks/atomic_check_timing.py [--rows 10000000] [--folder DIR]

Writes a generated <folder>/big/big.inter (user, item, rating, timestamp; default folder: a
temporary one), then times, once each, the check (data.atomic_check.count_rows: header and field
count of every row) and RecBole's own construction of the Dataset from the same file, and prints
both and their ratio. One run on a busy machine: read the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def write_inter(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = 1_000_000
    with open(path, "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            users = rng.integers(1, 200_000, n)
            items = rng.integers(1, 50_000, n)
            ratings = rng.integers(1, 6, n)
            stamps = rng.integers(900_000_000, 1_600_000_000, n)
            f.write("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in zip(users.tolist(), items.tolist(),
                                                                          ratings.tolist(), stamps.tolist())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--folder", default=None, help="where to write big/big.inter (default: a temporary folder)")
    args = parser.parse_args()

    from recbole.data.dataset import Dataset

    from recbole_disentangle.config import Config
    from recbole_disentangle.data.atomic_check import count_rows

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.folder or tmp)
        inter = root / "big" / "big.inter"
        started = time.perf_counter()
        write_inter(inter, args.rows)
        print(f"wrote {inter} ({inter.stat().st_size / 2**20:.0f} MiB, {args.rows} rows) in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        counted = count_rows(inter)
        check_s = time.perf_counter() - started
        assert counted == args.rows, counted
        print(f"check (count_rows): {check_s:.2f} s")

        config = Config("BPR", "big", config_dict={"data_path": str(root), "load_col": None, "state": "WARNING",
                                                   "show_progress": False})
        started = time.perf_counter()
        Dataset(config)
        load_s = time.perf_counter() - started
        print(f"RecBole Dataset construction: {load_s:.2f} s")
        print(f"check / load = {check_s / load_s:.1%}")


if __name__ == "__main__":
    main()
