"""A sweep: the searcher, the scheduler and the Tuner, started or resumed."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from recbole_disentangle.config import Config, data_path_for_runs_elsewhere, load_yaml_file, properties_dir, to_plain
from recbole_disentangle.data.dataset import create_dataset
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.tuning.ray_compat import RayAPI, RayCallback, init_ray
from recbole_disentangle.tuning.space import _grid_size, find_space, ray_param_space, read_space
from recbole_disentangle.tuning.spec import ENDED_TRIALS, SWEEP_FILE, SweepSpec, check_options, resume_command
from recbole_disentangle.tuning.summary import summarize
from recbole_disentangle.tuning.trial import _trial, metric_key


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


def _base_config(spec: SweepSpec) -> Config:
    """The sweep's settings without a trial's values: the one Config the driver builds."""
    return Config(spec.model, spec.dataset, spec.config_files, spec.settings, strict=spec.strict)


def _prepare(spec: SweepSpec, searched: dict, base: Config):
    """Validate the base configuration and the space's names; load the data set once."""
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


def _tune_config(spec: SweepSpec, seed: int, epochs: int):
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
    base = Config(model, dataset, config_files, dict(settings), strict=bool(options.get("strict", False)))
    # Trials run in their own folders: their data path is spelled out as the user's. (The driver
    # runs here, so the base Config's data path, as the user gave it, names the same folder.)
    data_path = data_path_for_runs_elsewhere(model, dataset, config_files, settings.get("data_path"), config=base)
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
    check_options(spec)
    searched, fixed = read_space(spec.space_file)
    prepared = _prepare(spec, searched, base)
    param_space = ray_param_space(searched, fixed, spec.search_alg)
    spec.expected_trials = spec.num_samples * _grid_size(param_space)
    tune_config = _tune_config(spec, int(base["seed"]), base["epochs"])

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
    prepared = _prepare(spec, searched, _base_config(spec))
    init_ray(**(ray_init or {}))
    from ray import tune

    tuner = tune.Tuner.restore(str(experiment), trainable=_trainable(spec, prepared), resume_unfinished=True,
                               resume_errored=False, restart_errored=restart_errored)
    return summarize(tuner.fit(), spec)
