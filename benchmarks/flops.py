"""FLOPs of a training epoch and the FLOP/s an epoch achieves against the device's FP32 peak (issue 14).

What is counted: torch.utils.flop_counter.FlopCounterMode counts the dense matrix products torch
dispatches (``aten.mm``, ``addmm``, ``bmm``, ``baddbmm``, convolutions, attention), each as
2 * m * n * k, in the forward pass and in the backward pass (which runs inside the counter).
Not counted: elementwise operations (exp, log, tanh, dropout, normalisation, softmax and
logsumexp, the optimizer's update), reductions, gathers, scatters and other index operations,
and sparse products (``torch.sparse.mm``, ``sampled_addmm``: MacridVAE's encoder product S @ t
and its backward). The figure is the matrix-product work of an epoch; what a model spends on the
rest shows as a lower FLOP/s, not as more FLOPs.

How an epoch is counted: the first ``steps`` batches of the training loader, each a step as
RecBole's ``Trainer._train_epoch`` runs it (``model.calculate_loss``, then ``backward``; no
optimizer step), untimed and before the timed epochs; their mean, times the batches of an epoch.
The last batch of an epoch is usually smaller and counts as a full one: an over-count of at most
one step's share. The steps leave the model and the random state as they found them
(:func:`unchanged_training_state`), so the timed epochs and the metrics are those of a run
without counting.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from contextlib import contextmanager

import torch
from torch.utils.flop_counter import FlopCounterMode

from recbole_disentangle.trainer import restore_rng_state, rng_state

DEFAULT_STEPS = 3

# FP32 peak without tensor cores (TFLOP/s), by torch.cuda.get_device_name(); exact names only, so
# a device not listed (an H200 NVL or an H100 NVL: 60) gets no peak rather than a neighbour's.
# Source: NVIDIA's H100 and H200 datasheets ("FP32: 67 teraFLOPS" for the H100 SXM and the H200 SXM).
FP32_PEAK_TFLOPS = {
    "NVIDIA H200": 67.0,
    "NVIDIA H100 80GB HBM3": 67.0,  # the H100 SXM's name
}


@contextmanager
def unchanged_training_state(model: torch.nn.Module, train_data):
    """On exit, ``model`` and the random state are as they were on entry, whatever steps ran inside.

    A step without an optimizer step still changes: buffers (MacridVAE's ``anneal_step``),
    parameters written in place (MacridVAE's ``prototype_recentring``), plain attributes (RecBole's
    MultiVAE counts steps in ``update``; the ``training`` flags), gradients, and the random
    streams it draws from (Gumbel noise, dropout, the loader's shuffle and negative sampling).
    The copy of the model's tensors this keeps is freed on exit, before the timed epochs.
    """
    tensors = [(t, t.detach().clone()) for t in [*model.parameters(), *model.buffers()]]
    grads = [(p, None if p.grad is None else p.grad.clone()) for p in model.parameters()]
    attributes = [(module, dict(vars(module))) for module in model.modules()]
    random_state = rng_state(train_data)
    try:
        yield
    finally:
        with torch.no_grad():
            for tensor, saved in tensors:
                tensor.copy_(saved)
        for parameter, grad in grads:
            parameter.grad = grad
        for module, saved in attributes:
            vars(module).clear()
            vars(module).update(saved)
        restore_rng_state(random_state, train_data)


def count_epoch_flops(model: torch.nn.Module, train_data, device, steps: int = DEFAULT_STEPS) -> dict:
    """{'per_step', 'steps', 'per_epoch'}: FlopCounterMode's FLOPs of ``model`` over the first
    ``steps`` batches of ``train_data`` (forward + backward, batches moved to ``device``), their
    mean, and that mean times the batches of an epoch. The model and the random state are left
    unchanged."""
    counted = 0
    with unchanged_training_state(model, train_data), FlopCounterMode(display=False) as counter:
        model.train()
        for interaction in itertools.islice(train_data, steps):
            losses = model.calculate_loss(interaction.to(device))
            (sum(losses) if isinstance(losses, tuple) else losses).backward()
            counted += 1
    if not counted:
        raise ValueError("the training loader yielded no batch to count FLOPs on")
    per_step = counter.get_total_flops() / counted
    return {"per_step": per_step, "steps": counted, "per_epoch": per_step * len(train_data)}


def peak_option(value: str) -> tuple[str, float]:
    """One ``--peak_tflops`` value (an argparse type): 'TFLOPS' for every device ('', TFLOPS) or
    'DEVICE=TFLOPS' (DEVICE, TFLOPS)."""
    device, _, number = value.rpartition("=")
    try:
        tflops = float(number)
    except ValueError:
        tflops = 0.0
    if device not in ("", "cpu", "cuda") or not tflops > 0:
        raise argparse.ArgumentTypeError(f"{value!r}: give TFLOPS > 0 or DEVICE=TFLOPS with DEVICE cpu or cuda, "
                                         "e.g. 67 or cuda=67")
    return device, tflops


def fp32_peak(device: str, runs: list[dict], given: dict[str, float]) -> dict | None:
    """{'tflops', 'source'}: the FP32 peak the ``runs`` on ``device`` are held against, from
    ``--peak_tflops`` (``given``: {device or '': TFLOPS}, the device's own first) or, for CUDA, :data:`FP32_PEAK_TFLOPS` by the device name the runs
    report; None where neither knows the device (never a guess), as for runs of JSON written
    before device names were kept."""
    for key in (device, ""):
        if key in given:
            return {"tflops": given[key], "source": "--peak_tflops"}
    names = {r["device_name"] for r in runs if "device_name" in r}
    if device == "cuda" and len(names) == 1 and (name := names.pop()) in FP32_PEAK_TFLOPS:
        return {"tflops": FP32_PEAK_TFLOPS[name], "source": f"{name}, datasheet"}
    return None


def flop_notes(runs: list[dict], peak: dict | None) -> list[str]:
    """What the table's notes say of a row's FLOP/s: the peak and its source, and TF32 where it was on."""
    notes = [f"FP32 peak {peak['tflops']:g} TFLOPS ({peak['source']})"] if peak else []
    if any(r.get("matmul_tf32") for r in runs):
        notes.append("TF32 was on: FP32 products ran as TF32, so the % of FP32 peak overstates")
    return notes


def flop_cells(runs: list[dict], epoch_seconds: list[float], peak: dict | None) -> list[str]:
    """The table's GFLOP / epoch, TFLOP/s and % of FP32 peak for a row: FLOP/s at the min and at
    the median of ``epoch_seconds`` (the table's s / epoch); '–' without a count (runs of
    ``--flop_steps 0``, or JSON written before FLOPs were counted) or, for the %, without a peak."""
    counts = [r["flops"]["per_epoch"] for r in runs if "flops" in r]
    if not counts or not epoch_seconds:
        return ["–", "–", "–"]
    epoch_flops = statistics.median(counts)
    # One run, one figure; more: min / median, as the table's other cells.
    seconds = [min(epoch_seconds)] if len(epoch_seconds) == 1 else [min(epoch_seconds), statistics.median(epoch_seconds)]
    tflops = [epoch_flops / s / 1e12 for s in seconds]
    percent = " / ".join(f"{100 * t / peak['tflops']:.3g}" for t in tflops) if peak else "–"
    return [f"{epoch_flops / 1e9:,.1f}", " / ".join(f"{t:.3g}" for t in tflops), percent]


TABLE_NOTE = (
    "GFLOP / epoch: the dense matrix products (forward and backward) torch's FlopCounterMode counts in "
    "the first training steps, times the steps of an epoch; elementwise, index and sparse operations "
    "are not counted (benchmarks/flops.py). TFLOP/s: those FLOPs over the min / median s / epoch; % of "
    "FP32 peak: against the device's FP32 peak without tensor cores (--peak_tflops, or the datasheet's "
    "for the GPUs benchmarks/flops.py lists; none for a CPU unless given). On CUDA, FP32 matrix products "
    "run without TF32: torch.backends.cuda.matmul.allow_tf32 is False by default and the benchmark "
    "leaves it so."
)
