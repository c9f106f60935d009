"""A sweep's results: summary.csv, summary.md and best_config.yaml in its experiment folder."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import yaml

from recbole_disentangle.config import load_yaml_file
from recbole_disentangle.tuning.space import read_space, trial_settings
from recbole_disentangle.tuning.spec import (
    BEST_YAML,
    RUN_SETTINGS,
    SUMMARY_CSV,
    SUMMARY_MD,
    SweepSpec,
    ended_trials,
    resume_command,
)


def _error_line(result) -> str:
    """The last line of a failed trial's error (``ValueError: Training loss is nan``, say)."""
    error = result.error
    text = str(error) if error is not None else ""
    cause = getattr(error, "cause", None)
    if cause is not None:
        text = f"{type(cause).__name__}: {cause}"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


def _tune_statuses(result_grid) -> dict:
    """Trial id -> Ray's status (PENDING, RUNNING, TERMINATED, ERROR), where this ray exposes it."""
    analysis = getattr(result_grid, "_experiment_analysis", None)
    return {t.trial_id: str(t.status) for t in (getattr(analysis, "trials", None) or [])}


def _flat_params(config: dict) -> dict:
    """A trial's searched values for a table: hidden layers as their list, ``a.b`` kept as sampled."""
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in trial_settings(config).items()}


def summarize(result_grid, spec: SweepSpec) -> dict:
    """Write summary.csv, summary.md and best_config.yaml into the experiment directory.

    Rows are sorted by each trial's best validation metric (failed trials last); the test
    metrics of the best trial only are shown, so nobody selects a configuration on the test set.
    """
    experiment = Path(spec.experiment_dir)
    key, bigger = spec.metric, spec.mode == "max"
    searched = list(read_space(spec.space_file)[0]) if Path(spec.space_file).is_file() else []
    rows, finals = [], {}
    statuses = _tune_statuses(result_grid)
    ended = ended_trials(experiment)
    for result in result_grid:
        frame = result.metrics_dataframe
        metrics = result.metrics or {}
        trial = Path(str(getattr(result, "path", None) or result.log_dir)).name
        scores = frame[key].dropna() if frame is not None and key in frame else []
        best = (max(scores) if bigger else min(scores)) if len(scores) else None
        ray_status = next((st for tid, st in statuses.items() if trial.endswith(tid)), None)
        if result.error is not None:
            status = "ERROR"
        elif metrics.get("completed"):
            status = "COMPLETED"
        elif ray_status in ("PENDING", "RUNNING", "PAUSED") or (
                ended is not None and not any(trial.endswith(f"_{tid}") for tid in ended)):
            # Cut short by Ctrl+C, --time_budget or a crash of the driver (Ray marks the trials it
            # stops while cleaning up TERMINATED, like scheduler stops): --resume_sweep runs it again.
            status = "INTERRUPTED"
        else:
            status = "STOPPED"  # by the scheduler (ASHA), the trial time limit or the search
        row = {"trial": trial, "status": status, key: best,
               "epochs": int(frame["epoch"].max()) if frame is not None and "epoch" in frame and len(frame) else 0,
               "seconds": round(float(metrics.get("time_total_s", 0.0)), 2)}
        row.update({k: v for k, v in _flat_params(result.config or {}).items() if k in searched})
        row["error"] = _error_line(result) if status == "ERROR" else ""
        rows.append(row)
        finals[trial] = (metrics, result.config or {})
    # Failed trials go last whatever they reported before failing: their settings crash (or diverge).
    ok = [r for r in rows if r["status"] != "ERROR" and r[key] is not None and not math.isnan(float(r[key]))]
    ok.sort(key=lambda r: r[key], reverse=bigger)
    rows = ok + [r for r in rows if r not in ok]
    # An interrupted trial's score is that of its first epochs: the best configuration comes from
    # trials that ran their course, unless the user asks otherwise (--best_from_unfinished).
    candidates = [r for r in ok if r["status"] != "INTERRUPTED" or spec.best_from_unfinished]

    columns = ["trial", "status", key, "epochs", "seconds", *searched, "error"]
    with open(experiment / SUMMARY_CSV, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    best = candidates[0] if candidates else None
    best_settings, test = None, {}
    if best is not None:
        metrics, config = finals[best["trial"]]
        best_settings, left_out = _best_settings(spec, config)
        test = {k[len("test_"):]: v for k, v in metrics.items() if k.startswith("test_")}
        _write_best_yaml(experiment / BEST_YAML, spec, best, best_settings, left_out)
    else:
        (experiment / BEST_YAML).unlink(missing_ok=True)  # an earlier summary's, from trials now ranked otherwise
    _write_markdown(experiment / SUMMARY_MD, spec, rows, columns, best, test)
    interrupted = _interrupted(spec, rows)
    return {"experiment_dir": str(experiment), "rows": rows, "interrupted": interrupted,
            "resume_command": resume_command(spec) if interrupted else None, "best": best, "best_settings": best_settings,
            "best_test_result": test, "summary_csv": str(experiment / SUMMARY_CSV),
            "summary_md": str(experiment / SUMMARY_MD),
            "best_yaml": str(experiment / BEST_YAML) if best is not None else None}


def _interrupted(spec: SweepSpec, rows: list) -> bool:
    """Trials left to run: one interrupted, or fewer trials than the sweep asked for (Ctrl+C, a
    crash of the driver, or the --time_budget; a search that stops early by itself is not one)."""
    return any(r["status"] == "INTERRUPTED" for r in rows) or len(rows) < spec.expected_trials


def _best_settings(spec: SweepSpec, config: dict) -> tuple[dict, dict]:
    """(settings, left out): the user's own settings (config files, then command line) with the
    best trial's values; the command line's RUN_SETTINGS are left out unless the user keeps them."""
    merged = {}
    for file in spec.config_files:
        merged.update(load_yaml_file(file))
    command_line = {k: v for k, v in spec.settings.items() if k in spec.user_keys}
    left_out = {} if spec.best_keeps_run_settings else {k: v for k, v in command_line.items() if k in RUN_SETTINGS}
    merged.update({k: v for k, v in command_line.items() if k not in left_out})
    merged.update(trial_settings(config, spec.nested_base))
    return merged, left_out  # what a trial sets for itself (checkpoint_dir, gpu_id, absolute data_path) stays out


def _write_best_yaml(path: Path, spec: SweepSpec, best: dict, settings: dict, left_out: dict) -> None:
    header = (
        f"# Best trial {best['trial']} ({best['status']}) of the sweep in {spec.experiment_dir}\n"
        f"# ({spec.metric} = {best[spec.metric]:.6f} on the validation split). Train it with:\n"
        f"#   python run_recbole_dis.py --model={spec.model} --dataset={spec.dataset} --config_files {path}\n"
    )
    if left_out:
        header += ("# Left out: the sweep's run-length and machine settings of its command line "
                   "(--best_keeps_run_settings keeps them): "
                   + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(left_out.items())) + "\n")
    path.write_text(header + yaml.safe_dump(settings, sort_keys=True, default_flow_style=False), encoding="utf-8")


def _write_markdown(path: Path, spec: SweepSpec, rows: list, columns: list, best, test: dict) -> None:
    def cell(value):
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value).replace("|", "\\|")

    lines = [f"# Sweep: {spec.model} on {spec.dataset}", "",
             f"Space `{spec.space_file}`, search `{spec.search_alg}`, scheduler `{spec.scheduler}`, "
             f"{len(rows)} trials ({sum(r['status'] == 'ERROR' for r in rows)} failed), sorted by "
             f"validation `{spec.metric}` ({spec.mode}).", ""]
    if _interrupted(spec, rows):
        lines += [f"The sweep was interrupted: resume it with `{resume_command(spec)}`.", ""]
    if best is None and any(r["status"] == "INTERRUPTED" for r in rows):
        lines += [f"No trial has run its course, so no `{BEST_YAML}` was written (--best_from_unfinished "
                  f"writes it from the best interrupted trial).", ""]
    if best is not None:
        lines += [f"Best trial: `{best['trial']}` ({spec.metric} = {best[spec.metric]:.6f}); its settings are in "
                  f"`{BEST_YAML}`.", ""]
        if test:
            lines += ["Test metrics of the best trial (reported once; select on validation only): "
                      + ", ".join(f"{k} = {v:.4f}" for k, v in sorted(test.items())), ""]
        else:
            lines += ["The best trial was stopped before its end, so it has no test metrics: train it with "
                      f"`--config_files {BEST_YAML}`.", ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
