"""Checks on the settings a user gives: RecBole's general settings, and names no component reads.

A model's own hyper-parameters are checked by its ``check_config``; this module checks the
settings RecBole's Trainer and DataLoaders read (``learning_rate``, ``epochs``, batch sizes, ...),
which RecBole takes as given until they fail deep inside training, and warns about keys that no
component reads (``kfacc: 3`` would otherwise be ignored without a word).
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from logging import getLogger
from pathlib import Path

import yaml

from recbole_disentangle.errors import ConfigError
from recbole_disentangle.paths import properties_dir

# Keys RecBole's or this package's code reads although no YAML file sets them: filled in by
# RecBole's Config itself (MODEL_TYPE, device, ...), set by distributed runs (nproc, ...), or
# optional settings that models read with a fallback (tail_ratio, CROP_ITEM_SEQ, ...). Found by
# scanning the sources for config[...] reads; tests/test_settings.py repeats the scan so the list
# cannot fall behind a new RecBole or a new model of this package.
CODE_ONLY_KEYS = frozenset({
    "model", "dataset", "config_files", "MODEL_TYPE", "MODEL_INPUT_TYPE", "device", "eval_type", "local_rank",
    "single_spec", "world_size", "nproc", "ip", "port", "offset", "verbose", "encoding",
    "valid_neg_sample_args", "test_neg_sample_args", "tail_ratio", "token_num_threshold",
    "xgb_early_stopping_rounds", "CROP_ITEM_SEQ", "CROP_ITEM_SEQ_LEN", "INVERSE_ITEM_SEQ", "MASK_INDEX",
    "MASK_ITEM_SEQ", "NEG_ITEMS", "POS_ITEMS", "REORDER_ITEM_SEQ", "eta", "cin", "contrast", "feature_num",
    "has_residual", "norm", "sim", "use_filter",
    "circular_fields",  # recbole_disentangle.analysis
})


def _yaml_keys(folder: Path, skip: tuple[str, ...] = ()) -> set[str]:
    keys: set[str] = set()
    for file in folder.rglob("*.yaml"):
        if any(part in skip for part in file.relative_to(folder).parts):
            continue
        try:
            content = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            # RecBole's YAMLs are read by its own loader; one a safe loader cannot read
            # contributes nothing here rather than breaking every run.
            continue
        if isinstance(content, dict):
            keys.update(str(k) for k in content)
    return keys


@lru_cache(maxsize=1)
def known_keys() -> frozenset[str]:
    """Every setting some component reads: RecBole's properties (defaults, model and data-set YAMLs,
    quick-start configs) and argument lists, this package's properties (tune spaces excluded: their
    values are search spaces, their keys settings that are known anyway), and :data:`CODE_ONLY_KEYS`."""
    import recbole
    from recbole.utils import argument_list

    keys = set(CODE_ONLY_KEYS)
    keys |= _yaml_keys(Path(recbole.__file__).parent / "properties", skip=("url.yaml", "kg_url.yaml"))
    keys |= _yaml_keys(properties_dir(), skip=("tune",))
    for name in dir(argument_list):
        value = getattr(argument_list, name)
        if isinstance(value, list):
            keys.update(value)
    return frozenset(keys)


def unknown_key_messages(config) -> list[str]:
    """One sentence per setting the user gave that no component reads, with the closest known key."""
    known = known_keys() | set(config.internal_config_dict)
    messages = []
    for key in config.external_config_dict:
        if key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        hint = f" Did you mean {close[0]}?" if close else " Check its spelling against the model's YAML and RecBole's settings."
        messages.append(f"The setting '{key}' ({config.source_of(key)}) is read by no component of {config['model']}.{hint}")
    return messages


def check_unknown_keys(config, strict: bool) -> None:
    """Warn about unknown settings; with ``strict`` they are a ConfigError."""
    messages = unknown_key_messages(config)
    if not messages:
        return
    if strict:
        raise ConfigError(" ".join(messages) + " (--strict makes unknown settings errors; drop them or fix their names.)")
    logger = getLogger("recbole_disentangle")
    for message in messages:
        logger.warning(message + " It is ignored (--strict makes this an error).")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# RecBole's general settings: key -> (test, rule a person can act on).
GENERAL_RULES = {
    "epochs": (lambda v: _is_int(v) and v >= 1, "the number of training epochs must be an integer >= 1"),
    "train_batch_size": (lambda v: _is_int(v) and v >= 1, "it must be an integer >= 1"),
    "eval_batch_size": (lambda v: _is_int(v) and v >= 1, "it must be an integer >= 1"),
    "learning_rate": (lambda v: _is_number(v) and v > 0, "it must be a number > 0, e.g. 0.001"),
    "weight_decay": (lambda v: _is_number(v) and v >= 0, "it must be a number >= 0"),
    "stopping_step": (lambda v: _is_int(v) and v >= 0,
                      "it must be an integer >= 0 (evaluations without improvement before training stops)"),
    "eval_step": (lambda v: _is_int(v) and v >= 0, "it must be an integer >= 0 (epochs between validations)"),
    "eval_memory_budget_mb": (lambda v: _is_number(v) and v > 0,
                              "it must be a number of MB > 0 (the largest block evaluation scoring keeps alive)"),
    "seed": (lambda v: _is_int(v), "it must be an integer"),
    "topk": (lambda v: (_is_int(v) and v >= 1) or (isinstance(v, list) and v and all(_is_int(k) and k >= 1 for k in v)),
             "it must be a positive integer or a list of them, e.g. [10, 20]"),
    "load_col": (lambda v: v is None or (isinstance(v, dict) and all(isinstance(c, list) for c in v.values())),
                 "it must be ~ (load every column) or a mapping of file suffix to field names, "
                 "e.g. {inter: [user_id, item_id, rating]}"),
    "learner": (lambda v: isinstance(v, str) and v.lower() in ("adam", "adamw", "sgd", "adagrad", "rmsprop", "sparse_adam"),
                "choose one of adam, adamw, sgd, adagrad, rmsprop, sparse_adam"),
}


def check_general_settings(config) -> None:
    """RecBole's general settings, checked the way ``check_config`` checks a model's."""
    for key, (test, rule) in GENERAL_RULES.items():
        if key not in config.final_config_dict:
            continue
        value = config[key]
        if not test(value):
            raise ConfigError(f"The setting '{key}' = {value!r} ({config.source_of(key)}) is invalid: {rule}.")
