"""RecBole's trainers with safe checkpoints.

Whatever trainer RecBole picks for a model (``Trainer``, ``RecVAETrainer``, ``NCLTrainer`` ...)
is subclassed with :class:`SafeCheckpointMixin`, which replaces the three places RecBole
pickles or unpickles: saving the best model, loading it for evaluation, and resuming.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np

from recbole_disentangle import registry
from recbole_disentangle.checkpoint import load_checkpoint, save_checkpoint
from recbole_disentangle.config import plain_config, to_plain
from recbole_disentangle.data.protocol import HeldOutUsers, evaluate_held_out


def _plain_number(value):
    return float(value) if isinstance(value, (np.floating, float, int)) else value


class SafeCheckpointMixin:
    """Checkpoints as tensors + plain config, read back with ``weights_only=True``.

    Also keeps ``train_seconds``, the time spent in training epochs (evaluation excluded), so
    benchmarks report seconds per epoch measured the same way for every model.
    """

    train_seconds = 0.0

    def __init__(self, config, model):
        super().__init__(config, model)
        # RecBole names checkpoints <Model>-<time to the second>.pth: two runs started in the
        # same second (parallel sweeps, benchmarks) would overwrite each other's file.
        stem = Path(self.saved_model_file).stem
        self.saved_model_file = str(Path(self.checkpoint_dir) / f"{stem}-{uuid.uuid4().hex[:6]}.pth")

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        started = time.perf_counter()
        try:
            loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
            # A model may change itself between epochs (MacridVAE's adaptive K merges concepts);
            # inside the timed block, so seconds per epoch include what that costs.
            on_epoch_end = getattr(self.model, "on_epoch_end", None)
            if callable(on_epoch_end):
                on_epoch_end()
            return loss
        finally:
            self.train_seconds += time.perf_counter() - started

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
        resume_file = str(resume_file)
        checkpoint = load_checkpoint(resume_file, map_location=self.device)
        self.saved_model_file = resume_file
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if checkpoint["config"]["model"].lower() != self.config["model"].lower():
            self.logger.warning(
                f"The checkpoint was trained as {checkpoint['config']['model']}, this run is "
                f"{self.config['model']}: loading its weights may fail."
            )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
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
        if isinstance(eval_data, HeldOutUsers):  # the paper protocol: its own metrics
            return evaluate_held_out(self.model, eval_data, self.device)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)


def get_trainer(config, model):
    """An instance of RecBole's trainer for ``config['model']`` with safe checkpoints."""
    base = registry.get_trainer_class(config["MODEL_TYPE"], config["model"])
    trainer_class = type(f"Safe{base.__name__}", (SafeCheckpointMixin, base), {})
    return trainer_class(config, model)
