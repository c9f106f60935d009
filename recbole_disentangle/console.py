"""What a run prints for a person to read.

RecBole logs everything it knows to the console (about 130 lines of settings, a progress bar per
epoch, results as an ``OrderedDict``). The log file keeps all of that; the console gets, instead:

- the model, data set and protocol, and the settings that differ from the defaults with where
  each came from (``Config.changed_settings``);
- one line on the data (users, items, interactions, split);
- one line per epoch: epoch i/N, training loss, validation metric, best so far, early-stopping
  patience left (or the early stop), elapsed and (at most) remaining time;
- an aligned table of the test metrics and the paths of what the run wrote.

``verbosity``: ``normal`` (the above; RecBole's own log lines only from WARNING up), ``quiet``
(the metrics table only), ``verbose`` (the above and RecBole's full log, settings included).
"""

from __future__ import annotations

import logging
import os
import sys
import time

import yaml

from recbole_disentangle.config import to_plain
from recbole_disentangle.evaluation.protocols import protocol_of

VERBOSITIES = ("quiet", "normal", "verbose")


def aligned(rows: list[list[str]], indent: int = 0, gap: int = 2) -> list[str]:
    """``rows`` of cells as text lines with every column padded to its widest cell."""
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    return [(" " * indent + (" " * gap).join(cell.ljust(w) for cell, w in zip(row, widths))).rstrip() for row in rows]


def format_duration(seconds: float) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_loss(loss) -> str:
    """A training loss (RecBole keeps a tuple for models with several terms: their sum is trained)."""
    if isinstance(loss, (tuple, list)):
        loss = sum(float(part) for part in loss)
    loss = float(loss)
    # Five significant digits with a fixed number of decimals, so that epoch lines stay aligned.
    decimals = max(1, 5 - len(str(int(abs(loss))))) if abs(loss) < 1e15 else 0
    return f"{loss:.{decimals}f}"


def format_epoch_line(epoch: int, epochs: int, loss, metric: str | None = None, score: float | None = None,
                      best: float | None = None, best_epoch: int | None = None, patience_left: int | None = None,
                      elapsed: float = 0.0, remaining: float | None = None) -> str:
    """One epoch as a person reads it; ``epoch`` counts from 1. Without ``score`` the epoch was not validated.

    The remaining time is an upper bound: the epochs left in the budget at the mean epoch time so
    far; early stopping may end the run sooner.
    """
    width = len(str(epochs))
    parts = [f"epoch {epoch:>{width}}/{epochs}", f"loss {format_loss(loss)}"]
    if score is None:
        parts.append("not validated")
    else:
        parts.append(f"valid {metric} {score:.4f}")
        if best is not None:
            parts.append(f"best {best:.4f}" + (f" (epoch {best_epoch})" if best_epoch is not None else ""))
        if patience_left is not None:
            parts.append(f"patience {patience_left} left" if patience_left >= 0 else "early stop")
    timing = f"{format_duration(elapsed)} elapsed"
    if remaining is not None:
        timing += f", ≤ {format_duration(remaining)} left"
    parts.append(timing)
    return "  ".join(parts)


def format_value(value, limit: int = 70) -> str:
    """A setting's value as the user would write it in YAML, cut at ``limit`` characters."""
    text = yaml.safe_dump(to_plain(value), default_flow_style=True, width=10**6).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    text = text.removesuffix("...").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def protocol_description(config) -> str:
    """The evaluation protocol in words: how users and interactions are split, what is ranked."""
    return protocol_of(config).describe(config)


def settings_lines(config) -> list[str]:
    """The model, data set, protocol and device, then each setting that differs from the defaults."""
    lines = [f"{config['model']} on {config['dataset']}, {protocol_description(config)}, device {config['device']}"]
    changed = config.changed_settings()
    if changed:
        lines.append("Settings that differ from the defaults:")
        lines += aligned([[f"{key} = {format_value(value)}", source] for key, value, source in changed], indent=2, gap=3)
    else:
        lines.append("Settings: the defaults (every setting of the model is in its properties/model/<Model>.yaml)")
    return lines


def _count(number) -> str:
    return f"{int(number):,}"


def data_line(config, dataset, train_data, valid_data, test_data) -> str:
    """Users, items, interactions of the loaded data and how they were split."""
    users, items = dataset.user_num - 1, dataset.item_num - 1  # RecBole's id 0 is padding
    head = f"Data: {_count(users)} users, {_count(items)} items, {_count(dataset.inter_num)} interactions"
    split = protocol_of(config).split_line(train_data, valid_data, test_data)
    return f"{head}; {split}" if split else head


def result_lines(result: dict) -> list[str]:
    """The test metrics as an aligned table (with the best validation score beside each)."""
    test, valid = result.get("test_result") or {}, result.get("best_valid_result") or {}
    metrics = [key for key in test if not key.endswith("_se") and key != "users"]
    has_se = any(f"{m}_se" in test for m in metrics)
    header = ["metric", "test" + (" ± SE" if has_se else ""), "valid (best epoch)"]
    rows = []
    for metric in metrics:
        se = test.get(f"{metric}_se")
        cell = f"{test[metric]:.4f}" + (f" ± {se:.4f}" if se is not None else "")
        rows.append([metric, cell, f"{valid[metric]:.4f}" if metric in valid else "–"])
    title = f"Test results: {result.get('model')} on {result.get('dataset')}, {result.get('epochs')} epochs trained"
    if test.get("users"):
        title += f", {test['users']} test users"
    return [title, *aligned([header, *rows], indent=2)]


def shown_path(path) -> str:
    """``path`` relative to the current folder when it lies inside it (shorter to read and to paste)."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def paths_lines(paths: dict[str, str | None]) -> list[str]:
    rows = [[name, shown_path(str(path)) if path else "not written"] for name, path in paths.items()]
    return aligned(rows)


class Console:
    """Prints a run's progress for a person; see the module docstring for what each verbosity shows."""

    def __init__(self, verbosity: str = "normal", stream=None):
        if verbosity not in VERBOSITIES:
            raise ValueError(f"verbosity must be one of {VERBOSITIES}, not {verbosity!r}")
        self.verbosity = verbosity
        self.stream = stream
        self._started = None

    def say(self, *lines: str) -> None:
        if self.verbosity != "quiet":
            self._print(*lines)

    def _print(self, *lines: str) -> None:
        print(*lines, sep="\n", file=self.stream or sys.stdout, flush=True)

    def take_over(self, console_handler: logging.Handler | None) -> None:
        """Leave RecBole's console log handler only what the verbosity asks for (the log file keeps everything)."""
        if console_handler is None or self.verbosity == "verbose":
            return
        floor = logging.ERROR if self.verbosity == "quiet" else logging.WARNING
        console_handler.setLevel(max(console_handler.level, floor))

    def start(self, config, log_file: str | None) -> None:
        if self.verbosity == "verbose":
            return  # RecBole's log prints the whole configuration
        self.say(*settings_lines(config),
                 f"Full configuration: {shown_path(log_file) if log_file else 'the log file'} (or run with --verbose)")

    def data(self, config, dataset, train_data, valid_data, test_data, model) -> None:
        parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.say(data_line(config, dataset, train_data, valid_data, test_data),
                 f"Model: {type(model).__name__}, {parameters:,} trainable parameters")

    def start_training(self, trainer, config) -> None:
        self._started = time.perf_counter()
        self._first_epoch = trainer.start_epoch
        self._best_epoch = None
        self._metric = str(config["valid_metric"]).lower()
        stop = (f"stopping after {trainer.stopping_step + 1} validations without improvement"
                if trainer.stopping_step is not None else "")
        self.say(f"Training: up to {trainer.epochs} epochs" + (f" (from epoch {trainer.start_epoch + 1})" if
                 trainer.start_epoch else "") + f", validating {self._metric} " + ("after every epoch" if trainer.eval_step == 1 else
                 f"every {trainer.eval_step} epochs") + f", {stop}")

    def epoch_done(self, trainer, epoch_idx: int, loss, valid_score: float | None) -> None:
        """Called by the trainer after each epoch (after its validation and early-stopping update, if any)."""
        if self._started is None:
            self._started = time.perf_counter()
            self._first_epoch, self._best_epoch, self._metric = epoch_idx, None, "valid"
        elapsed = time.perf_counter() - self._started
        done = epoch_idx + 1 - self._first_epoch
        remaining = elapsed / max(done, 1) * (trainer.epochs - epoch_idx - 1)
        if valid_score is None:
            self.say(format_epoch_line(epoch_idx + 1, trainer.epochs, loss, elapsed=elapsed, remaining=remaining))
            return
        if trainer.cur_step == 0:  # RecBole's early_stopping resets its counter on a new best
            self._best_epoch = epoch_idx + 1
        self.say(format_epoch_line(
            epoch_idx + 1, trainer.epochs, loss, self._metric, float(valid_score), float(trainer.best_valid_score),
            # RecBole stops once cur_step exceeds stopping_step: a negative patience is that stop.
            self._best_epoch, trainer.stopping_step - trainer.cur_step, elapsed, remaining,
        ))

    def finish(self, result: dict, paths: dict[str, str | None]) -> None:
        """The metrics table (every verbosity) and the paths of what the run wrote (not with quiet)."""
        self._print("", *result_lines(result))
        self.say("", *paths_lines(paths))
