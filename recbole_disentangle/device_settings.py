"""Settings whose default depends on the device a run trains on.

A MacridVAE step of 100 users (the paper's batch, ``train_batch_size: 100``) keeps 2 CPU cores
busy but leaves a GPU waiting on small kernels: on one H200 an ml-latest-small epoch took 0.095 s
at 100 users per step and 0.014 s at 2,048 (issue 14's measurements). A model that declares
``gpu_train_batch_size`` therefore trains with that many users per step on a GPU, unless the user
set ``train_batch_size``; and, unless the user set ``learning_rate``, with the default learning
rate times sqrt(gpu_train_batch_size / train_batch_size), the square-root scaling rule for Adam
(Malladi et al., "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms", NeurIPS 2022):
a step of B users averages B per-user gradients, whose noise falls as 1/sqrt(B). The KL ramp is
counted in epochs (``anneal_epochs``), so it needs no change. What this keeps of the 100-user
accuracy was measured on CPU (the arithmetic is the device's, the batches are the same):
docs/results.md, "Users per step".
"""

from __future__ import annotations

import math

import torch


def apply_gpu_step_defaults(config, device_type: str | None = None) -> dict[str, tuple[object, str]]:
    """Set the GPU's users per step and learning rate on ``config`` (see the module docstring);
    returns {key: (value, why)} for what it changed (nothing on a CPU, or where the user chose).
    ``device_type`` defaults to the type of ``config["device"]``."""
    gpu_batch = config["gpu_train_batch_size"] if "gpu_train_batch_size" in config else None
    if device_type is None:
        device_type = torch.device(config["device"]).type
    # A value that is not a positive int is left to the model's check_config, which names the rule.
    usable = isinstance(gpu_batch, int) and not isinstance(gpu_batch, bool) and gpu_batch > 0
    if not usable or device_type != "cuda" or config.set_by_user("train_batch_size"):
        return {}
    cpu_batch = config["train_batch_size"]
    why = f"gpu_train_batch_size on a GPU (train_batch_size {cpu_batch} on a CPU)"
    changed = {"train_batch_size": (gpu_batch, why)}
    config["train_batch_size"] = gpu_batch
    if not config.set_by_user("learning_rate"):
        scaled = config["learning_rate"] * math.sqrt(gpu_batch / cpu_batch)
        config["learning_rate"] = scaled
        changed["learning_rate"] = (scaled, f"{why}: the default times sqrt({gpu_batch} / {cpu_batch})")
    return changed
