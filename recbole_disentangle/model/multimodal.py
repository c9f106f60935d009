"""What the pairwise multimodal models (VBPR, AD-DRL) share: the modality settings and their
check, and RecBole's layout of N sampled negatives per positive.

Their item features come from the multimodal data set (:mod:`recbole_disentangle.data.multimodal`).
"""

from __future__ import annotations

from recbole_disentangle.data.multimodal import FEATURE_MODALITIES, MISSING_POLICIES
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.model.hyperparameters import Hyperparameter

MODALITIES = ("id", "text", "image")

# Declarations of the shared settings (each model declares ``modalities`` in its own words);
# check_modalities checks them.
FEATURE_NAMES = Hyperparameter("feature_names", "dict", "Modality -> item feature set name (<dataset>.<name>.npy); "
                               "default: the modality's name.")
MISSING_MODALITY = Hyperparameter("missing_modality", "str", "A configured modality without features: error, or skip "
                                  "(run without it, with a warning).")


def fail(config, key, rule):
    raise ConfigError(f"{config['model']}: '{key}' = {config[key]!r} is invalid: {rule}.")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_modalities(config, need_features: bool = False) -> None:
    """The shared ``modalities`` / ``feature_names`` / ``missing_modality`` settings."""
    modalities = config["modalities"]
    if not isinstance(modalities, list) or not modalities or any(m not in MODALITIES for m in modalities):
        fail(config, "modalities", f"it must be a non-empty list drawn from {', '.join(MODALITIES)}")
    if len(set(modalities)) != len(modalities):
        fail(config, "modalities", "a modality is listed twice")
    if need_features and not any(m in FEATURE_MODALITIES for m in modalities):
        fail(config, "modalities", "VBPR needs at least one feature modality (text or image); "
             "without features it is BPR, run --model=BPR")
    names = config["feature_names"] or {}
    if not isinstance(names, dict) or any(k not in FEATURE_MODALITIES for k in names):
        fail(config, "feature_names", f"it must map {' / '.join(FEATURE_MODALITIES)} to feature set names")
    if config["missing_modality"] not in MISSING_POLICIES:
        fail(config, "missing_modality", f"choose one of {', '.join(MISSING_POLICIES)}")
    neg = config["train_neg_sample_args"]
    if not neg or neg.get("distribution") in (None, "none") or not is_int(neg.get("sample_num")) or neg["sample_num"] < 1:
        fail(config, "train_neg_sample_args", "a pairwise model needs {distribution: uniform, sample_num: N} with N >= 1")
    if neg.get("dynamic"):
        fail(config, "train_neg_sample_args", "dynamic negative sampling is not supported (set dynamic: False)")


def pairwise_batch(interaction, user_field, item_field, neg_field, sample_num):
    """(users (B,), positives (B,), negatives (B, N)) from RecBole's pairwise layout.

    RecBole's TrainDataLoader repeats a batch of B positives N times (``Interaction.repeat``)
    and samples negatives so that row j*B + b holds positive b with its j-th negative
    (``AbstractSampler.sample_by_key_ids``): reshaping to (N, B) puts one positive per column.
    """
    users, positives, negatives = interaction[user_field], interaction[item_field], interaction[neg_field]
    if len(users) % sample_num:
        raise ValueError(f"a pairwise batch of {len(users)} rows cannot hold {sample_num} negatives per positive")
    batch = len(users) // sample_num
    return users[:batch], positives[:batch], negatives.view(sample_num, batch).t()
