#!/usr/bin/env python
"""Data preparation, training epochs and one evaluation at the scale of ML-20M, Netflix and a 200k-item catalog.

    OMP_NUM_THREADS=1 python benchmarks/scale.py --scale 0.01 --epochs 2 --epoch_budget 60 --eval_budget 60 \\
        --out docs/results.md --name scale-cpu

For every shape of ``scale_data.SHAPES`` (``--shapes``) a data set is generated with that shape's
users, items, interactions per user and item-popularity curve, shrunk by ``--scale`` (users, items
and interactions; ``--item_scale`` shrinks the catalog by another factor, e.g. 1 to keep it whole:
a step then costs what it costs at full size and an epoch has ``--scale`` of its steps), written as
an atomic file, and every model of ``--models`` runs on it through the package's own pipeline:

* data preparation: ``quick_start.build`` (RecBole's Dataset, split and loaders, the model), under
  ``--protocol`` (``recbole``: RecBole's per-user split; ``paper``: held-out users);
* ``--epochs`` training epochs (the trainer's ``_train_epoch``: RecBole's loop, without its per-step host syncs, epoch.py);
* one full-ranking evaluation pass over the validation split (``Trainer.evaluate``);
* an epoch's FLOPs, counted before the timed epochs (benchmarks/flops.py: dense matrix products),
  and the TFLOP/s the epochs achieve, as a % of the device's FP32 peak where known (``--peak_tflops``).

Models run interleaved (A B C ... A B C ... for ``--reps``), each run in a process of its own, so
its peak host memory (max RSS, which includes the ~300 MB of the imports) and device memory
(``torch.cuda.max_memory_allocated``) are its own. An epoch or evaluation that runs past its
budget (``--epoch_budget``, ``--eval_budget`` seconds) is stopped between batches and extrapolated
to the whole pass (marked ``*``); so a 2-core machine reports an epoch of a large shape in minutes.
``--devices`` runs every model on each device (default: cpu, and cuda when present).

The markdown table (one row per shape, model and device; min and median over ``--reps``) goes into
``--out`` between ``<!-- benchmark:NAME -->`` markers, with the command, the machine and the commit;
``--json`` keeps every run's figures.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import flops  # noqa: E402
import scale_data  # noqa: E402

DEFAULT_MODELS = ["MacridVAE", "MacridVAE:sampled_negatives={negatives}", "RecBoleMacridVAE", "MultiVAE", "MultiDAE"]


def parse_model(spec: str) -> tuple[str, str, list[str]]:
    """'Name:key=value,key=value' -> (label, model, ['--key=value', ...])."""
    name, _, settings = spec.partition(":")
    return spec, name, [f"--{item.strip()}" for item in settings.split(",") if item.strip()]


def budgeted(loader, budget: float, tally: dict):
    """``loader`` (same class, so RecBole's isinstance checks hold) stopping after ``budget`` seconds.

    ``tally`` receives the batches run and whether the pass was cut short.
    """
    base = loader.__class__

    def limit(batches):
        started = time.perf_counter()
        tally.update(done=0, cut=False)
        for batch in batches:
            if budget and tally["done"] and time.perf_counter() - started > budget:
                tally["cut"] = True
                break
            yield batch
            tally["done"] += 1

    limited = copy.copy(loader)
    if hasattr(loader, "batches"):  # the paper protocol's held-out users: scored batch by batch through batches()
        limited.batches = lambda: limit(loader.batches())
    else:
        limited.__class__ = type(f"Budgeted{base.__name__}", (base,), {"__iter__": lambda self: limit(base.__iter__(self))})
    return limited


def protocol_settings(protocol: str, generated: bool = True) -> list[str]:
    """Command-line settings for ``--protocol``. The generated interactions are all positives
    (rating 1), so on them the paper protocol keeps every rating instead of those >= 4; a real
    data set keeps its own YAML's threshold."""
    if protocol == "paper" and generated:
        return ["--eval_protocol=paper", "--paper_rating_threshold=~"]
    return [f"--eval_protocol={protocol}"]


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_model(job: dict) -> dict:
    """One model on one data set and device: preparation, epochs, one evaluation (in its own process)."""
    import torch

    from recbole_disentangle import compat
    from recbole_disentangle.config import Config
    from recbole_disentangle.quick_start import build
    from recbole_disentangle.trainer import get_trainer

    compat.filter_known_warnings()
    # RecBole's trainer writes ./log_tensorboard: into the workdir (a process of its own), not the caller's folder.
    os.chdir(job["workdir"])
    cuda = job["device"] == "cuda"
    result = {"ok": False}

    def now():
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    stage = "config"
    try:
        settings = [
            *([f"--data_path={job['data_path']}"] if job["data_path"] else []), "--download=false",
            "--show_progress=false", "--state=WARNING",
            f"--use_gpu={'true' if cuda else 'false'}", f"--seed={job['seed']}", f"--epochs={job['epochs']}",
            f"--checkpoint_dir={job['workdir']}/saved", *protocol_settings(job.get("protocol", "recbole"), job.get("generated", True)),
            *job["settings"],
        ]
        config = Config(job["model"], job["dataset"], None, None, settings)
        stage = "preparation"
        started, cpu_started = now(), time.process_time()
        dataset, train_data, valid_data, _, model = build(config)
        result["prep_s"] = now() - started
        # CPU seconds of this process: on a shared machine, less at the mercy of the others' load.
        result["prep_cpu_s"] = time.process_time() - cpu_started
        result["prep_rss_mb"] = peak_rss_mb()  # the peak so far: preparation's, imports included
        result.update(users=int(dataset.user_num) - 1, items=int(dataset.item_num) - 1, interactions=len(dataset.inter_feat))
        trainer = get_trainer(config, model)
        stage = "flop count"
        if job.get("flop_steps"):
            result["flops"] = flops.count_epoch_flops(model, train_data, trainer.device, job["flop_steps"])
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        stage = "training"
        epochs = []
        for epoch in range(job["epochs"]):
            tally = {}
            started = now()
            loss = trainer._train_epoch(budgeted(train_data, job["epoch_budget"], tally), epoch, show_progress=False)
            seconds = now() - started
            epochs.append({"s": seconds * len(train_data) / max(tally["done"], 1), "cut": tally["cut"],
                           "batches": tally["done"], "of": len(train_data), "loss": loss})
        result["epochs"] = epochs
        stage = "evaluation"
        tally = {}
        started = now()
        with torch.no_grad():
            metrics = trainer.evaluate(budgeted(valid_data, job["eval_budget"], tally), load_best_model=False, show_progress=False)
        seconds = now() - started
        result["eval"] = {"s": seconds * len(valid_data) / max(tally["done"], 1), "cut": tally["cut"],
                          "batches": tally["done"], "of": len(valid_data),
                          "metrics": {name: float(value) for name, value in (metrics or {}).items()}}
        if cuda:  # the device's name: its FP32 peak (flops.fp32_peak)
            result.update(device_peak_mb=torch.cuda.max_memory_allocated() / 2**20, device_name=torch.cuda.get_device_name(),
                          matmul_tf32=torch.backends.cuda.matmul.allow_tf32)
        result["ok"] = True
    except Exception as err:  # noqa: BLE001 - reported in the table, the next run goes on
        result["error"] = f"{stage}: {type(err).__name__}: {str(err)[:300]}"
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _child(job: dict, queue) -> None:
    queue.put(run_model(job))


def run_in_own_process(job: dict) -> dict:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh process: its own peak memory, no forked CUDA
    queue = context.Queue()
    process = context.Process(target=_child, args=(job, queue))
    process.start()
    result = None
    while result is None:
        try:
            result = queue.get(timeout=5)
        except Exception:  # noqa: BLE001 - queue.Empty: still running, unless the process died
            if not process.is_alive():
                result = {"ok": False, "error": f"the run's process ended with exit code {process.exitcode} (out of memory?)"}
    process.join()
    return result


def cell(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f}"


def table(rows: list[dict], reps: int, peaks: dict[str, float]) -> list[str]:
    """The markdown table; ``peaks``: ``--peak_tflops`` as {device or '': TFLOPS} (flops.fp32_peak)."""
    lines = [
        "| shape | users x items, interactions (as loaded) | model | device | preparation s | s / epoch | evaluation s | "
        "evaluation / epoch | GFLOP / epoch | TFLOP/s | % of FP32 peak | peak RSS MB | peak device MB | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ok = [r for r in row["runs"] if r.get("ok")]
        # What RecBole loaded: it keeps only the items that occur in the file, fewer than the
        # shape's catalog when users are scaled down far.
        seen = ok[0] if ok else row
        data = f"{seen['users']:,} x {seen['items']:,}, {seen['interactions']:,}"
        if not ok:
            error = next((r.get("error", "") for r in row["runs"]), "")
            lines.append(f"| {row['shape']} | {data} | {row['label']} | {row['device']} | – | – | – | – | – | – | – | "
                         f"{max(r.get('peak_rss_mb', 0) for r in row['runs']):.0f} | – | failed: {error[:160]} |")
            continue
        # Per run: the median epoch (the first carries warm-up when there are more).
        per_run = [seconds for seconds in run_epoch_seconds(row) if seconds is not None]
        evals = [r["eval"]["s"] for r in ok]
        cut = any(e["cut"] for r in ok for e in r["epochs"])
        cut_eval = any(r["eval"]["cut"] for r in ok)
        notes = []
        if cut or cut_eval:
            done = min(e["batches"] for r in ok for e in r["epochs"])
            notes.append(f"extrapolated (*) from the batches run within the budget (epochs: >= {done} of {ok[0]['epochs'][0]['of']})")
        if all("prep_cpu_s" in r for r in ok):
            notes.append(f"preparation CPU s {cell([r['prep_cpu_s'] for r in ok], 1)}")
        if all("prep_rss_mb" in r for r in ok):
            notes.append(f"peak RSS after preparation {max(r['prep_rss_mb'] for r in ok):.0f} MB")
        peak = flops.fp32_peak(row["device"], ok, peaks)
        notes += flops.flop_notes(ok, peak)
        device_peak = max(r.get("device_peak_mb", 0) for r in ok)
        lines.append(
            f"| {row['shape']} | {data} | {row['label']} | {row['device']} | {cell([r['prep_s'] for r in ok], 1)} | "
            f"{cell(per_run)}{'*' if cut else ''} | {cell(evals)}{'*' if cut_eval else ''} | "
            f"{statistics.median(evals) / statistics.median(per_run):.2f} | "
            f"{' | '.join(flops.flop_cells(ok, per_run, peak))} | {max(r['peak_rss_mb'] for r in ok):.0f} | "
            f"{f'{device_peak:.0f}' if device_peak else '–'} | {'; '.join(notes)} |"
        )
    lines += ["", f"Two figures in a cell: min / median over {reps} runs (interleaved); one figure: one run. "
              "Preparation: RecBole's Dataset, split and loaders and the model, from the atomic file. "
              "s / epoch: the median over a run's epochs after the first (the first when there is one). " + flops.TABLE_NOTE]
    return lines


def epoch_ratios(rows: list[dict]) -> list[str]:
    """Per shape and device, the first model's seconds per epoch over each other model's, run by run
    (rep r of one against rep r of the other, interleaved in time): min and median of the ratios."""
    lines = []
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["shape"], row["device"]), []).append(row)
    for (shape, device), group in groups.items():
        first, others = group[0], group[1:]
        parts = []
        for other in others:
            ratios = [mine / theirs for mine, theirs in zip(run_epoch_seconds(first), run_epoch_seconds(other))
                      if mine and theirs]
            if ratios:
                parts.append(f"{first['label']} / {other['label']} = {cell(ratios)}")
        if parts:
            lines.append(f"- {shape}, {device}: seconds per epoch, {'; '.join(parts)} (min / median over the reps)")
    return ["", *lines] if lines else []


def run_epoch_seconds(row: dict) -> list[float | None]:
    """Each run's median epoch (the first carries warm-up when there are more); None for a failed run."""
    return [statistics.median([e["s"] for e in r["epochs"]][1:] or [r["epochs"][0]["s"]]) if r.get("ok") else None
            for r in row["runs"]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="*", choices=list(scale_data.SHAPES), default=list(scale_data.SHAPES))
    parser.add_argument("--datasets", nargs="*", default=[], metavar="NAME[=DATA_PATH]",
                        help="real data sets too (after the shapes), e.g. ml-100k ml-latest-small=dataset_atomic; "
                             "no DATA_PATH: RecBole's bundled copy (ml-100k)")
    parser.add_argument("--scale", type=float, default=1.0, help="users, items and interactions times this, in (0, 1]")
    parser.add_argument("--item_scale", type=float, default=None, help="items times this instead (default: --scale)")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS,
                        help="Model[:key=value,...]; {negatives} = --negatives times the item factor")
    parser.add_argument("--negatives", type=int, default=1000, help="sampled negatives at full size")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--epoch_budget", type=float, default=0.0, help="seconds per epoch before extrapolating; 0 = whole")
    parser.add_argument("--eval_budget", type=float, default=0.0, help="seconds per evaluation before extrapolating")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--protocol", choices=["recbole", "paper"], default="recbole",
                        help="evaluation protocol: RecBole's per-user split, or the paper's held-out users")
    parser.add_argument("--workdir", default=None, help="generated data, logs, checkpoints (default: a temp dir)")
    parser.add_argument("--out", default=None, help="markdown file to write the section into (e.g. docs/results.md)")
    parser.add_argument("--name", default="scale")
    parser.add_argument("--json", default=None, help="also write every run's figures here")
    parser.add_argument("--render", default=None, help="write the section from a --json file of an earlier run (no runs)")
    parser.add_argument("--flop_steps", type=int, default=flops.DEFAULT_STEPS, help="training steps FLOPs are counted on; 0: none")
    parser.add_argument("--peak_tflops", nargs="+", type=flops.peak_option, default=[], metavar="[DEVICE=]TFLOPS",
                        help="FP32 peak: 67 (every device) or cpu=1.2 cuda=67; default: flops.py's datasheet GPUs, none for a CPU")
    return parser


def data_sources(args, item_scale: float, workdir: Path, generation: list[str]):
    """(row name, data set, data path, counts) for each generated shape (written under ``workdir``;
    a line about it appended to ``generation``) and each real data set of ``--datasets``."""
    for shape_name in args.shapes:
        shape = scale_data.SHAPES[shape_name].scaled(args.scale, item_scale)
        dataset = f"scale-{shape_name}"
        started = time.perf_counter()
        matrix = scale_data.generate(shape, seed=args.seed)
        scale_data.write_atomic(matrix, workdir / "data", dataset)
        realised_gini = scale_data.gini(matrix.sum(axis=0).A1)
        generation.append(f"{shape_name}: {shape.users:,} users x {shape.items:,} items, {matrix.nnz:,} interactions "
                          f"(item Gini {realised_gini:.2f}, target {shape.item_gini}), generated and written in "
                          f"{time.perf_counter() - started:.1f} s")
        print(generation[-1], flush=True)
        yield shape_name, dataset, str(workdir / "data"), {"users": shape.users, "items": shape.items,
                                                           "interactions": matrix.nnz}
    for spec in args.datasets:
        name, _, data_path = spec.partition("=")
        # As loaded (filtered by the data set's YAML): filled in from the runs for the table.
        yield name, name, str(Path(data_path).resolve()) if data_path else None, {"users": 0, "items": 0, "interactions": 0}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    peaks = dict(args.peak_tflops)
    if args.render:
        from benchmark import write_section

        saved = json.loads(Path(args.render).read_text())
        body = [*saved["header"], *table(saved["rows"], saved["reps"], peaks), *epoch_ratios(saved["rows"]), ""]
        print("\n".join(body))
        if args.out:
            write_section(Path(args.out), args.name, body)
        return 0

    import torch

    from benchmark import git_commit, machine, write_section

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    item_scale = args.item_scale if args.item_scale is not None else args.scale
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="scale-")).resolve()  # runs chdir into it
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    generation = []
    for shape_name, dataset, data_path, counts in data_sources(args, item_scale, workdir, generation):
        generated = shape_name != dataset
        negatives = max(int(round(args.negatives * item_scale)), 1) if generated else args.negatives
        specs = [spec.replace("{negatives}", str(negatives)) for spec in args.models]
        shape_rows = {}
        for device in devices:
            for spec in specs:
                label, model, settings = parse_model(spec)
                shape_rows[(device, label)] = {"shape": shape_name, "label": label, "device": device, "runs": [],
                                               **counts, "job": {"model": model, "settings": settings}}
        for rep in range(args.reps):
            for (device, label), row in shape_rows.items():
                job = {**row["job"], "dataset": dataset, "data_path": data_path, "generated": generated,
                       "device": device,
                       "seed": args.seed, "epochs": args.epochs, "epoch_budget": args.epoch_budget,
                       "eval_budget": args.eval_budget, "workdir": str(workdir), "protocol": args.protocol, "flop_steps": args.flop_steps}
                result = run_in_own_process(job)
                result.update(rep=rep, shape=shape_name, label=label, device=device)
                row["runs"].append(result)
                summary = (f"prep {result['prep_s']:.1f} s, epoch {result['epochs'][-1]['s']:.2f} s, "
                           f"eval {result['eval']['s']:.2f} s, RSS {result['peak_rss_mb']:.0f} MB") if result.get("ok") else result.get("error")
                print(f"[{shape_name} {device} rep {rep}] {label}: {summary}", flush=True)
        rows += list(shape_rows.values())
    command = "OMP_NUM_THREADS=1 python benchmarks/scale.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    header = [
        f"## {args.name}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}  ",
        f"Date: {datetime.date.today().isoformat()}, commit {git_commit()}",
        "",
        *[f"- {line}" for line in generation],
        "",
    ]
    if args.json:
        plain_rows = [{k: v for k, v in row.items() if k != "job"} for row in rows]
        Path(args.json).write_text(json.dumps({"header": header, "rows": plain_rows, "reps": args.reps}, indent=1))
    body = [*header, *table(rows, args.reps, peaks), *epoch_ratios(rows), ""]
    text = "\n".join(body)
    print(text, flush=True)
    if args.out:
        write_section(Path(args.out), args.name, body)
        print(f"wrote {args.out}")
    return 0 if all(r.get("ok") for row in rows for r in row["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
