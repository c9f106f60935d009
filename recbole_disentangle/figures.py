"""PNG figures of runs and benchmarks, drawn headless (matplotlib's Agg backend).

matplotlib is an optional dependency (the ``analysis`` extra); :func:`matplotlib_available`
says whether these figures can be drawn, so a run without it still trains and only skips its
learning curve.
"""

from __future__ import annotations

import re
from pathlib import Path


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib's pyplot on the headless Agg backend, imported when a figure is drawn (an optional extra)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: training machines and CI have none
    import matplotlib.pyplot as plt

    return plt


def learning_curve(path, train_losses: list[tuple[int, float]], valid_scores: list[tuple[int, float]], metric: str,
                   bigger: bool = True, title: str = "") -> Path:
    """Training loss and validation metric per epoch, one panel each; ``(epoch index, value)``
    pairs as RecBole counts epochs (from 0), drawn from 1 as the console counts them."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (loss_ax, valid_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    if train_losses:
        epochs, losses = zip(*train_losses)
        loss_ax.plot([e + 1 for e in epochs], losses, color="tab:blue")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    if valid_scores:
        epochs, scores = zip(*valid_scores)
        valid_ax.plot([e + 1 for e in epochs], scores, color="tab:orange", marker="." if len(scores) < 40 else None)
        best = (max if bigger else min)(range(len(scores)), key=scores.__getitem__)
        valid_ax.axvline(epochs[best] + 1, color="grey", linestyle=":", label=f"best: epoch {epochs[best] + 1}")
        valid_ax.legend(loc="best")
    valid_ax.set(xlabel="epoch", ylabel=metric, title=f"Validation {metric}")
    for ax in (loss_ax, valid_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def short_label(label: str) -> str:
    """A benchmark row's label without the folders of its config files (``config_files=a/b/x.yaml`` -> ``x``)."""
    return re.sub(r"config_files=[^,]*?([^/,]+)\.ya?ml", r"\1", label)


def metric_bars(path, title: str, metrics: list[str], labels: list[str], means: dict[str, list[float]],
                errors: dict[str, list[float | None]], error_name: str,
                reference: dict[str, list[float | None]] | None = None) -> Path:
    """One panel per metric, one horizontal bar per model with its error bar, and the paper's value
    (``reference``) as a black mark where one exists. ``means``/``errors``/``reference``: metric -> per label."""
    plt = pyplot()
    shown = [short_label(label) for label in labels]
    height = 0.9 + 0.38 * len(labels)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 0.12 * max(map(len, shown)), height),
                             sharey=True, squeeze=False)
    rows = list(range(len(labels)))[::-1]  # the first model on top, as in the table
    marked = False
    for ax, metric in zip(axes[0], metrics):
        xerr = [e if e is not None else 0.0 for e in errors[metric]]
        ax.barh(rows, means[metric], xerr=xerr, color="tab:blue", alpha=0.75, capsize=3, height=0.6)
        for row, value in zip(rows, (reference or {}).get(metric, [None] * len(labels))):
            if value is not None:
                ax.plot([value], [row], marker="D", color="black", markersize=5, linestyle="none",
                        label=None if marked else "paper")
                marked = True
        ax.set_title(metric)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(left=0)
    axes[0][0].set_yticks(rows, shown)
    note = f"bars: mean; error bars: {error_name}" + ("; ◆ paper's value" if marked else "")
    fig.suptitle(f"{title}\n{note}", fontsize=9)
    return _save(fig, path)


def speed_bars(path, title: str, labels: list[str], seconds_per_epoch: list[float], peak_memory_mb: list[float]) -> Path:
    """Seconds per training epoch and peak memory, one bar per model."""
    plt = pyplot()
    shown = [short_label(label) for label in labels]
    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(7 + 0.12 * max(map(len, shown)), 0.9 + 0.38 * len(labels)),
                                             sharey=True)
    rows = list(range(len(labels)))[::-1]
    time_ax.barh(rows, seconds_per_epoch, color="tab:green", alpha=0.75, height=0.6)
    time_ax.set(title="seconds per training epoch")
    memory_ax.barh(rows, peak_memory_mb, color="tab:purple", alpha=0.75, height=0.6)
    memory_ax.set(title="peak resident memory (MB)")
    for ax in (time_ax, memory_ax):
        ax.grid(axis="x", alpha=0.3)
    time_ax.set_yticks(rows, shown)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
