"""The one place that wires Config -> data -> model -> trainer.

RecBole's own ``recbole.quick_start`` imports ray at module level; this module does the same
pipeline without it, so training and evaluation run where ray is absent (Python 3.12, say).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path

import torch
from recbole.utils import init_logger, init_seed, set_color

from recbole_disentangle import compat, figures, registry
from recbole_disentangle.checkpoint import load_checkpoint
from recbole_disentangle.config import Config
from recbole_disentangle.console import Console
from recbole_disentangle.data.dataset import create_dataset, reuse_dataset, trains_on_user_batches
from recbole_disentangle.evaluation.protocols import protocol_of
from recbole_disentangle.registry import get_model
from recbole_disentangle.trainer import get_trainer


@dataclass
class RunLog:
    """Where a run logs: its log file, and RecBole's console handler (which a Console quietens)."""

    log_file: str | None
    console_handler: logging.Handler | None


# The handlers the previous run of this process installed on the root logger: the next run
# replaces them (RecBole's init_logger calls logging.basicConfig, which does nothing once the root
# logger has handlers, so a second run in one process would otherwise log into the first one's file).
_run_handlers: list[logging.Handler] = []


def init_run_logger(config) -> RunLog:
    """RecBole's ``init_logger`` with a run name no other run shares, its own log file per run.

    RecBole names the log file <model>-<dataset>-<time to the second>-<hash of the settings>.log
    and the TensorBoard folder after it: two runs of the same settings started in the same second
    (parallel sweeps, benchmarks) would write into one file and one folder. A random suffix on
    the time keeps RecBole's naming otherwise. Handlers that others put on the root logger (pytest's,
    an application's) stay.
    """
    import recbole.utils.logger as recbole_logger

    installed: dict = {}
    local_time, basic_config = recbole_logger.get_local_time, logging.basicConfig
    recbole_logger.get_local_time = lambda: f"{local_time()}-{uuid.uuid4().hex[:6]}"
    logging.basicConfig = lambda **kwargs: installed.update(kwargs)  # see what init_logger installs
    try:
        init_logger(config)
    finally:
        recbole_logger.get_local_time, logging.basicConfig = local_time, basic_config
    root = logging.getLogger()
    for handler in _run_handlers:
        root.removeHandler(handler)
        handler.close()
    _run_handlers[:] = installed.get("handlers", [])
    for handler in _run_handlers:
        root.addHandler(handler)
    root.setLevel(installed.get("level", logging.INFO))
    log_file = next((h.baseFilename for h in _run_handlers if isinstance(h, logging.FileHandler)), None)
    console = next((h for h in _run_handlers if not isinstance(h, logging.FileHandler)), None)
    return RunLog(log_file, console)


def build(config: Config, dataset=None):
    """Data set, dataloaders and model for ``config`` (seeded as RecBole seeds them).

    ``dataset``: an already loaded RecBole Dataset of the same data set and filters (sweeps and
    benchmarks load it once and reuse it across runs instead of re-reading the atomic files).
    """
    init_seed(config["seed"], config["reproducibility"])
    if dataset is None:
        dataset = create_dataset(config)
    else:
        dataset = reuse_dataset(dataset, config)
    protocol = protocol_of(config)
    train_data, valid_data, test_data, model_dataset = protocol.split(config, dataset)
    protocol.check(config, dataset)
    resolve_anneal_steps(config, train_data)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, model_dataset).to(config["device"])
    return dataset, train_data, valid_data, test_data, model


def resolve_anneal_steps(config, train_data) -> None:
    """``anneal_epochs: T`` for RecBole's annealed VAEs (MultiVAE, RecBoleMacridVAE): the KL ramp spans T epochs.

    RecBole's MultiVAE raises its KL weight as min(anneal_cap, step / total_anneal_steps) with
    total_anneal_steps = 200000 by default; with a few steps per epoch (503 training users of
    ml-latest-small in batches of 100 make 6) the weight stays near 0 for the whole run, so the
    model trained is neither MultVAE's beta-VAE nor its cap's. MultVAE's paper anneals to the cap
    within the run: ``anneal_epochs`` is the length of the ramp step / total_anneal_steps from 0
    to 1 in epochs (the weight, capped at anneal_cap, gets there after anneal_cap * T epochs),
    converted here into RecBole's steps once the number of batches per epoch is known. Our own models read ``anneal_epochs``
    themselves; unset (the default) leaves RecBole's ``total_anneal_steps`` as it is.
    """
    if registry.is_plugin_model(config["model"]) or config["anneal_epochs"] is None:
        return
    if config["total_anneal_steps"] is None:
        return  # the model has no annealed KL term
    config["total_anneal_steps"] = int(config["anneal_epochs"]) * len(train_data)
    getLogger().info(f"anneal_epochs = {config['anneal_epochs']}: total_anneal_steps = {config['total_anneal_steps']}")


def run(
    model: str | None = None,
    dataset: str | None = None,
    config_file_list: list[str] | None = None,
    config_dict: dict | None = None,
    cmd_args: list[str] | None = None,
    saved: bool = True,
    resume_file: str | None = None,
    prepared_dataset=None,
    callback_fn=None,
    strict: bool = False,
    console: Console | None = None,
) -> dict:
    """Train ``model`` on ``dataset`` and evaluate it on the test split.

    Returns a dict with the best validation score and result, the test result, the checkpoint
    file, seconds per training epoch, and ``model_report`` (what the model's ``report()`` says
    about itself, e.g. AD-DRL's attribute accuracy; empty for models without one). ``prepared_dataset``: a loaded data set to reuse, see :func:`build`.
    ``callback_fn(epoch_idx, valid_score)``: called by RecBole's ``fit`` after every validation
    (a Ray Tune trial reports there, so a scheduler can stop it early).
    ``strict``: a setting no component reads is an error, not a warning.
    ``console``: what to print for a person (:class:`~recbole_disentangle.console.Console`); without
    one, RecBole's log goes to the console as RecBole prints it. The log file has everything either way.
    The result also names the log file, the TensorBoard folder and the learning-curve PNG written
    beside the log (when matplotlib, the ``analysis`` extra, is installed).
    """
    compat.filter_known_warnings()
    config = Config(model, dataset, config_file_list, config_dict, cmd_args, strict=strict)
    run_log = start_run_log(config, console)
    dataset_obj, train_data, valid_data, test_data, model_obj = build(config, prepared_dataset)
    log_data_and_model(config, console, dataset_obj, train_data, valid_data, test_data, model_obj)
    trainer = prepare_trainer(config, model_obj, resume_file, console)
    training = fit_model(trainer, config, train_data, valid_data, saved, callback_fn)
    test_result, test_per_user = evaluate_best_model(trainer, config, test_data, saved)
    getLogger().info(set_color("best valid ", "yellow") + f": {training.best_valid_result}")
    getLogger().info(set_color("test result", "yellow") + f": {test_result}")
    model_report = report_of(model_obj)
    return run_result(config, trainer, training, test_result, test_per_user, model_report, run_log, saved)


@dataclass
class Training:
    """What ``fit_model`` leaves besides the trained model: the best validation score and result, the
    learning curve and how long fitting took."""

    best_valid_score: float
    best_valid_result: dict | None
    valid_scores: list[tuple[int, float]]  # (epoch, validation metric): the learning curve
    fit_seconds: float


def start_run_log(config: Config, console: Console | None) -> RunLog:
    """The run's log file; with a console, the console takes RecBole's console output over."""
    run_log = init_run_logger(config)
    if console is not None:
        console.take_over(run_log.console_handler)
        console.start(config, run_log.log_file)
    getLogger().info(config)
    return run_log


def log_data_and_model(config, console, dataset, train_data, valid_data, test_data, model) -> None:
    """The data set and the model in the log file, and the one line on the data for a person."""
    logger = getLogger()
    logger.info(dataset)
    logger.info(model)
    if console is not None:
        console.data(config, dataset, train_data, valid_data, test_data, model)


def prepare_trainer(config, model, resume_file: str | None, console: Console | None):
    """The model's trainer, resumed from ``resume_file`` if given, reporting epochs to ``console``."""
    trainer = get_trainer(config, model)
    if resume_file:
        trainer.resume_checkpoint(resume_file)
    if console is not None:
        console.start_training(trainer, config)
        trainer.epoch_listener = console.epoch_done
    return trainer


def fit_model(trainer, config, train_data, valid_data, saved: bool, callback_fn=None) -> Training:
    """RecBole's ``fit``, recording every validation score for the learning curve before
    ``callback_fn`` (a Ray Tune trial's report) sees it."""
    started = time.perf_counter()
    valid_scores: list[tuple[int, float]] = []

    def after_validation(epoch_idx, valid_score):
        valid_scores.append((int(epoch_idx), float(valid_score)))
        if callback_fn is not None:
            callback_fn(epoch_idx, valid_score)

    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"], callback_fn=after_validation
    )
    return Training(best_valid_score, best_valid_result, valid_scores, time.perf_counter() - started)


def evaluate_best_model(trainer, config, test_data, saved: bool) -> tuple[dict, dict | None]:
    """The test result of the best model (the last one without ``saved``), and the per-user metrics."""
    trainer.last_per_user = None
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    # Protocols that keep them (the paper protocol): every test user's metrics (internal user ids,
    # the same for every model on the same data set and seed), so that runs can be compared user by user.
    test_per_user = trainer.last_per_user if protocol_of(config).keeps_per_user else None
    return test_result, test_per_user


def report_of(model) -> dict:
    """Numbers a model reports about itself after training (AD-DRL: attribute accuracy of the
    best model, which ``evaluate_best_model`` has just loaded into ``model``); empty for models without any."""
    model_report = model.report() if callable(getattr(model, "report", None)) else {}
    if model_report:
        getLogger().info(set_color("model report", "yellow") + f": {model_report}")
    return model_report


def run_result(config, trainer, training: Training, test_result, test_per_user, model_report: dict,
               run_log: RunLog, saved: bool) -> dict:
    """What :func:`run` returns (see there); draws the learning curve beside the log file."""
    epochs_run = max(len(trainer.train_loss_dict), 1)
    train_losses = [float(trainer.train_loss_dict[e]) for e in sorted(trainer.train_loss_dict)]
    tensorboard = getattr(trainer, "tensorboard", None)
    return {
        "model": config["model"],
        "seed": config["seed"],
        "dataset": config["dataset"],
        "eval_protocol": config["eval_protocol"],
        # Under the paper protocol, models that are not trained on user batches (they need a
        # user id) also train on the held-out users' fold-in part: results must say so.
        "trained_on_user_batches": trains_on_user_batches(config),
        "best_valid_score": float(training.best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(training.best_valid_result or {}),
        "test_result": dict(test_result or {}),
        "model_file": trainer.saved_model_file if saved else None,
        "last_model_file": trainer.last_model_file if saved else None,  # resume from here: --resume
        "epochs": len(trainer.train_loss_dict),
        "train_losses": train_losses,
        "valid_metric": config["valid_metric"],
        "valid_scores": training.valid_scores,
        "seconds_per_epoch": trainer.train_seconds / epochs_run,
        "fit_seconds": training.fit_seconds,
        "model_report": model_report,
        "test_per_user": test_per_user,
        "log_file": run_log.log_file,
        "tensorboard_dir": getattr(tensorboard, "log_dir", None),
        "learning_curve": draw_learning_curve(run_log.log_file, config, sorted(trainer.train_loss_dict.items()),
                                              training.valid_scores),
    }


def draw_learning_curve(log_file: str | None, config, train_losses: list[tuple], valid_scores: list[tuple]) -> str | None:
    """The learning-curve PNG beside the log file (``X.log`` -> ``X.curve.png``); None without
    matplotlib (the ``analysis`` extra) or a log file."""
    if log_file is None or not train_losses or not figures.matplotlib_available():
        if log_file is not None and not figures.matplotlib_available():
            getLogger().info("No learning curve drawn: matplotlib is not installed (pip install recbole-disentangle[analysis]).")
        return None
    path = Path(log_file).with_suffix(".curve.png")
    figures.learning_curve(path, [(int(e), float(loss)) for e, loss in train_losses], valid_scores,
                           str(config["valid_metric"]).lower(), bigger=bool(config["valid_metric_bigger"]),
                           title=f"{config['model']} on {config['dataset']}")
    return str(path)


def load_data_and_model(model_file: str, map_location=None):
    """Rebuild config, data and model from a checkpoint written by this package.

    The checkpoint holds the user's own settings; the data set is rebuilt from its atomic files
    (same seed, same split) and the weights are loaded with ``weights_only=True``.

    Returns:
        (config, model, dataset, train_data, valid_data, test_data)
    """
    checkpoint = load_checkpoint(model_file, map_location="cpu")
    saved = checkpoint["config"]
    config = Config(saved["model"], saved["dataset"], config_dict=checkpoint["overrides"])
    if map_location is not None:
        config["device"] = torch.device(map_location)
    init_run_logger(config)
    dataset, train_data, valid_data, test_data, model = build(config)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
