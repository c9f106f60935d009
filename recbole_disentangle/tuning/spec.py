"""What a sweep is (:class:`SweepSpec`, saved as ``sweep.json`` so it can resume) and the files it writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recbole_disentangle.errors import ConfigError

SWEEP_FILE = "sweep.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
BEST_YAML = "best_config.yaml"
# Trials that ended by the sweep's own course (finished, failed, or stopped by the scheduler, the
# trial time limit or the search), one id a line; any other trial without a final report was cut
# short by an interruption (Ctrl+C, --time_budget, a crash of the driver).
ENDED_TRIALS = "ended_trials.txt"

# Settings about how long or where trials run rather than what a configuration is: a sweep often
# shortens its trials (--epochs=20) or names its machine's folders. best_config.yaml leaves those of
# the sweep's command line out (and says so), so that training with it gets the model's own run
# length; --best_keeps_run_settings keeps them.
RUN_SETTINGS = frozenset({
    "epochs", "stopping_step", "eval_step", "data_path", "checkpoint_dir", "state", "show_progress",
    "gpu_id", "use_gpu", "worker", "log_wandb", "wandb_project",
})
SEARCH_ALGS = ("random", "grid", "tpe", "optuna", "hyperopt")
SCHEDULERS = ("fifo", "asha")


@dataclass
class SweepSpec:
    """Everything a sweep needs, written to ``<experiment_dir>/sweep.json`` so it can resume."""

    model: str
    dataset: str
    space_file: str
    experiment_dir: str
    config_files: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)      # --key=value of the command line
    search_alg: str = "random"
    num_samples: int = 10
    scheduler: str = "fifo"
    grace_period: int = 1
    reduction_factor: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent_trials: int | None = None
    trial_time_limit_s: float | None = None
    time_budget_s: float | None = None
    reuse_dataset: bool = True
    metric: str = ""
    mode: str = "max"
    user_keys: list = field(default_factory=list)    # settings the user gave (for the best YAML)
    nested_base: dict = field(default_factory=dict)  # mapping settings searched entry by entry (a.b)
    expected_trials: int = 0                         # num_samples x the grid's size
    strict: bool = False                             # --strict: a setting no component reads is an error
    best_from_unfinished: bool = False               # best_config.yaml may come from an interrupted trial
    best_keeps_run_settings: bool = False            # best_config.yaml keeps RUN_SETTINGS of the command line


def check_options(spec: SweepSpec) -> None:
    if spec.search_alg not in SEARCH_ALGS:
        raise ConfigError(f"--search_alg={spec.search_alg} is unknown; use one of {', '.join(SEARCH_ALGS)}.")
    if spec.scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler={spec.scheduler} is unknown; use one of {', '.join(SCHEDULERS)}.")
    if spec.num_samples < 1:
        raise ConfigError(f"--num_samples={spec.num_samples} must be at least 1.")
    if spec.cpus_per_trial <= 0 or spec.gpus_per_trial < 0:
        raise ConfigError("--cpus_per_trial must be > 0 and --gpus_per_trial >= 0 (0.25 packs four trials on a GPU).")


def ended_trials(experiment_dir) -> set[str] | None:
    """Ids of the trials that ended by the sweep's own course; None for a sweep older than ENDED_TRIALS."""
    path = Path(experiment_dir) / ENDED_TRIALS
    if not path.exists():
        return None
    return set(path.read_text(encoding="utf-8").split())


def resume_command(spec: SweepSpec) -> str:
    return f"python run_recbole_dis.py --resume_sweep={spec.experiment_dir}"

