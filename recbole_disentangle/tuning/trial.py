"""One trial of a sweep: :func:`recbole_disentangle.quick_start.run` with the sampled settings."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from recbole_disentangle.quick_start import run
from recbole_disentangle.tuning.ray_compat import RayAPI
from recbole_disentangle.tuning.space import trial_settings


def metric_key(valid_metric: str) -> str:
    """The reported name of the validation metric: ``NDCG@10`` -> ``valid_ndcg@10``."""
    return "valid_" + valid_metric.lower()


def _trial(params: dict, dataset=None, spec: dict | None = None) -> None:
    """One trial: quick_start.run with the sampled settings; reports after every validation."""
    started = time.perf_counter()
    api = RayAPI()
    trial_dir = Path(api.trial_dir())
    trial_dir.mkdir(parents=True, exist_ok=True)
    os.chdir(trial_dir)  # RecBole writes ./log and ./log_tensorboard: keep them in the trial's folder
    # Ray reuses a worker process for the next trial; RecBole's init_logger calls logging.basicConfig,
    # a no-op once the root logger has handlers, so drop the previous trial's (its log file) first.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    settings = {**spec["settings"], **trial_settings(params, spec["nested_base"])}
    settings["checkpoint_dir"] = str(trial_dir / "checkpoints")
    # A trial cut short by an interruption runs again from its start on --resume_sweep (trials keep
    # no Tune checkpoint): the checkpoints of its first, partial attempt must not stand beside the new ones.
    shutil.rmtree(settings["checkpoint_dir"], ignore_errors=True)
    settings["show_progress"] = False
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if spec["gpus_per_trial"] > 0 and visible:
        # RecBole sets CUDA_VISIBLE_DEVICES from gpu_id; give it the GPU(s) Ray assigned this trial.
        settings["gpu_id"], settings["use_gpu"] = visible, True
    elif spec["gpus_per_trial"] == 0:
        settings["use_gpu"] = False  # Ray reserved no GPU for this trial: do not take one behind its back
    key = spec["metric"]

    def report_epoch(epoch_idx: int, valid_score: float) -> None:
        api.report({key: float(valid_score), "epoch": epoch_idx + 1,
                    "seconds_since_start": time.perf_counter() - started})

    result = run(spec["model"], spec["dataset"], config_file_list=spec["config_files"], config_dict=settings,
                 saved=True, prepared_dataset=dataset, callback_fn=report_epoch, strict=spec["strict"])
    # The last report carries the best validation score (the checkpoint kept) and the test
    # metrics of that checkpoint; the summary shows the latter for the best trial only.
    final = {key: result["best_valid_score"], "epoch": result["epochs"], "completed": 1,
             "seconds_per_epoch": result["seconds_per_epoch"], "fit_seconds": result["fit_seconds"],
             "seconds_since_start": time.perf_counter() - started}
    final.update({f"test_{k}": float(v) for k, v in result["test_result"].items()})
    api.report(final)
