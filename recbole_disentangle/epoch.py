"""A training epoch that never waits for the device (issue 14: steps that fill a GPU).

RecBole's ``Trainer._train_epoch`` makes the host wait for the GPU to finish every step before
it queues the next one, three times: ``interaction.to(device)`` is a blocking copy (PyTorch
synchronises the stream after it), ``losses.item()`` reads the loss, and ``_check_nan`` reads
``isnan(loss)``. With a step of a few milliseconds the GPU then idles between steps while the host
launches the next step's kernels. :func:`train_epoch_on_device` is the same loop without those
waits:

* the batch is copied without waiting (``transfer.copy_to_device``: pinned, ``non_blocking``), and
  the fields the model reads on the host (``ModelHooks.host_batch_fields``, MacridVAE's user ids)
  are left there for the model to copy;
* the loss is summed on the device in float64, one entry per loss part, and read once at the end
  of the epoch: the same float64 sums, in the same order, as RecBole's Python sum of ``item()``s;
* a NaN loss is recorded on the device (the first step it happened at) and raised at the end of
  the epoch, with RecBole's message ("Training loss is nan") and the step. RecBole raises at the
  step itself; here the rest of the epoch runs on NaN weights first, which costs time but changes
  no result: the run fails, and no checkpoint of the NaN weights is written (the trainer writes
  the last-epoch checkpoint after this function returns). With autograd's anomaly detection on
  (``torch.autograd.set_detect_anomaly``, off by default) the NaN step's backward raises first,
  with autograd's message.

The trainer (``SafeCheckpointMixin._train_epoch``) uses it in place of RecBole's loop wherever that
loop is the one it would run: RecBole's own trainers with a loop of their own (RecVAE's, NCL's
...), distributed training and the AMP gradient scaler (whose step reads the gradients' inf
check on the host anyway) keep RecBole's.
"""

from __future__ import annotations

import torch
from recbole.data.interaction import Interaction
from recbole.utils import get_gpu_usage, set_color
from torch.nn.utils.clip_grad import clip_grad_norm_
from tqdm import tqdm

from recbole_disentangle.transfer import copy_to_device


def host_batch_fields(model) -> tuple[str, ...]:
    """``model.host_batch_fields()`` (``ModelHooks``), or none for models without the hook."""
    hook = getattr(model, "host_batch_fields", None)
    return tuple(hook()) if callable(hook) else ()


def to_device(interaction: Interaction, device, host_fields: tuple[str, ...]) -> Interaction:
    """``interaction`` with its fields on ``device``, except ``host_fields``, copied without waiting
    for the device (transfer.copy_to_device)."""
    return Interaction({name: values if name in host_fields else copy_to_device(values, device)
                        for name, values in interaction.interaction.items()})


def train_epoch_on_device(trainer, train_data, epoch_idx: int, loss_func=None, show_progress: bool = False):
    """RecBole's ``Trainer._train_epoch`` (the same steps, return value and progress bar) without a
    host sync in a step: the sum of the losses (a float, or a tuple of floats for a model whose
    loss has parts) is read once, at the end of the epoch."""
    model = trainer.model
    model.train()
    loss_func = loss_func or model.calculate_loss
    host_fields = host_batch_fields(model)
    batches = tqdm(train_data, total=len(train_data), ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink")) \
        if show_progress else train_data
    loss_sums = None  # float64 on the device, one entry per loss part
    loss_parts = None  # how many parts the model's loss has (None: a single tensor)
    first_nan_step = torch.full((), -1, dtype=torch.long, device=trainer.device)
    for step, interaction in enumerate(batches):
        interaction = to_device(interaction, trainer.device, host_fields)
        trainer.optimizer.zero_grad()
        with torch.autocast(device_type=trainer.device.type, enabled=trainer.enable_amp):
            losses = loss_func(interaction)
        if isinstance(losses, tuple):
            loss, loss_parts = sum(losses), len(losses)
            step_losses = torch.stack([part.detach().double().reshape(()) for part in losses])
        else:
            loss, loss_parts = losses, None
            step_losses = losses.detach().double().reshape(1)
        loss_sums = step_losses if loss_sums is None else loss_sums + step_losses
        first_nan_step = torch.where(torch.isnan(loss.detach()) & (first_nan_step < 0), step, first_nan_step)
        loss.backward()
        if trainer.clip_grad_norm:
            clip_grad_norm_(model.parameters(), **trainer.clip_grad_norm)
        trainer.optimizer.step()
        if trainer.gpu_available and show_progress:
            batches.set_postfix_str(set_color("GPU RAM: " + get_gpu_usage(trainer.device), "yellow"))
    if loss_sums is None:  # no batch: RecBole returns None too
        return None
    nan_step = int(first_nan_step)
    if nan_step >= 0:
        raise ValueError(f"Training loss is nan (first at step {nan_step} of epoch {epoch_idx}, counting from 0)")
    sums = loss_sums.tolist()
    return sums[0] if loss_parts is None else tuple(sums)
