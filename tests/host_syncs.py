"""Finding, on a CPU, the operations that make the host wait for a GPU (a test helper).

On a GPU the host queues kernels and runs ahead; it stops to wait for the device wherever it
needs a value computed there: a tensor read as a Python number (``item``, ``int``, ``bool``,
``tolist``, ``numpy``, ``cpu``), or an operation whose output size depends on the values
(``nonzero``, ``unique``, ``masked_select``, indexing with a boolean mask, ``repeat_interleave``
without ``output_size``). On a CPU nothing waits, but the same operations run, so
:class:`HostSyncRecorder` can list them there: a dispatch mode sees every aten operation (those
inside composite operations and the backward pass too), and a function mode sees the reads that
do not reach aten (``numpy``, ``tolist``).

A CPU cannot tell a tensor meant for the host from one meant for the device: ``host_tensors``
names the host's own (a batch's fields the trainer leaves there), whose reads are not waits.
"""

from __future__ import annotations

import traceback

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from recbole_disentangle.epoch import host_batch_fields

# aten operations that read a device value on the host, or size their output by one.
WAITING_OPS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten._unique2.default",
               "aten.unique_dim.default", "aten.unique_consecutive.default", "aten.masked_select.default"}
# Reads that do not reach aten on a CPU (``item``, ``int()`` and ``bool()`` do: _local_scalar_dense).
HOST_READS = {torch.Tensor.numpy, torch.Tensor.tolist, torch.Tensor.cpu}


def _waits(name: str, args, kwargs) -> bool:
    if name in WAITING_OPS:
        return True
    if name == "aten.repeat_interleave.Tensor":
        return kwargs.get("output_size") is None
    if name == "aten.index.Tensor":  # x[mask]: as many rows as the mask has True values
        return any(index is not None and index.dtype == torch.bool for index in args[1])
    return False


def _caller() -> str:
    """file:line:function of the innermost frame of this project or RecBole (not torch's, not this file's)."""
    frames = [f for f in traceback.extract_stack()
              if "/torch/" not in f.filename and not f.filename.endswith("host_syncs.py")]
    frame = frames[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}:{frame.name}"


class HostSyncRecorder:
    """A context manager recording ``(phase, operation, caller)`` for each operation in its block
    that would make the host wait for a GPU. ``phase`` is whatever the caller set last (a test
    sets the step it is in); while ``paused`` nothing is recorded."""

    def __init__(self, host_tensors: list[torch.Tensor] | None = None):
        self.host_tensors = host_tensors if host_tensors is not None else []
        self.events: list[tuple[str, str, str]] = []
        self.phase = "before"
        self.paused = False
        recorder = self

        class Dispatch(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if not recorder.paused and _waits(str(func), args, kwargs):
                    recorder.events.append((recorder.phase, str(func), _caller()))
                return func(*args, **kwargs)

        class Reads(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if (not recorder.paused and func in HOST_READS
                        and not any(args[0] is tensor for tensor in recorder.host_tensors)):
                    recorder.events.append((recorder.phase, func.__name__, _caller()))
                return func(*args, **kwargs)

        self._modes = [Reads(), Dispatch()]

    def __enter__(self):
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc):
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
        return False

    def paused_during(self, function):
        """``function`` run with recording paused (host work: a data loader, torch's optimizer)."""
        def run(*args, **kwargs):
            self.paused = True
            try:
                return function(*args, **kwargs)
            finally:
                self.paused = False
        return run


def epoch_syncs(trainer, train_data, **kwargs):
    """The host syncs of one training epoch of ``trainer`` (``_train_epoch``) as (phase, operation,
    caller), phase being "step N" or "after the last step"."""
    host_fields = host_batch_fields(trainer.model)
    recorder = HostSyncRecorder()

    def batches():  # the loader's own work (shuffling, collating) is host work: not recorded
        iterator = recorder.paused_during(iter)(train_data)
        for step, interaction in enumerate(iter(recorder.paused_during(lambda: next(iterator, None)), None)):
            recorder.host_tensors.extend(interaction[name] for name in host_fields)
            recorder.phase = f"step {step}"
            yield interaction
        recorder.phase = "after the last step"

    class Loader:  # train_data's length, its batches with their steps marked
        def __len__(self):
            return len(train_data)

        def __iter__(self):
            return batches()

    # torch's Adam keeps its step counts on the host for CUDA parameters: reading them is no wait.
    trainer.optimizer.step = recorder.paused_during(trainer.optimizer.step)
    with recorder:
        trainer._train_epoch(Loader(), 0, **kwargs)
    return recorder.events
