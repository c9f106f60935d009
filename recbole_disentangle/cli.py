"""``run_recbole_dis.py``: train and evaluate any plugin or RecBole model from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recbole_disentangle.config import parse_cmd_args
from recbole_disentangle.console import Console
from recbole_disentangle.data.dataset import known_datasets
from recbole_disentangle.errors import RecBoleDisError
from recbole_disentangle.quick_start import run
from recbole_disentangle.registry import available_models

# Exit code of a sweep with trials left to run (Ctrl+C, --time_budget): its results are partial.
SWEEP_INTERRUPTED = 3

EPILOG = """\
Any other setting is given as --key=value and read as YAML, for example
  --epochs=50 --learning_rate=1e-3 --encoder_hidden_size=[600] --eval_args="{split: {RS: [0.8, 0.1, 0.1]}}"
Precedence, lowest first: RecBole defaults < properties/overall.yaml < properties/model/<Model>.yaml
< properties/dataset/<dataset>.yaml < --config_files (in order) < --key=value.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_recbole_dis.py",
        description="Train and evaluate a model of recbole-disentangle or of RecBole on an atomic data set.",
        epilog=EPILOG
        + "\nModels: "
        + ", ".join(available_models())
        + "\nData sets: "
        + ", ".join(known_datasets())
        + " (or any folder <data_path>/<name>/ with <name>.inter)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", "-m", default="MacridVAE", help="model name (default: MacridVAE)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="data set name (default: ml-100k)")
    parser.add_argument("--config_files", nargs="+", default=None, metavar="YAML", help="YAML files, later ones win")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT", help="resume training from a checkpoint of this package")
    parser.add_argument("--no_save", action="store_true", help="do not write checkpoints (evaluates the last model)")
    parser.add_argument("--strict", action="store_true",
                        help="a setting no component reads (a misspelt key) is an error, not a warning")
    parser.add_argument("--result_json", default=None, metavar="FILE",
                        help="where to write the results as JSON (default: beside the log file, X.log -> X.json)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", "-q", action="store_true", help="print only the final table of test metrics")
    output.add_argument("--verbose", "-v", action="store_true",
                        help="also print RecBole's full log (every setting, every validation result)")
    add_sweep_arguments(parser)
    return parser


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Ray Tune sweep options (``pip install recbole-disentangle[tune]``); ray is imported only with --tune."""
    sweep = parser.add_argument_group(
        "Ray Tune sweeps",
        "--tune=SPACE.yaml runs a sweep (spaces: properties/tune/<Model>.yaml); every other option applies to each trial.",
    )
    sweep.add_argument("--tune", nargs="?", const="", default=None, metavar="SPACE.yaml",
                       help="search space file: run a sweep (--tune alone: the space shipped for --model)")
    sweep.add_argument("--resume_sweep", default=None, metavar="DIR", help="resume the interrupted sweep in DIR")
    sweep.add_argument("--experiment_dir", default=None, metavar="DIR",
                       help="the sweep's folder (default: sweeps/<Model>-<dataset>-<time>)")
    sweep.add_argument("--search_alg", default="random", choices=["random", "grid", "tpe", "optuna", "hyperopt"],
                       help="random, grid (choices become grids), tpe (Optuna or HyperOpt, if installed)")
    sweep.add_argument("--num_samples", type=int, default=None, help="trials (with grid: repeats of the grid); default 10, grid 1")
    sweep.add_argument("--scheduler", default="fifo", choices=["fifo", "asha"], help="asha stops bad trials early")
    sweep.add_argument("--grace_period", type=int, default=1, help="ASHA: epochs every trial runs")
    sweep.add_argument("--reduction_factor", type=int, default=2, help="ASHA: keep 1/reduction_factor at each rung")
    sweep.add_argument("--cpus_per_trial", type=float, default=1.0, help="CPUs per trial")
    sweep.add_argument("--gpus_per_trial", type=float, default=0.0, help="GPU fraction per trial (0.25 packs 4 on a GPU)")
    sweep.add_argument("--max_concurrent_trials", type=int, default=None, help="cap on trials running at once")
    sweep.add_argument("--trial_time_limit", type=float, default=None, metavar="SECONDS", help="stop a trial after this long")
    sweep.add_argument("--time_budget", type=float, default=None, metavar="SECONDS", help="stop the sweep after this long")
    sweep.add_argument("--no_reuse_dataset", action="store_true", help="let every trial read the data set itself")
    sweep.add_argument("--best_from_unfinished", action="store_true",
                       help="best_config.yaml may come from a trial an interruption cut short (default: only "
                            "from trials that ran their course)")
    sweep.add_argument("--best_keeps_run_settings", action="store_true",
                       help="best_config.yaml keeps the command line's run-length and machine settings "
                            "(epochs, stopping_step, eval_step, data_path, checkpoint_dir, state, gpu_id, ...)")
    sweep.add_argument("--ray_address", default=None, metavar="ADDRESS", help="join this Ray cluster (e.g. auto)")
    sweep.add_argument("--num_cpus", type=int, default=None, help="local Ray: CPUs to use (default: all)")
    sweep.add_argument("--num_gpus", type=int, default=None, help="local Ray: GPUs to use (default: all)")
    sweep.add_argument("--object_store_memory", type=int, default=None, metavar="BYTES", help="local Ray: object store size")


def run_sweep_command(args, settings: list[str]) -> int:
    """``--tune`` / ``--resume_sweep``: the sweep, its summary printed; ray is imported here only."""
    from recbole_disentangle.tuning import resume_sweep, run_sweep  # imports ray: the 'tune' extra

    ray_init = {"address": args.ray_address, "num_cpus": args.num_cpus, "num_gpus": args.num_gpus,
                "object_store_memory": args.object_store_memory}
    best_options = {"best_from_unfinished": args.best_from_unfinished,
                    "best_keeps_run_settings": args.best_keeps_run_settings}
    if args.resume_sweep:
        summary = resume_sweep(args.resume_sweep, ray_init=ray_init, **best_options)
    else:
        summary = run_sweep(
            args.model, args.dataset, args.tune, config_files=args.config_files, settings=parse_cmd_args(settings),
            experiment_dir=args.experiment_dir, ray_init=ray_init, search_alg=args.search_alg,
            num_samples=args.num_samples, scheduler=args.scheduler,
            grace_period=args.grace_period, reduction_factor=args.reduction_factor,
            cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
            max_concurrent_trials=args.max_concurrent_trials, trial_time_limit_s=args.trial_time_limit,
            time_budget_s=args.time_budget, reuse_dataset=not args.no_reuse_dataset, strict=args.strict,
            **best_options,
        )
    print(open(summary["summary_md"], encoding="utf-8").read())
    print(f"Sweep folder: {summary['experiment_dir']} (tensorboard --logdir {summary['experiment_dir']})")
    if args.result_json:
        with open(args.result_json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2, default=str)
    if summary["interrupted"]:
        unfinished = sum(r["status"] == "INTERRUPTED" for r in summary["rows"])
        print(f"run_recbole_dis.py: the sweep was interrupted ({unfinished} trial(s) cut short); its summary "
              f"covers the trials that ran. Resume it with:\n  {summary['resume_command']}", file=sys.stderr)
        return SWEEP_INTERRUPTED
    return 0


def peak_memory_mb() -> dict:
    """Peak memory of this process: resident set (CPU) and, when used, CUDA allocations."""
    import resource

    import torch

    peak = {"cpu_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux reports KiB
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["cuda_allocated"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, settings = parser.parse_known_args(argv)
    if args.tune is not None or args.resume_sweep:
        try:
            return run_sweep_command(args, settings)
        except RecBoleDisError as err:
            print(f"run_recbole_dis.py: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # a second Ctrl+C: Ray skipped its last save of the sweep's state
            print("run_recbole_dis.py: the sweep was interrupted before its summary was written; resume it "
                  "with the --resume_sweep command it printed when it started.", file=sys.stderr)
            return SWEEP_INTERRUPTED
    console = Console("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    try:
        result = run(
            args.model,
            args.dataset,
            config_file_list=args.config_files,
            cmd_args=settings,
            saved=not args.no_save,
            resume_file=args.resume,
            strict=args.strict,
            console=console,
        )
    except RecBoleDisError as err:
        print(f"run_recbole_dis.py: error: {err}", file=sys.stderr)
        return 2
    result["peak_memory_mb"] = peak_memory_mb()
    result_json = args.result_json or (str(Path(result["log_file"]).with_suffix(".json")) if result["log_file"] else None)
    if result_json:
        with open(result_json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    console.finish(result, {
        "checkpoint": result["model_file"],
        "log": result["log_file"],
        "tensorboard": result["tensorboard_dir"],
        "result json": result_json,
        "learning curve": result["learning_curve"],
    })
    return 0
