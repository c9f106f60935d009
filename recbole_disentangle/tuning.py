"""Ray Tune sweeps: search-space files, the trainable, and the sweep's summary.

A sweep is ``python run_recbole_dis.py --model=M --dataset=D --tune=properties/tune/M.yaml``;
every ordinary option (``--config_files``, ``--key=value``) applies to every trial, and each
trial is one :func:`recbole_disentangle.quick_start.run` (the same path as a plain run).

Search-space files (``properties/tune/<Model>.yaml``) map a hyper-parameter to one of:

* a Ray-style distribution, a mapping of one key: ``{choice: [a, b]}``, ``{grid: [a, b]}``,
  ``{uniform: [low, high]}``, ``{quniform: [low, high, q]}``, ``{loguniform: [low, high]}``
  (bounds are the values themselves), ``{qloguniform: [low, high, q]}``,
  ``{randint: [low, high]}`` (high excluded, as in Ray), ``{qrandint: [low, high, q]}`` (high
  included, as in Ray);
* a RecBole-style line (RecBole's ``hyper.test``): ``"choice [a, b]"``, ``"uniform low, high"``,
  ``"quniform low, high, q"``, ``"loguniform low, high"``, where, as in RecBole/Hyperopt, the
  loguniform bounds are natural-log exponents (``loguniform -8, 0`` = e^-8 .. 1);
* a stack of hidden layers, ``{layers: DIST, units: DIST}``: ``layers`` layers of ``units``
  units each (the papers' "0..3 hidden layers of 50..700 units"), given to the model as a list;
* anything else: a fixed value for every trial.

Ray is imported only here, and only sweeps import this module; the data and model path never import it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from recbole_disentangle.config import Config, data_path_for_runs_elsewhere, load_yaml_file, properties_dir, to_plain
from recbole_disentangle.errors import ConfigError

# Ray reads this when it is first imported: every trial's log lines, not "[repeated 3x across cluster]".
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

try:  # only sweeps import this module; without ray they stop at init_ray with ray's ImportError
    from ray.tune import Callback as RayCallback
except ImportError:
    RayCallback = object

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

# (number of arguments, Ray's function name) of each distribution a space file may name.
DISTRIBUTIONS = {
    "choice": (None, "choice"),
    "grid": (None, "grid_search"),
    "uniform": (2, "uniform"),
    "quniform": (3, "quniform"),
    "loguniform": (2, "loguniform"),
    "qloguniform": (3, "qloguniform"),
    "randint": (2, "randint"),
    "qrandint": (3, "qrandint"),
}
HIDDEN_LAYER_KEYS = {"layers", "units"}
SEARCH_ALGS = ("random", "grid", "tpe", "optuna", "hyperopt")
SCHEDULERS = ("fifo", "asha")


# ---------------------------------------------------------------------------------------------
# Search-space files
# ---------------------------------------------------------------------------------------------
@dataclass
class Dist:
    """One distribution of a space file, before it becomes Ray's object (so it stays plain)."""

    kind: str
    args: list

    def to_ray(self, grid_choices: bool = False):
        from ray import tune

        kind = "grid" if (grid_choices and self.kind == "choice") else self.kind
        fn = getattr(tune, DISTRIBUTIONS[kind][1])
        return fn(list(self.args)) if DISTRIBUTIONS[kind][0] is None else fn(*self.args)


def _parse_dist(key: str, value, where: str):
    """``value`` of ``key`` as a Dist, a hidden-layer stack {layers: Dist, units: Dist}, or None (fixed)."""
    if isinstance(value, str):
        head, _, rest = value.strip().partition(" ")
        if head in ("choice", "uniform", "quniform", "loguniform") and rest.strip():
            return _parse_recbole_line(key, head, rest, where)
        return None
    if not isinstance(value, dict) or not value:
        return None
    if set(value) == HIDDEN_LAYER_KEYS:
        stack = {}
        for part in ("layers", "units"):
            dist = _parse_dist(f"{key}.{part}", value[part], where)
            if not isinstance(dist, Dist):
                raise ConfigError(
                    f"{where}: '{key}.{part}' must be a distribution such as {{randint: [0, 4]}}, not {value[part]!r}."
                )
            stack[part] = dist
        return stack
    if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        return None  # a fixed mapping (eval_args, say)
    kind, args = next(iter(value.items()))
    n_args = DISTRIBUTIONS[kind][0]
    if not isinstance(args, list) or not args or (n_args is not None and len(args) != n_args):
        shape = "[value, value, ...]" if n_args is None else "[" + ", ".join(["low", "high", "q"][:n_args]) + "]"
        raise ConfigError(f"{where}: '{key}: {{{kind}: {args!r}}}' needs a list {shape}.")
    if n_args is not None:
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ConfigError(f"{where}: '{key}: {{{kind}: {args}}}' needs numbers.")
        if args[0] >= args[1]:
            raise ConfigError(f"{where}: '{key}: {{{kind}: {args}}}' needs low < high.")
        if kind in ("loguniform", "qloguniform") and args[0] <= 0:
            raise ConfigError(
                f"{where}: '{key}: {{{kind}: {args}}}' needs low > 0 (the bounds are values, not exponents; "
                f"RecBole's line form 'loguniform -8, 0' takes exponents)."
            )
        if kind in ("randint", "qrandint") and not all(isinstance(a, int) for a in args):
            raise ConfigError(f"{where}: '{key}: {{{kind}: {args}}}' needs integers.")
    return Dist(kind, list(args))


def _parse_recbole_line(key: str, head: str, rest: str, where: str) -> Dist:
    """RecBole's ``hyper.test`` forms; ``loguniform a, b`` samples exp(uniform(a, b)) as Hyperopt does."""
    try:
        if head == "choice":
            values = yaml.safe_load(rest)
            if not isinstance(values, list) or not values:
                raise ValueError
            return Dist("choice", values)
        numbers = [float(x) for x in rest.split(",")]
        if len(numbers) != (3 if head == "quniform" else 2) or numbers[0] >= numbers[1]:
            raise ValueError
    except (ValueError, yaml.YAMLError):
        form = {"choice": "choice [a, b]", "quniform": "quniform low, high, q"}.get(head, f"{head} low, high")
        raise ConfigError(f"{where}: '{key}: {head} {rest}' is not of the form '{form}'.") from None
    if head == "loguniform":
        return Dist("loguniform", [math.exp(numbers[0]), math.exp(numbers[1])])
    return Dist(head, numbers)


def read_space(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(searched, fixed)`` from a space file: searched maps a key to a Dist or a hidden-layer stack."""
    path = Path(path)
    content = load_yaml_file(path)
    if not content:
        raise ConfigError(f"The search space '{path}' is empty: give at least one hyper-parameter to search.")
    searched, fixed = {}, {}
    for key, value in content.items():
        dist = _parse_dist(key, value, str(path))
        (searched if dist is not None else fixed)[key] = value if dist is None else dist
    if not searched:
        raise ConfigError(
            f"The search space '{path}' holds only fixed values; give distributions such as "
            f"learning_rate: {{loguniform: [1.0e-4, 1.0e-2]}}."
        )
    return searched, fixed


def find_space(model: str) -> Path | None:
    """The space shipped for ``model`` in ``properties/tune/``, if any."""
    shipped = properties_dir() / "tune" / f"{model}.yaml"
    return shipped if shipped.is_file() else None


def ray_param_space(searched: dict, fixed: dict, search_alg: str) -> dict:
    """Ray's ``param_space``; ``grid`` turns every ``choice`` into a grid, TPE refuses grids."""
    grid_choices = search_alg == "grid"
    space = dict(fixed)
    for key, dist in searched.items():
        if isinstance(dist, dict):
            space[key] = {part: d.to_ray(grid_choices) for part, d in dist.items()}
        else:
            if search_alg in ("tpe", "optuna", "hyperopt") and dist.kind == "grid":
                raise ConfigError(
                    f"'{key}' is a grid, which TPE cannot search: use {{choice: {dist.args}}} or --search_alg=grid."
                )
            space[key] = dist.to_ray(grid_choices)
    return space


def trial_settings(params: dict, nested_base: dict | None = None) -> dict:
    """A trial's sampled values as model settings.

    A hidden-layer stack becomes its list of sizes; ``outer.inner`` (``train_neg_sample_args.sample_num``)
    sets one entry of a mapping setting, whose other entries come from ``nested_base[outer]``.
    """
    settings = {}
    for key, value in params.items():
        if isinstance(value, dict) and set(value) == HIDDEN_LAYER_KEYS:
            value = [int(value["units"])] * int(value["layers"])
        elif hasattr(value, "item"):  # numpy scalars from the searchers
            value = value.item()
        if "." in key and nested_base is not None:
            outer, inner = key.split(".", 1)
            settings.setdefault(outer, dict(nested_base.get(outer) or {}))[inner] = value
        else:
            settings[key] = value
    return settings


# ---------------------------------------------------------------------------------------------
# Ray API across versions
# ---------------------------------------------------------------------------------------------
class RayAPI:
    """The few names that moved between ray 2.6.3 (Python <= 3.11, RecBole's pin) and current 2.x.

    ray 2.6: ``ray.air.session.report/get_trial_dir``, ``ray.air.RunConfig``;
    ray 2.7-2.40: ``ray.train.report/get_context``, ``ray.train.RunConfig``;
    ray >= 2.41: ``ray.tune.report/get_context``, ``ray.tune.RunConfig`` (``ray.train``'s are
    deprecated inside Tune trials there).
    """

    def __init__(self):
        from ray import tune

        if hasattr(tune, "get_context"):
            self.report_fn, context = tune.report, tune.get_context
            self.trial_dir = lambda: context().get_trial_dir()
            self.RunConfig, self.FailureConfig = tune.RunConfig, tune.FailureConfig
            return
        try:
            from ray import train

            self.report_fn, context = train.report, train.get_context
            self.trial_dir = lambda: context().get_trial_dir()
            self.RunConfig, self.FailureConfig = train.RunConfig, train.FailureConfig
        except (ImportError, AttributeError):
            from ray import air
            from ray.air import session

            self.report_fn, self.trial_dir = session.report, session.get_trial_dir
            self.RunConfig, self.FailureConfig = air.RunConfig, air.FailureConfig

    def report(self, metrics: dict) -> None:
        self.report_fn(metrics)


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
             object_store_memory: int | None = None) -> None:
    """Join ``address`` (an existing cluster; else ``RAY_ADDRESS`` if set), or start a small local
    Ray without its dashboard.

    Without an address the local instance is asked for explicitly (``address="local"``): plain
    ``ray.init()`` would join any cluster a ``ray start`` left running on this machine and then
    refuse ``num_cpus``, or run the sweep on someone else's cluster.
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 object_store_memory=object_store_memory)


# ---------------------------------------------------------------------------------------------
# The trainable
# ---------------------------------------------------------------------------------------------
def metric_key(valid_metric: str) -> str:
    """The reported name of the validation metric: ``NDCG@10`` -> ``valid_ndcg@10``."""
    return "valid_" + valid_metric.lower()


def _trial(params: dict, dataset=None, spec: dict | None = None) -> None:
    """One trial: quick_start.run with the sampled settings; reports after every validation."""
    from recbole_disentangle.quick_start import run

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


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------
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


def _check_options(spec: SweepSpec) -> None:
    if spec.search_alg not in SEARCH_ALGS:
        raise ConfigError(f"--search_alg={spec.search_alg} is unknown; use one of {', '.join(SEARCH_ALGS)}.")
    if spec.scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler={spec.scheduler} is unknown; use one of {', '.join(SCHEDULERS)}.")
    if spec.num_samples < 1:
        raise ConfigError(f"--num_samples={spec.num_samples} must be at least 1.")
    if spec.cpus_per_trial <= 0 or spec.gpus_per_trial < 0:
        raise ConfigError("--cpus_per_trial must be > 0 and --gpus_per_trial >= 0 (0.25 packs four trials on a GPU).")


def tpe_searcher(name: str, seed: int):
    """Ray's Optuna or HyperOpt searcher (TPE, as the papers' Hyperopt), whichever is installed."""
    import importlib

    wanted = {"tpe": ["optuna", "hyperopt"], "optuna": ["optuna"], "hyperopt": ["hyperopt"]}[name]
    for package in wanted:
        try:
            importlib.import_module(package)
        except ImportError:
            continue
        if package == "optuna":
            import optuna
            from ray.tune.search.optuna import OptunaSearch

            return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed))
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(random_state_seed=seed)
    raise ConfigError(
        f"--search_alg={name} needs {' or '.join(wanted)}, which is not installed: "
        f"pip install {wanted[0]}" + (" (or pip install hyperopt)" if len(wanted) > 1 else "")
        + ", or use --search_alg=random or --search_alg=grid."
    )


def _prepare(spec: SweepSpec, searched: dict):
    """Validate the base configuration and the space's names; load the data set once."""
    from recbole_disentangle.data.dataset import create_dataset

    base = Config(spec.model, spec.dataset, spec.config_files, spec.settings, strict=spec.strict)
    known = set(base.final_config_dict)
    unknown = [k for k in searched if k.split(".", 1)[0] not in known]
    for key in searched:
        outer = key.split(".", 1)[0]
        if "." in key and outer in known:
            if not isinstance(base[outer], dict):
                raise ConfigError(f"{spec.space_file}: '{key}' names an entry of '{outer}', which is not a mapping.")
            spec.nested_base[outer] = to_plain(base[outer])
    if unknown:
        raise ConfigError(
            f"{spec.space_file}: {', '.join(unknown)} is not a setting of {spec.model}; its hyper-parameters "
            f"are in properties/model/{spec.model}.yaml (RecBole's models: RecBole's model YAML)."
        )
    both = [k for k in searched if k in spec.settings]
    if both:
        raise ConfigError(
            f"{', '.join(both)} is both searched in {spec.space_file} and fixed on the command line; "
            f"drop one of them."
        )
    spec.metric = metric_key(base["valid_metric"])
    spec.mode = "max" if base["valid_metric_bigger"] else "min"
    data_keys = set(base.parameters.get("Dataset", []))
    if spec.reuse_dataset and any(k in data_keys for k in searched):
        spec.reuse_dataset = False  # the space changes the data set itself: each trial loads its own
    return create_dataset(base) if spec.reuse_dataset else None


def _trainable(spec: SweepSpec, dataset):
    from ray import tune

    fn = tune.with_parameters(_trial, dataset=dataset, spec=asdict(spec))
    resources = {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial}
    return tune.with_resources(fn, resources)


class TrialName:
    """``<Model>_<trial id>`` for trial names and folders (Ray's default folder name repeats every
    sampled value and runs past path limits with large spaces). A class, so restore can unpickle it."""

    def __init__(self, model: str):
        self.model = model

    def __call__(self, trial) -> str:
        return f"{self.model}_{trial.trial_id}"


def _tune_config(spec: SweepSpec, seed: int):
    from ray import tune

    if spec.search_alg in ("tpe", "optuna", "hyperopt"):
        search_alg = tpe_searcher(spec.search_alg, seed)
    else:
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # The concurrency cap goes to the generator itself: Ray ignores max_concurrent_trials for it.
        search_alg = BasicVariantGenerator(max_concurrent=spec.max_concurrent_trials or 0, random_state=seed)
    scheduler_wraps = spec.search_alg in ("tpe", "optuna", "hyperopt")  # Tune adds a ConcurrencyLimiter
    scheduler = None
    if spec.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        epochs = Config(spec.model, spec.dataset, spec.config_files, spec.settings)["epochs"]
        # max_t one past the last epoch: ASHA stops a trial that reaches max_t, and the trial's
        # final report (test metrics) comes after its last epoch.
        scheduler = ASHAScheduler(time_attr="epoch", max_t=epochs + 1, grace_period=spec.grace_period,
                                  reduction_factor=spec.reduction_factor)
    return tune.TuneConfig(metric=spec.metric, mode=spec.mode, search_alg=search_alg, scheduler=scheduler,
                           num_samples=spec.num_samples,
                           max_concurrent_trials=spec.max_concurrent_trials if scheduler_wraps else None,
                           time_budget_s=spec.time_budget_s, reuse_actors=True,
                           trial_name_creator=TrialName(spec.model), trial_dirname_creator=TrialName(spec.model))


def _trial_folder(trial) -> Path:
    return Path(getattr(trial, "local_path", None) or trial.logdir)


class TrialEnds(RayCallback):
    """A Ray callback that records the trials ending by the sweep's own course in ENDED_TRIALS, and
    clears what a trial's interrupted attempt left in its folder before it runs again.

    Ray calls ``on_trial_complete`` when a trial finishes or the scheduler, a stopper or the
    search stops it, ``on_trial_error`` when it fails; the trials still running at Ctrl+C are
    stopped in Ray's clean-up, which calls neither (ray 2.6.3). A module-level class, so that
    Tuner.restore can unpickle it.
    """

    def __init__(self, experiment_dir: str):
        self.path = Path(experiment_dir) / ENDED_TRIALS

    def on_trial_start(self, iteration, trials, trial, **info):
        folder = _trial_folder(trial)
        if (folder / "progress.csv").exists():
            # Run again after an interruption, from its first epoch: Ray's loggers would append
            # the new epochs to the partial attempt's rows (epoch 1, 2, 1, 2, ...).
            for name in ("progress.csv", "result.json"):
                (folder / name).unlink(missing_ok=True)
            for events in folder.glob("events.out.tfevents*"):
                events.unlink()
            shutil.rmtree(folder / "log_tensorboard", ignore_errors=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial)

    def _ended(self, trial) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{trial.trial_id}\n")


def ended_trials(experiment_dir) -> set[str] | None:
    """Ids of the trials that ended by the sweep's own course; None for a sweep older than ENDED_TRIALS."""
    path = Path(experiment_dir) / ENDED_TRIALS
    if not path.exists():
        return None
    return set(path.read_text(encoding="utf-8").split())


def _run_config(spec: SweepSpec, api: RayAPI, callbacks=None):
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    path = Path(spec.experiment_dir)
    stop = {"time_total_s": spec.trial_time_limit_s} if spec.trial_time_limit_s else None
    return api.RunConfig(
        name=path.name, storage_path=str(path.parent), stop=stop,
        # A failing trial is recorded with its error and not retried; the sweep goes on.
        failure_config=api.FailureConfig(max_failures=0, fail_fast=False),
        # Named explicitly: newer ray no longer adds the TensorBoard logger by default.
        # TrialEnds first: it clears a re-run trial's old progress files before the loggers open them.
        callbacks=[TrialEnds(spec.experiment_dir), JsonLoggerCallback(), CSVLoggerCallback(),
                   TBXLoggerCallback(), *(callbacks or [])],
        verbose=1,
    )


def run_sweep(
    model: str,
    dataset: str,
    space_file: str | None = None,
    config_files: list[str] | None = None,
    settings: dict | None = None,
    experiment_dir: str | None = None,
    callbacks: list | None = None,
    ray_init: dict | None = None,
    **options,
) -> dict:
    """Run a sweep; returns :func:`summarize`'s dict. ``options``: the fields of :class:`SweepSpec`.

    ``space_file``: a space YAML; None or "" = the one shipped in ``properties/tune/<model>.yaml``.

    ``ray_init``: ``address``, ``num_cpus``, ``num_gpus``, ``object_store_memory`` for :func:`init_ray`.
    """
    if not space_file:
        space_file = find_space(model)
        if space_file is None:
            shipped = sorted(p.stem for p in (properties_dir() / "tune").glob("*.yaml"))
            raise ConfigError(f"No search space is shipped for {model} (there are: {', '.join(shipped)}): "
                              f"write one (see properties/tune/MacridVAE.yaml) and pass --tune=FILE.")
    settings = dict(settings or {})
    config_files = [str(Path(f).resolve()) for f in config_files or []]
    user_keys = sorted(set(settings) | {k for f in config_files for k in load_yaml_file(f)})
    # Trials run in their own folders: their data path is spelled out as the user's.
    data_path = data_path_for_runs_elsewhere(model, dataset, config_files, settings.get("data_path"))
    settings.pop("data_path", None)
    if data_path is not None:
        settings["data_path"] = data_path
    if experiment_dir is None:
        experiment_dir = f"sweeps/{model}-{dataset}-{datetime.now():%Y%m%d-%H%M%S}"
    experiment = Path(experiment_dir).resolve()
    if (experiment / SWEEP_FILE).exists():
        raise ConfigError(
            f"{experiment} already holds a sweep: resume it with --resume_sweep={experiment}, or choose "
            f"another --experiment_dir."
        )
    if options.get("num_samples") is None:  # a grid runs once; random and TPE draw 10 trials
        options["num_samples"] = 1 if options.get("search_alg") == "grid" else 10
    spec = SweepSpec(model=model, dataset=dataset, space_file=str(Path(space_file).resolve()),
                     experiment_dir=str(experiment), config_files=config_files, settings=settings,
                     user_keys=user_keys, **options)
    _check_options(spec)
    searched, fixed = read_space(spec.space_file)
    prepared = _prepare(spec, searched)
    seed = int(Config(model, dataset, config_files, settings)["seed"])
    param_space = ray_param_space(searched, fixed, spec.search_alg)
    spec.expected_trials = spec.num_samples * _grid_size(param_space)
    tune_config = _tune_config(spec, seed)

    init_ray(**(ray_init or {}))
    from ray import tune

    api = RayAPI()
    experiment.mkdir(parents=True, exist_ok=True)
    # The sweep keeps its own copy of the space: the summary of a resumed sweep must not change
    # because the original file was edited in between.
    copy = experiment / "space.yaml"
    copy.write_text(Path(spec.space_file).read_text(encoding="utf-8"), encoding="utf-8")
    spec.space_file = str(copy)
    (experiment / SWEEP_FILE).write_text(json.dumps(asdict(spec), indent=2), encoding="utf-8")
    print(f"Sweep folder: {experiment}; after an interruption resume it with: {resume_command(spec)}",
          file=sys.stderr, flush=True)
    tuner = tune.Tuner(_trainable(spec, prepared), param_space=param_space, tune_config=tune_config,
                       run_config=_run_config(spec, api, callbacks))
    return summarize(tuner.fit(), spec)


def resume_sweep(experiment_dir: str, ray_init: dict | None = None, restart_errored: bool = False,
                 **summary_options) -> dict:
    """Resume an interrupted sweep: finished trials are kept, unfinished ones run (again).

    ``summary_options``: ``best_from_unfinished``, ``best_keeps_run_settings`` given now (True)
    apply on top of those the sweep was started with.
    """
    experiment = Path(experiment_dir).resolve()
    if not (experiment / SWEEP_FILE).is_file():
        raise ConfigError(
            f"{experiment} holds no sweep of this package ({SWEEP_FILE} is missing): pass the folder a "
            f"sweep printed as its experiment directory."
        )
    spec = SweepSpec(**json.loads((experiment / SWEEP_FILE).read_text(encoding="utf-8")))
    for name, value in summary_options.items():
        if name not in ("best_from_unfinished", "best_keeps_run_settings"):
            raise TypeError(f"resume_sweep() got an unexpected option {name!r}")
        setattr(spec, name, bool(value) or getattr(spec, name))
    searched, _ = read_space(spec.space_file) if Path(spec.space_file).is_file() else ({}, {})
    prepared = _prepare(spec, searched)
    init_ray(**(ray_init or {}))
    from ray import tune

    tuner = tune.Tuner.restore(str(experiment), trainable=_trainable(spec, prepared), resume_unfinished=True,
                               resume_errored=False, restart_errored=restart_errored)
    return summarize(tuner.fit(), spec)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
def _error_line(result) -> str:
    """The last line of a failed trial's error (``ValueError: Training loss is nan``, say)."""
    error = result.error
    text = str(error) if error is not None else ""
    cause = getattr(error, "cause", None)
    if cause is not None:
        text = f"{type(cause).__name__}: {cause}"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


def _grid_size(param_space: dict) -> int:
    size = 1
    for value in param_space.values():
        if isinstance(value, dict) and set(value) == {"grid_search"}:
            size *= len(value["grid_search"])
        elif isinstance(value, dict):
            size *= _grid_size(value)
    return size


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


def resume_command(spec: SweepSpec) -> str:
    return f"python run_recbole_dis.py --resume_sweep={spec.experiment_dir}"


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
