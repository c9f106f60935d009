"""RecBole's trainers with safe checkpoints.

Whatever trainer RecBole picks for a model (``Trainer``, ``RecVAETrainer``, ``NCLTrainer`` ...)
is subclassed with :class:`SafeCheckpointMixin`, which replaces the three places RecBole
pickles or unpickles: saving the best model, loading it for evaluation, and resuming; it also
keeps a last-epoch checkpoint (``X.last.pth`` beside the best ``X.pth``) that resuming reads.
"""

from __future__ import annotations

import inspect
import random
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from recbole.trainer.trainer import Trainer

from recbole_disentangle import registry
from recbole_disentangle.checkpoint import load_checkpoint, save_checkpoint
from recbole_disentangle.config import load_yaml_file, model_defaults, plain_config, to_plain
from recbole_disentangle.epoch import train_epoch_on_device
from recbole_disentangle.errors import CheckpointError
from recbole_disentangle.evaluation.protocols import protocol_of
from recbole_disentangle.model.base import evaluation_pass
from recbole_disentangle.optim import RowSparseAdam


def _plain_number(value):
    return float(value) if isinstance(value, (np.floating, float, int)) else value


class SafeCheckpointMixin:
    """Checkpoints as tensors + plain config, read back with ``weights_only=True``.

    Also keeps ``train_seconds``, the time spent in training epochs (evaluation excluded), so
    benchmarks report seconds per epoch measured the same way for every model.
    """

    train_seconds = 0.0
    last_per_user: dict | None = None  # per-user metrics of the last evaluation, where the protocol keeps them
    # Called as epoch_listener(trainer, epoch_idx, loss, valid_score or None) once an epoch is
    # finished (validated and early stopping updated, when it validates): the console's epoch line.
    epoch_listener = None

    def __init__(self, config, model):
        super().__init__(config, model)
        # RecBole names checkpoints <Model>-<time to the second>.pth: two runs started in the
        # same second (parallel sweeps, benchmarks) would overwrite each other's file.
        stem = Path(self.saved_model_file).stem
        self.saved_model_file = str(Path(self.checkpoint_dir) / f"{stem}-{uuid.uuid4().hex[:6]}.pth")

    def _build_optimizer(self, **kwargs):
        """RecBole's optimizer, except for a model with ``row_sparse_parameters`` (MacridVAE with
        sampled softmax): RecBole's Adam for its other parameters and a row-wise Adam for those
        tables (optim.RowSparseAdam), so a step updates only the rows it touched."""
        tables = getattr(self.model, "row_sparse_parameters", None)
        tables = tables() if callable(tables) and "params" not in kwargs else []
        if not tables:
            return super()._build_optimizer(**kwargs)
        table_ids = {id(table) for table in tables}
        dense = [p for p in self.model.parameters() if id(p) not in table_ids]
        weight_decay = kwargs.get("weight_decay", self.weight_decay)
        return RowSparseAdam(super()._build_optimizer(params=dense, **kwargs), tables,
                             lr=kwargs.get("learning_rate", self.learning_rate), weight_decay=weight_decay)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        started = time.perf_counter()
        try:
            if self._replaces_recbole_epoch():
                loss = train_epoch_on_device(self, train_data, epoch_idx, loss_func, show_progress)
            else:
                loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
            # A model may change itself between epochs (MacridVAE's adaptive K merges concepts);
            # inside the timed block, so seconds per epoch include what that costs.
            on_epoch_end = getattr(self.model, "on_epoch_end", None)
            if callable(on_epoch_end):
                on_epoch_end()
        finally:
            self.train_seconds += time.perf_counter() - started
        fitting = getattr(self, "_fitting", None)
        if fitting and fitting["saved"] and not self._validates_after(epoch_idx, fitting["valid_data"]):
            # No validation follows this epoch: it is finished now (else after_validation saves it).
            self._save_last(epoch_idx, fitting["train_data"])
        if fitting and self.epoch_listener is not None and not self._validates_after(epoch_idx, fitting["valid_data"]):
            self.epoch_listener(self, epoch_idx, loss, None)
        return loss

    def _replaces_recbole_epoch(self) -> bool:
        """Whether the epoch RecBole would run is ``Trainer._train_epoch`` itself, single-process and
        without the gradient scaler: the loop ``epoch.train_epoch_on_device`` reproduces without
        waiting for the device every step."""
        inherited = getattr(super()._train_epoch, "__func__", None)
        return inherited is Trainer._train_epoch and bool(self.config["single_spec"]) and not self.enable_scaler

    # ---- resuming where training stopped ------------------------------------------------
    def _validates_after(self, epoch_idx, valid_data) -> bool:
        """Whether RecBole's ``fit`` validates after ``epoch_idx`` (its own condition)."""
        return bool(valid_data) and self.eval_step > 0 and (epoch_idx + 1) % self.eval_step == 0

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        """RecBole's ``fit``, keeping a last-epoch checkpoint beside the best one and, after
        :meth:`resume_checkpoint`, restoring the random state of the epoch it resumes after."""
        if "callback_fn" not in inspect.signature(super().fit).parameters:  # RecBole's tree-model trainers
            return super().fit(train_data, valid_data, verbose, saved, show_progress)
        rng = getattr(self, "_resumed_rng", None)
        if rng is not None:
            restore_rng_state(rng, train_data)
            self._resumed_rng = None

        def after_validation(epoch_idx, valid_score):
            # RecBole calls this after early stopping has updated its counters (and saved the
            # best model): the epoch is finished.
            if saved:
                self._save_last(epoch_idx, train_data)
            if self.epoch_listener is not None:
                self.epoch_listener(self, epoch_idx, self.train_loss_dict[epoch_idx], valid_score)
            if callback_fn is not None:
                callback_fn(epoch_idx, valid_score)

        if self.start_epoch >= self.epochs and Path(self.saved_model_file).is_file():
            # Nothing left to train (the resumed run had finished or stopped early): RecBole would
            # save the model as it stands, the last epoch's weights, over the best checkpoint.
            saved = False
        self._fitting = {"saved": saved, "train_data": train_data, "valid_data": valid_data}
        try:
            return super().fit(train_data, valid_data, verbose, saved, show_progress, after_validation)
        finally:
            self._fitting = None

    @property
    def last_model_file(self) -> str:
        return str(last_checkpoint_path(self.saved_model_file))

    def _save_last(self, epoch: int, train_data) -> None:
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        scheduler = getattr(self, "scheduler", None)
        save_checkpoint(
            self.last_model_file,
            config=plain_config(self.config),
            overrides=to_plain(self.config.overrides),
            epoch=epoch,
            cur_step=self.cur_step,
            best_valid_score=_plain_number(self.best_valid_score),
            best_valid_result=None if self.best_valid_result is None else
            {str(k): _plain_number(v) for k, v in dict(self.best_valid_result).items()},
            # RecBole's early_stopping stops once cur_step exceeds stopping_step.
            stopped=bool(self._validates_after(epoch, (self._fitting or {}).get("valid_data"))
                         and self.cur_step > self.stopping_step),
            train_loss_dict={**getattr(self, "_earlier_losses", {}),
                             **{int(k): _plain_number(v) for k, v in self.train_loss_dict.items()}},
            state_dict=self.model.state_dict(),
            other_parameter=self.model.other_parameter(),
            optimizer=self.optimizer.state_dict(),
            scheduler=scheduler.state_dict() if scheduler is not None else None,
            rng=rng_state(train_data),
            best_model_file=Path(self.saved_model_file).name,
        )

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        save_checkpoint(
            saved_model_file,
            config=plain_config(self.config),
            overrides=to_plain(self.config.overrides),
            epoch=epoch,
            cur_step=self.cur_step,
            best_valid_score=_plain_number(self.best_valid_score),
            state_dict=self.model.state_dict(),
            other_parameter=self.model.other_parameter(),
            optimizer=self.optimizer.state_dict(),
        )
        if verbose:
            self.logger.info(f"Saving current: {saved_model_file}")

    def resume_checkpoint(self, resume_file):
        """Continue training after the last finished epoch of the run that wrote ``resume_file``.

        ``resume_file`` is the best checkpoint (``X.pth``) or the last-epoch one beside it
        (``X.last.pth``); the last one restores the optimizer, scheduler, early-stopping counters
        and random state, so the resumed run trains as the uninterrupted one would have. A best
        checkpoint without a last one (written before this existed) resumes after its epoch.
        """
        resume_file = Path(resume_file)
        best_file = best_checkpoint_path(resume_file)
        last_file = last_checkpoint_path(resume_file)
        if last_file.is_file():
            checkpoint = load_checkpoint(last_file, map_location=self.device)
            self.logger.info(f"Resuming after the last finished epoch, {checkpoint['epoch']}, from {last_file}")
        else:
            checkpoint = load_checkpoint(resume_file, map_location=self.device)
            self.logger.warning(
                f"No last-epoch checkpoint {last_file} beside {resume_file}: resuming after its epoch "
                f"{checkpoint['epoch']}, without the random state of that moment."
            )
        resume_file = str(resume_file)
        self.saved_model_file = str(best_file)
        self.start_epoch = self.epochs if checkpoint.get("stopped") else checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if checkpoint.get("best_valid_result") is not None:
            self.best_valid_result = checkpoint["best_valid_result"]
        self._resumed_rng = checkpoint.get("rng")
        # The result of this run counts the epochs it trains itself (train_loss_dict); the
        # last-epoch checkpoint keeps the whole curve.
        self._earlier_losses = {int(k): v for k, v in (checkpoint.get("train_loss_dict") or {}).items()}
        if checkpoint["config"]["model"].lower() != self.config["model"].lower():
            self.logger.warning(
                f"The checkpoint was trained as {checkpoint['config']['model']}, this run is "
                f"{self.config['model']}: loading its weights may fail."
            )
        conflict = shape_conflict(checkpoint, self.model, self.config, resume_file)
        if conflict:
            raise CheckpointError(conflict)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        try:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError) as err:  # another optimizer's state (e.g. full vs sampled softmax)
            raise CheckpointError(f"Cannot resume from {resume_file}: its optimizer state does not fit this run's "
                                  f"optimizer ({err}). Resume with the checkpoint's settings.") from None
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None and checkpoint.get("scheduler") is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def load_best_model(self, model_file=None) -> None:
        checkpoint_file = model_file or self.saved_model_file
        checkpoint = load_checkpoint(checkpoint_file, map_location=self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        if load_best_model:
            self.load_best_model(model_file)
        # One pass: a model computes its item side once for all batches (dropped when it ends).
        with evaluation_pass(self.model):
            evaluation = protocol_of(self.config).evaluate(self.model, eval_data, self.device)
            if evaluation is not None:  # the protocol's own metrics (the paper protocol's)
                self.last_per_user = evaluation.per_user
                return evaluation.result
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)


LAST_SUFFIX = ".last.pth"


def last_checkpoint_path(model_file) -> Path:
    """``saved/X.pth`` -> ``saved/X.last.pth``, the last finished epoch's state beside the best model."""
    path = Path(model_file)
    return path if path.name.endswith(LAST_SUFFIX) else path.with_name(path.stem + LAST_SUFFIX)


def best_checkpoint_path(model_file) -> Path:
    path = Path(model_file)
    return path.with_name(path.name[: -len(LAST_SUFFIX)] + ".pth") if path.name.endswith(LAST_SUFFIX) else path


def rng_state(train_data=None) -> dict:
    """Every random state training draws from, as tensors and plain values (loads with weights_only)."""
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [str(numpy_state[0]), torch.from_numpy(numpy_state[1].astype(np.int64)), int(numpy_state[2]),
                  int(numpy_state[3]), float(numpy_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }
    generator = getattr(train_data, "generator", None)  # RecBole's loaders shuffle with their own generator
    if isinstance(generator, torch.Generator):
        state["train_loader"] = generator.get_state()
    return state


def restore_rng_state(state: dict, train_data=None) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = getattr(train_data, "generator", None)
    if isinstance(generator, torch.Generator) and state.get("train_loader") is not None:
        generator.set_state(state["train_loader"])


# Settings besides a model's own hyper-parameters that decide tensor shapes: the data set and
# its filters fix the numbers of users and items.
DATA_SHAPE_KEYS = ("dataset", "data_path", "load_col", "user_inter_num_interval", "item_inter_num_interval",
                   "val_interval", "eval_protocol", "paper_rating_threshold", "paper_min_user_interactions",
                   "paper_min_item_interactions", "embedding_size")


def _model_yaml_keys(model_name: str) -> list[str]:
    """The hyper-parameters of ``model_name``: the keys of its YAML (this package's or RecBole's)."""
    import recbole

    try:
        if registry.is_plugin_model(model_name):  # with its parents' (SEM-MacridVAE: MacridVAE's)
            return list(model_defaults(model_name))
        file = Path(recbole.__file__).parent / "properties" / "model" / f"{registry.recbole_base_name(model_name)}.yaml"
        return list(load_yaml_file(file)) if file.is_file() else []
    except Exception:  # an unreadable YAML only costs the hint, not the error
        return []


def shape_conflict(checkpoint: dict, model, config, resume_file) -> str | None:
    """Why ``checkpoint``'s weights do not fit ``model`` (None when every tensor fits), naming the
    settings that differ between the checkpoint's run and this one."""
    saved = checkpoint["state_dict"]
    current = model.state_dict()
    differing = [f"{name}: checkpoint {tuple(saved[name].shape)}, this run {tuple(current[name].shape)}"
                 for name in saved if name in current and saved[name].shape != current[name].shape]
    missing = [name for name in current if name not in saved]
    unexpected = [name for name in saved if name not in current]
    if not (differing or missing or unexpected):
        return None
    old, new = checkpoint["config"], plain_config(config)
    from recbole.utils.argument_list import evaluation_arguments, general_arguments, training_arguments

    run_keys = {*general_arguments, *training_arguments, *evaluation_arguments}  # epochs, learning_rate: no shapes
    keys = dict.fromkeys([*(k for k in _model_yaml_keys(config["model"]) if k not in run_keys), *DATA_SHAPE_KEYS])
    changed = [f"{key} = {old.get(key)!r} in the checkpoint, {new.get(key)!r} now ({config.source_of(key)})"
               for key in keys if old.get(key) != new.get(key) and key in new]
    tensors = "; ".join(differing[:3] + [f"missing {n}" for n in missing[:2]] + [f"unexpected {n}" for n in unexpected[:2]])
    cause = ("The settings that differ: " + "; ".join(changed) + ".") if changed else \
        "No model or data setting differs, so the model's code or the data files changed since."
    return (f"Cannot resume from {resume_file}: its weights do not fit this run's {config['model']} ({tensors}). "
            f"{cause} Resume with the checkpoint's settings, or train from scratch without --resume.")


def get_trainer(config, model):
    """An instance of RecBole's trainer for ``config['model']`` with safe checkpoints."""
    base = registry.get_trainer_class(config["MODEL_TYPE"], config["model"])
    trainer_class = type(f"Safe{base.__name__}", (SafeCheckpointMixin, base), {})
    return trainer_class(config, model)
