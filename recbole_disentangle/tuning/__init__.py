"""Ray Tune sweeps, one module per concern.

A sweep is ``python run_recbole_dis.py --model=M --dataset=D --tune=properties/tune/M.yaml``;
every ordinary option (``--config_files``, ``--key=value``) applies to every trial, and each
trial is one :func:`recbole_disentangle.quick_start.run` (the same path as a plain run).

* :mod:`.space`: search-space files (their forms are listed there) and Ray's ``param_space``;
* :mod:`.ray_compat`: the Ray names that moved between versions, and starting Ray;
* :mod:`.trial`: one trial;
* :mod:`.spec`: what a sweep is (``sweep.json``) and the files it writes;
* :mod:`.sweep`: running and resuming a sweep;
* :mod:`.summary`: summary.csv, summary.md and best_config.yaml.

Ray is imported only in this package, and only sweeps import it; the data and model path never
import it. The names below stay importable from ``recbole_disentangle.tuning`` (and classes that
Ray pickled into an older sweep's state, ``TrialName`` and ``TrialEnds``, are found here).
"""

from recbole_disentangle.tuning.ray_compat import RayAPI, RayCallback, init_ray
from recbole_disentangle.tuning.space import (
    DISTRIBUTIONS,
    HIDDEN_LAYER_KEYS,
    Dist,
    find_space,
    ray_param_space,
    read_space,
    trial_settings,
)
from recbole_disentangle.tuning.spec import (
    BEST_YAML,
    ENDED_TRIALS,
    RUN_SETTINGS,
    SCHEDULERS,
    SEARCH_ALGS,
    SUMMARY_CSV,
    SUMMARY_MD,
    SWEEP_FILE,
    SweepSpec,
    ended_trials,
    resume_command,
)
from recbole_disentangle.tuning.summary import summarize
from recbole_disentangle.tuning.sweep import TrialEnds, TrialName, resume_sweep, run_sweep, tpe_searcher
from recbole_disentangle.tuning.trial import _trial, metric_key

__all__ = [
    "BEST_YAML", "DISTRIBUTIONS", "ENDED_TRIALS", "HIDDEN_LAYER_KEYS", "RUN_SETTINGS", "SCHEDULERS", "SEARCH_ALGS",
    "SUMMARY_CSV", "SUMMARY_MD", "SWEEP_FILE", "Dist", "RayAPI", "RayCallback", "SweepSpec", "TrialEnds",
    "TrialName", "_trial", "ended_trials", "find_space", "init_ray", "metric_key", "ray_param_space", "read_space",
    "resume_command", "resume_sweep", "run_sweep", "summarize", "tpe_searcher", "trial_settings",
]
