"""Checkpoints that hold tensors and plain values only, loaded with ``weights_only=True``.

RecBole pickles its Config object into checkpoints and reads them back with ``torch.load``:
that fails on torch >= 2.6 and would run code from an untrusted file. Here a checkpoint is a
dict of tensors, numbers, strings, lists and dicts; loading one never runs code.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path

import torch

from recbole_disentangle.errors import CheckpointError

FORMAT = "recbole_disentangle.checkpoint/1"


def save_checkpoint(path: str | os.PathLike, **state) -> None:
    """Write ``state`` (tensors and plain values) atomically: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything that needs unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint '{path}' does not exist.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, ... depending on the content
        raise CheckpointError(
            f"Cannot load '{path}' safely: it is not a checkpoint of recbole-disentangle "
            f"(files written by RecBole itself pickle Python objects and are refused). Details: {err}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a recbole-disentangle checkpoint (format {FORMAT} expected).")
    return state


# ---- RecBole's own loader ---------------------------------------------------------------
# ``recbole.quick_start.load_data_and_model`` reads a checkpoint's "config" as RecBole's Config
# object; on this package's plain settings it fails deep inside its logger with "AttributeError:
# 'dict' object has no attribute 'final_config_dict'", which does not say what to do. Once this
# package is imported, RecBole's loader refuses this package's checkpoints with a message naming
# the loader that reads them, and loads everything else as before. recbole.quick_start imports
# ray at module level (seconds), so it is not imported here: the guard is applied when it is.
RECBOLE_LOADER_MODULES = ("recbole.quick_start", "recbole.quick_start.quick_start")


def is_package_checkpoint(path) -> bool:
    """Whether ``path`` is a checkpoint this package wrote (loadable safely, with its format tag)."""
    try:
        load_checkpoint(path, map_location="cpu")
    except CheckpointError:
        return False
    return True


def _refusing_package_checkpoints(recbole_loader):
    @functools.wraps(recbole_loader)
    def load_data_and_model(model_file, *args, **kwargs):
        if is_package_checkpoint(model_file):
            raise CheckpointError(
                f"'{model_file}' was written by recbole-disentangle: RecBole's load_data_and_model cannot read it "
                f"(it holds plain settings, not RecBole's pickled Config). Load it with "
                f"recbole_disentangle.quick_start.load_data_and_model('{model_file}'), which returns the same "
                f"(config, model, dataset, train_data, valid_data, test_data)."
            )
        return recbole_loader(model_file, *args, **kwargs)

    load_data_and_model.refuses_package_checkpoints = True
    return load_data_and_model


def guard_recbole_loader() -> None:
    """Wrap ``load_data_and_model`` where recbole.quick_start (already imported) binds it."""
    for name in RECBOLE_LOADER_MODULES:
        module = sys.modules.get(name)
        loader = getattr(module, "load_data_and_model", None)
        if loader is not None and not getattr(loader, "refuses_package_checkpoints", False):
            module.load_data_and_model = _refusing_package_checkpoints(loader)


class _GuardOnImport(importlib.abc.MetaPathFinder):
    """Applies :func:`guard_recbole_loader` right after recbole.quick_start is executed, before an
    ``from recbole.quick_start import load_data_and_model`` binds the unguarded function."""

    def find_spec(self, fullname, path, target=None):
        if fullname != RECBOLE_LOADER_MODULES[0]:
            return None
        sys.meta_path.remove(self)  # the import system's own finders locate the real module
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            guard_recbole_loader()

        spec.loader.exec_module = exec_module
        return spec


def install_recbole_loader_guard() -> None:
    if RECBOLE_LOADER_MODULES[0] in sys.modules:
        guard_recbole_loader()
    elif not any(isinstance(finder, _GuardOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _GuardOnImport())


install_recbole_loader_guard()
