"""Model name -> model class: the plugin's models first, then RecBole's own.

``--model=MacridVAE`` means this package's MacridVAE. RecBole's built-in model of the same
name stays reachable as ``RecBole<Name>`` (``RecBoleMacridVAE``) so the two can be compared in
one run; every other RecBole model (MultiVAE, DGCF, BPR, ...) resolves under its usual name.
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from pathlib import Path

import torch

from recbole_disentangle import compat
from recbole_disentangle.errors import ConfigError

# Public model name -> "module:Class" (or the class itself, for a model given to
# :func:`register_model`). Names may contain characters a class name cannot (SEM-MacridVAE), so
# the table, not the class name, is the source of truth.
PLUGIN_MODELS: dict[str, str | type] = {
    "MacridVAE": "recbole_disentangle.model.macridvae:MacridVAE",
    "AD-DRL": "recbole_disentangle.model.addrl:ADDRL",
    "VBPR": "recbole_disentangle.model.vbpr:VBPR",
    "SEM-MacridVAE": "recbole_disentangle.model.sem_macridvae:SEMMacridVAE",
}

RECBOLE_PREFIX = "RecBole"

# The defaults file of each model given to register_model with one (name -> YAML path); the
# package's own models have theirs in properties/model/<Name>.yaml (config.model_yaml_files).
_REGISTERED_YAML: dict[str, Path] = {}
_BUILT_IN = frozenset(PLUGIN_MODELS)

_RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


def register_model(name: str, model_class: type, yaml_file: str | Path | None = None) -> type:
    """Make ``model_class`` selectable as ``--model=<name>`` from outside the package (a test's
    toy model, a user's own model), as a plugin model: it subclasses a RecBole model class and
    :class:`~recbole_disentangle.model.base.ModelHooks`, and reads its hyper-parameters from
    ``config``. ``yaml_file``: its defaults, layered where ``properties/model/<name>.yaml`` would be.
    A built-in model's name cannot be taken; registering a name again replaces the earlier one.
    """
    if name in _BUILT_IN or _is_recbole_name(name):
        raise ValueError(f"register_model: the name '{name}' is taken by a model of this package or RecBole's.")
    PLUGIN_MODELS[name] = model_class
    _REGISTERED_YAML.pop(name, None)
    if yaml_file is not None:
        _REGISTERED_YAML[name] = Path(yaml_file)
    return model_class


def unregister_model(name: str) -> None:
    """Undo :func:`register_model` (the package's own models stay)."""
    if name not in _BUILT_IN:
        PLUGIN_MODELS.pop(name, None)
        _REGISTERED_YAML.pop(name, None)


def registered_yaml_file(name: str) -> Path | None:
    """The defaults file given to :func:`register_model` for ``name``; None otherwise."""
    return _REGISTERED_YAML.get(name)


def _is_recbole_name(name: str) -> bool:
    return name in recbole_model_names() or recbole_base_name(name) != name


def is_plugin_model(name: str) -> bool:
    return name in PLUGIN_MODELS


def recbole_base_name(name: str) -> str:
    """The RecBole model a name refers to: ``RecBoleMacridVAE`` -> ``MacridVAE``.

    The prefix is stripped only for names this package shadows; RecBole has no model whose name
    starts with "RecBole", so any other name is returned unchanged.
    """
    if name.startswith(RECBOLE_PREFIX) and name[len(RECBOLE_PREFIX):] in PLUGIN_MODELS:
        return name[len(RECBOLE_PREFIX):]
    return name


@lru_cache(maxsize=1)
def recbole_model_names() -> tuple[str, ...]:
    """Names of RecBole's models, read from its source files (importing ~100 modules is slow)."""
    import recbole.model

    root = Path(recbole.model.__file__).parent
    names = []
    for package in _RECBOLE_MODEL_PACKAGES:
        for file in sorted((root / package).glob("*.py")):
            if file.stem.startswith("_"):
                continue
            # RecBole's convention: module file = lower-cased class name.
            for class_name in re.findall(r"^class (\w+)\(", file.read_text(encoding="utf-8"), re.M):
                if class_name.lower() == file.stem:
                    names.append(class_name)
    return tuple(sorted(set(names), key=str.lower))


def shadowed_model_names() -> list[str]:
    """``RecBole<Name>`` for each plugin model RecBole also has (RecBole has no AD-DRL, VBPR, SEM-MacridVAE)."""
    return [RECBOLE_PREFIX + n for n in PLUGIN_MODELS if n in recbole_model_names()]


def available_models() -> list[str]:
    """Every name ``--model`` accepts: plugin models, their RecBole twins, RecBole's models."""
    recbole_names = [n for n in recbole_model_names() if n not in PLUGIN_MODELS]
    return list(PLUGIN_MODELS) + shadowed_model_names() + recbole_names


def get_model(name: str) -> type:
    """The model class for ``name`` (plugin first), or a ConfigError listing the known names."""
    if name in PLUGIN_MODELS:
        target = PLUGIN_MODELS[name]
        if isinstance(target, type):
            return target
        module_name, class_name = target.split(":")
        return getattr(importlib.import_module(module_name), class_name)
    base = recbole_base_name(name)
    if base in recbole_model_names():
        from recbole.utils import get_model as recbole_get_model

        compat.apply()  # RecBole's graph models call a SciPy method removed since RecBole 1.2.1
        anomaly_detection = torch.is_anomaly_enabled()
        model_class = recbole_get_model(base)
        # Importing any of RecBole's sequential models runs its sequential_recommender/sine.py, which
        # switches autograd's anomaly detection on for the whole process: a debugging mode that
        # records a traceback per operation (a MacridVAE epoch on ml-100k takes 1.5x as long).
        torch.autograd.set_detect_anomaly(anomaly_detection)
        return model_class
    raise ConfigError(
        f"Unknown model '{name}'. Plugin models: {', '.join(PLUGIN_MODELS)}; RecBole's built-in "
        f"versions of those: {', '.join(shadowed_model_names())}; RecBole models: "
        f"{', '.join(n for n in recbole_model_names() if n not in PLUGIN_MODELS)}."
    )


def plugin_lineage(name: str) -> list[str]:
    """The plugin models whose YAML gives ``name`` its defaults, the most distant ancestor first:
    every plugin model its class derives from, then itself ([] for a model of RecBole's).

    SEM-MacridVAE's class derives from MacridVAE's: ``["MacridVAE", "SEM-MacridVAE"]``, so
    SEM-MacridVAE.yaml holds only what differs from MacridVAE.yaml.
    """
    if name not in PLUGIN_MODELS:
        return []
    model_class = get_model(name)
    ancestors = [other for other in PLUGIN_MODELS
                 if other != name and issubclass(model_class, get_model(other))]
    ancestors.sort(key=lambda other: -model_class.__mro__.index(get_model(other)))
    return [*ancestors, name]


def get_trainer_class(model_type, model_name: str) -> type:
    """RecBole's trainer for the model (``<Model>Trainer`` if RecBole has one, else by type)."""
    from recbole.utils import get_trainer

    return get_trainer(model_type, recbole_base_name(model_name))
