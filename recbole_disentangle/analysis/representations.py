"""What the analysis reads from a trained model and its data set, as plain arrays.

Any model exposing MacridVAE's parts works (:class:`recbole_disentangle.model.base.ConceptModel`):
``item_embedding`` (h_i), ``prototypes`` (m_k), ``tau``, ``similarity``, ``log_concepts()``,
``encode(batch, log_c)``, ``user_rows(users)``, and optionally ``concept_logits()``
(SEM-MacridVAE inherits all of them).

The concept of an item is always the mode of p(c_i), arg max_k s_ik (:func:`item_concepts`),
never read from ``log_concepts()``: at test time that is the softmax of s_i by default
(``test_assignment: softmax``), not a one-hot vector. ``log_concepts()`` is used only where the
model's own test-time computation is meant (the user encoder, the decoder's scores).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from recbole.utils import FeatureType

from recbole_disentangle.data.fields import loaded_item_fields
from recbole_disentangle.errors import ConfigError, DatasetError
from recbole_disentangle.model.base import CONCEPT_MODEL_PARTS
from recbole_disentangle.model.layers import similarity_matrix

REQUIRED_PARTS = CONCEPT_MODEL_PARTS
TITLE_FIELDS = ("movie_title", "title", "item_title", "name")
# Looked for, in this order, when no category field is named (planted data: concept; ml-100k: class).
CATEGORY_FIELDS = ("concept", "class", "category", "categories", "genre")
MULTI_LABEL_RULES = ("most_frequent", "first")


def check_model(model) -> None:
    missing = [part for part in REQUIRED_PARTS if not hasattr(model, part)]
    if missing:
        raise ConfigError(
            f"{type(model).__name__} lacks {', '.join(missing)}: the analysis needs a model with MacridVAE's "
            f"parts ({', '.join(REQUIRED_PARTS)}), e.g. MacridVAE or SEM-MacridVAE."
        )


@dataclass
class ModelView:
    """Item and user representations of a trained model (item index = RecBole internal id)."""

    item_repr: np.ndarray  # (n_items, d) h_i; row 0 is RecBole's padding item
    prototypes: np.ndarray  # (K, d) m_k
    concept_logits: np.ndarray  # (n_items, K) s_ik = sim(h_i, m_k) / tau (Eq. 6)
    concept_probs: np.ndarray  # (n_items, K) p(c_i) = softmax_k s_ik (Eq. 6)
    concepts: np.ndarray  # (n_items,) arg max_k s_ik, the inferred concept: the mode of p(c_i)
    trained_items: np.ndarray  # (n_items,) bool: the item occurs in the training interactions
    similarity: str
    tau: float

    @property
    def n_concepts(self) -> int:
        return self.prototypes.shape[0]


@torch.no_grad()
def concept_logits(model) -> torch.Tensor:
    """s_ik = sim(h_i, m_k) / tau for every item, (n_items, K), as the model computes them (Eq. 6)."""
    if hasattr(model, "concept_logits"):
        return model.concept_logits().detach()
    check_model(model)  # similarity and tau: no silent default (tau = 1 would rescale every s_ik)
    return similarity_matrix(model.item_embedding.detach(), model.prototypes.detach(), model.similarity) / float(model.tau)


@torch.no_grad()
def item_concepts(model, logits: torch.Tensor | None = None) -> np.ndarray:
    """The hard concept of every item, (n_items,): the mode of p(c_i), arg max_k s_ik.

    The paper's "concept of an item" (concept maps, sizes, alignment, traversal pools). Taken from
    the logits, not from ``log_concepts()``: with ``test_assignment: softmax`` (the default) that is
    a soft c_i, and anything summing or thresholding it would count fractions of items.
    """
    logits = concept_logits(model) if logits is None else logits
    return logits.argmax(dim=-1).cpu().numpy()


@torch.no_grad()
def model_view(model, history_counts: np.ndarray | None = None) -> ModelView:
    check_model(model)
    model.eval()
    similarity, tau = model.similarity, float(model.tau)
    h, m = model.item_embedding.detach(), model.prototypes.detach()
    logits = concept_logits(model)
    # p(c_i) itself, not the test-time c_i (one-hot or softmax, by test_assignment): the users'
    # confidence sums (Sec. 3.3) need it.
    probs = torch.softmax(logits, dim=-1)
    if history_counts is None:
        history = getattr(model, "history", None)
        history_counts = np.asarray(history.sum(axis=0)).ravel() if history is not None else np.ones(h.shape[0])
    trained = np.asarray(history_counts).ravel() > 0
    trained[0] = False  # padding
    return ModelView(
        item_repr=h.cpu().numpy().astype(np.float64),
        prototypes=m.cpu().numpy().astype(np.float64),
        concept_logits=logits.cpu().numpy().astype(np.float64),
        concept_probs=probs.cpu().numpy().astype(np.float64),
        concepts=item_concepts(model, logits),
        trained_items=trained,
        similarity=similarity,
        tau=tau,
    )


@torch.no_grad()
def user_components(model, users, batch_size: int = 1024) -> np.ndarray:
    """mu_u^(k) for the given internal user ids, (n_users, K, d), in eval mode (z = mu)."""
    model.eval()
    log_c = model.log_concepts()
    users = torch.as_tensor(np.asarray(users), dtype=torch.long)
    parts = []
    for start in range(0, len(users), batch_size):  # memory chunks, not a per-user loop
        _, mu, _ = model.encode(model.user_rows(users[start : start + batch_size]), log_c)
        parts.append(mu.cpu().numpy().astype(np.float64))
    if not parts:
        return np.zeros((0, model.prototypes.shape[0], model.prototypes.shape[1]))
    return np.concatenate(parts)


def user_confidence(model, users, concept_probs: np.ndarray) -> np.ndarray:
    """sum_{i: x_ui > 0} c_ik per user and concept (Sec. 3.3), (n_users, K)."""
    history = model.history[np.asarray(users)]
    return np.asarray(history @ concept_probs)


# ---- the data set side ------------------------------------------------------------------
def item_tokens(dataset) -> np.ndarray:
    return np.asarray(dataset.field2id_token[dataset.iid_field], dtype=object)


def _seq_tokens(dataset, field: str) -> list[list[str]]:
    values = dataset.item_feat[field].numpy()
    vocab = dataset.field2id_token[field]
    if values.ndim == 1:
        values = values[:, None]
    return [[str(vocab[v]) for v in row if v != 0] for row in values]


def item_titles(dataset, field: str | None = None) -> list[str]:
    """A readable name per internal item id: the title field's tokens joined, else the item token."""
    tokens = item_tokens(dataset)
    feat = dataset.item_feat
    names = [field] if field else [f for f in TITLE_FIELDS if feat is not None and f in feat.columns]
    if not names or feat is None or names[0] not in feat.columns:
        return [str(t) for t in tokens]
    name = names[0]
    if dataset.field2type[name] in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
        titles = [" ".join(seq) for seq in _seq_tokens(dataset, name)]
    else:
        titles = [str(v) for v in feat[name].numpy()]
    return [title or str(token) for title, token in zip(titles, tokens)]


def item_file_fields(dataset) -> list[str]:
    """Field names in the header of the data set's .item file ([] when it cannot be read).

    Loaded or not: an error can then tell "not in the file" from "in the file, not in load_col".
    """
    path = Path(str(getattr(dataset, "dataset_path", ""))) / f"{dataset.dataset_name}.item"
    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline()
    except OSError:
        return []
    return [column.split(":")[0] for column in header.rstrip("\n").split("\t") if column]


def _no_field_message(dataset, field: str) -> str:
    available = loaded_item_fields(dataset)
    message = (
        f"The item file of '{dataset.dataset_name}' has no field '{field}' to take categories from "
        f"(its loaded fields: {', '.join(available) or 'none'}). Pass --category_field with one of them"
    )
    if field in item_file_fields(dataset):
        return message + f"; '{field}' is in {dataset.dataset_name}.item but not loaded: add it to load_col."
    return message + ", and make sure load_col loads it."


def category_field(dataset, requested: str | None = None) -> str | None:
    """The item field that holds ground-truth categories, or None when there is none to use.

    ``requested`` (``--category_field``) must be a loaded item field: a ConfigError names it and
    the loaded fields otherwise. Without a request, the first of :data:`CATEGORY_FIELDS` the item
    file loaded; None when it loaded none of them (the caller says so loudly).
    """
    feat = dataset.item_feat
    if requested is not None:
        if feat is None or requested not in feat.columns:
            raise ConfigError(f"--category_field '{requested}': " + _no_field_message(dataset, requested))
        return requested
    if feat is None:
        return None
    return next((f for f in CATEGORY_FIELDS if f in feat.columns), None)


def item_categories(dataset, field: str, rule: str = "most_frequent") -> np.ndarray:
    """Ground-truth category label per internal item id (None where the item has none).

    A token field gives its token. A token_seq field (ml-100k's ``class`` lists several genres)
    is reduced to one label by ``rule``: ``most_frequent`` = the item's genre that is most frequent
    in the whole catalog (ties: the one listed first), ``first`` = the genre listed first.
    """
    if dataset.item_feat is None or field not in dataset.item_feat.columns:
        raise DatasetError(_no_field_message(dataset, field))
    if rule not in MULTI_LABEL_RULES:
        raise ConfigError(f"multi_label rule '{rule}' is unknown: choose one of {', '.join(MULTI_LABEL_RULES)}.")
    ftype = dataset.field2type[field]
    if ftype not in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
        raise DatasetError(f"Field '{field}' is {ftype.value}; categories must be a token or token_seq field.")
    labels = _seq_tokens(dataset, field)
    if rule == "most_frequent":
        freq = Counter(label for seq in labels for label in seq)
        chosen = [max(seq, key=lambda g: (freq[g], -seq.index(g))) if seq else None for seq in labels]
    else:
        chosen = [seq[0] if seq else None for seq in labels]
    chosen[0] = None  # padding item
    return np.asarray(chosen, dtype=object)


def float_item_fields(dataset, prefix: str = "factor_") -> list[str]:
    """The planted factor fields of a synthetic data set (float item fields named ``factor_*``)."""
    feat = dataset.item_feat
    if feat is None:
        return []
    return [f for f in feat.columns if f.startswith(prefix) and dataset.field2type[f] == FeatureType.FLOAT]
