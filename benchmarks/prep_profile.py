#!/usr/bin/env python
"""Where data preparation spends its time: ``quick_start.build`` once, under cProfile.

    OMP_NUM_THREADS=1 python benchmarks/prep_profile.py --data_path /tmp/scale/data --dataset scale-ml-20m \\
        --protocol recbole --model MacridVAE --top 30

Prints the wall and CPU seconds of ``build`` (data set, split, loaders, model), the peak RSS, and
the ``--top`` functions by cumulative time. The data set is one ``benchmarks/scale.py --workdir``
generated (``<workdir>/data/scale-<shape>``), or any atomic data set.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_path", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", default="MacridVAE")
    parser.add_argument("--protocol", choices=["recbole", "paper"], default="recbole")
    parser.add_argument("--top", type=int, default=30, help="functions to list; 0 = no profiler")
    args, settings = parser.parse_known_args(argv)

    from scale import protocol_settings

    from recbole_disentangle import compat
    from recbole_disentangle.config import Config
    from recbole_disentangle.quick_start import build

    compat.filter_known_warnings()
    config = Config(args.model, args.dataset, None, None, [
        f"--data_path={args.data_path}", "--download=false", "--show_progress=false", "--state=WARNING",
        "--use_gpu=false", "--seed=1", *protocol_settings(args.protocol), *settings])
    profiler = cProfile.Profile() if args.top else None
    started, cpu_started = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    build(config)
    if profiler:
        profiler.disable()
    print(f"build: {time.perf_counter() - started:.1f} s wall, {time.process_time() - cpu_started:.1f} s CPU"
          f"{' (under cProfile)' if profiler else ''}; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
