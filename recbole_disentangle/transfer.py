"""Copying a host tensor to the device without making the host wait (issue 14).

A blocking host-to-device copy (``tensor.to("cuda")``) makes PyTorch synchronise the stream after
it: the host waits for every kernel queued before it. ``non_blocking=True`` from pageable memory
may still wait ("the driver may synchronize with the stream" to stage it, CUDA's API
synchronization notes); from pinned memory it does not, and PyTorch keeps the pinned block until
the copy has finished, so the temporary may be dropped at once.
"""

from __future__ import annotations

import torch


def copy_to_device(values: torch.Tensor, device) -> torch.Tensor:
    """``values`` on ``device``, queued behind the device's work instead of waiting for it (a GPU);
    on a CPU, ``values`` itself."""
    device = torch.device(device)
    if device.type == "cuda" and values.device.type == "cpu":
        values = values.pin_memory()
    return values.to(device, non_blocking=True)
