"""User-facing control (Ma et al. 2019 Sec. 2.4, second use): adjust the learned preference, re-rank.

The decoder scores item i for user u as ln sum_k c_ik exp(sim(z_u^(k), h_i)/tau) (Sec. 2.3).
Two knobs act on it without retraining:

* a concept weight w_k >= 0 multiplies the k-th mixture term, ln sum_k w_k c_ik exp(...): w_k = 0
  mutes concept k, w_k > 1 favours it. It is applied by adding ln w_k to ln c_ik and handing that
  to the model's own ``scores``, so every model with MacridVAE's decoder is served by one code path;
* one dimension j of one component z_u^(k) set to a value (or shifted by a delta): the micro
  factor that dimension captures moves, the other dimensions stay. The concept's weight is left
  as it is (1): muting concept k as well would take z_u^(k) out of every score and the shift
  would change nothing.

Every recommended item is reported with the concept that produced it (``concept``: arg max_k of
the summands ln c_ik + sim(z_u^(k), h_i)/tau, with the model's own test-time c_i) and with its own
concept (``item_concept``: the mode of p(c_i)). The two agree with a one-hot test-time c_i; with
``test_assignment: softmax`` (the default) an item may be pulled in by another concept's component.

Concept and dimension numbers are checked (:func:`check_concept`, :func:`check_dimension`): a
negative or too large one is a ConfigError naming the valid range, never a silent wrap-around
of numpy's negative indexing.

AD-DRL (a sum of per-factor terms, s_ui = sum_k softplus(<u_k / ||u_k||, f_ik>)) is explained and
controlled here too, through the model's ``all_factor_scores``, ``fuse``, ``modality_chunks`` and
``factor_names``: :func:`explain_factors` gives each factor's share of a score,
:func:`modality_weights` the modalities' part in each fused factor, and :func:`rerank_by_factors`
re-ranks after the user scales factors up or down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from recbole_disentangle.analysis.representations import check_model, item_concepts
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.model.layers import similarity_matrix


@dataclass
class Recommendation:
    item: int  # internal id
    score: float
    concept: int  # the concept whose mixture term produced the score
    item_concept: int = -1  # the item's own concept, the mode of p(c_i)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_index(value, size: int, what: str, has: str) -> int:
    if isinstance(value, bool) or int(value) != value or not 0 <= int(value) < size:
        raise ConfigError(f"{what} {value} is out of range: the model has {has}, numbered 0..{size - 1}.")
    return int(value)


def check_concept(concept, n_concepts: int, what: str = "concept") -> int:
    """``concept`` as an int in 0..K-1, or a ConfigError naming the range (``what``: the option's name)."""
    return _check_index(concept, n_concepts, what, f"K = {n_concepts} concepts")


def check_dimension(dimension, size: int, what: str = "dimension") -> int:
    """``dimension`` as an int in 0..d-1, or a ConfigError naming the range."""
    return _check_index(dimension, size, what, f"d = {size} dimensions per concept")


@torch.no_grad()
def user_state(model, user: int) -> torch.Tensor:
    """z_u (K, d) at test time (the posterior mean) for one internal user id."""
    check_model(model)
    model.eval()
    log_c = model.log_concepts()
    _, mu, _ = model.encode(model.user_rows(torch.tensor([user])), log_c)
    return mu[0]


@torch.no_grad()
def recommend(
    model,
    user: int,
    topk: int = 10,
    *,
    z: torch.Tensor | None = None,
    concept_weights=None,
    exclude_history: bool = True,
) -> list[Recommendation]:
    """Top-k items for ``user`` from ``z`` (default: the learned z_u), with concept weights if given."""
    model.eval()
    z = user_state(model, user) if z is None else z
    log_c = model.log_concepts()
    n_concepts = log_c.shape[1]
    if concept_weights is not None:
        weights = torch.as_tensor(np.asarray(concept_weights, dtype=np.float32), device=log_c.device)
        if weights.shape != (n_concepts,) or (weights < 0).any():
            raise ValueError(f"concept_weights must be {n_concepts} numbers >= 0, got {list(np.asarray(concept_weights))}.")
        log_c = log_c + torch.log(weights)  # ln(w_k c_ik); w_k = 0 gives -inf: muted
    scores = model.scores(z.unsqueeze(0), log_c)[0].clone()
    scores[0] = float("-inf")  # padding item
    if exclude_history and getattr(model, "history", None) is not None:
        seen = torch.as_tensor(model.history[user].indices, dtype=torch.long)
        scores[seen] = float("-inf")
    similarity = getattr(model, "similarity", "cosine")
    tau = float(getattr(model, "tau", 1.0))
    terms = similarity_matrix(z, model.item_embedding, similarity) / tau + log_c.t()  # (K, items)
    producer = terms.argmax(dim=0)
    own = item_concepts(model)
    top = torch.topk(scores, min(topk, int(torch.isfinite(scores).sum())))
    return [Recommendation(int(i), float(s), int(producer[i]), int(own[i])) for s, i in zip(top.values, top.indices)]


@torch.no_grad()
def adjust_dimension(z: torch.Tensor, concept: int, dimension: int, value: float | None = None, delta: float | None = None) -> torch.Tensor:
    """A copy of z_u with z_u^(concept)_dimension set to ``value`` or shifted by ``delta``."""
    if (value is None) == (delta is None):
        raise ValueError("give exactly one of value (set the dimension) or delta (shift it).")
    concept = check_concept(concept, z.shape[0])
    dimension = check_dimension(dimension, z.shape[1])
    adjusted = z.clone()
    adjusted[concept, dimension] = value if value is not None else adjusted[concept, dimension] + delta
    return adjusted


def controlled(
    model,
    user: int,
    topk: int = 10,
    *,
    concept_weights=None,
    concept: int | None = None,
    dimension: int | None = None,
    value: float | None = None,
    delta: float | None = None,
) -> dict:
    """Before/after top-k for one adjustment: {'before': [...], 'after': [...], 'changed': n}.

    Pass ``concept_weights`` (K numbers) and/or ``concept`` + ``dimension`` + ``value``/``delta``.
    A weight of 0 on the concept whose dimension moves is refused: the muted concept's component
    takes no part in any score, so the move could not show.
    """
    z = user_state(model, user)
    adjusted = z
    if dimension is not None:
        if concept is None:
            raise ValueError("adjusting a dimension needs the concept whose component z_u^(k) it belongs to.")
        concept = check_concept(concept, z.shape[0])
        weights = None if concept_weights is None else np.asarray(concept_weights, dtype=np.float64)
        if weights is not None and weights.shape == (z.shape[0],) and weights[concept] == 0.0:
            raise ConfigError(
                f"concept {concept} has weight 0 (muted), so moving dimension {dimension} of its component "
                f"z_u^({concept}) cannot change the list: give it a weight > 0 (1 leaves it as trained)."
            )
        adjusted = adjust_dimension(z, concept, dimension, value, delta)
    before = recommend(model, user, topk, z=z)
    after = recommend(model, user, topk, z=adjusted, concept_weights=concept_weights)
    changed = len({r.item for r in after} - {r.item for r in before})
    return {"before": before, "after": after, "changed": changed}


# ---- AD-DRL: factors tied to attributes ---------------------------------------------------
@torch.no_grad()
def explain_factors(model, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Each factor's share of s_ui, (B, n, K), rows summing to 1; ``items`` (n,) for every user.

    ``model.factor_names[k]`` names factor k (its attribute, or ``free<k>``): a share of 0.6
    on ``brand`` says the item was recommended mainly for its brand.
    """
    terms = model.all_factor_scores(users, items)
    return terms / terms.sum(-1, keepdim=True)


@torch.no_grad()
def modality_weights(model, items: torch.Tensor) -> torch.Tensor:
    """alpha (n, K, M): how much each modality (``model.modalities``) makes each fused factor."""
    return model.fuse(model.modality_chunks(items))[1]


@torch.no_grad()
def rerank_by_factors(model, users: torch.Tensor, factor_weights, k: int = 10, exclude_history: bool = True):
    """Top-k (scores, items) under s_ui = sum_k w_k softplus(<u_k, f_ik>).

    ``factor_weights``: (K,) for all users, (B, K) per user, or a dict {factor name: weight}
    (unnamed factors keep 1). Training items and the padding item are never recommended
    when ``exclude_history``.
    """
    if isinstance(factor_weights, dict):
        unknown = set(factor_weights) - set(model.factor_names)
        if unknown:
            raise ValueError(f"unknown factor(s) {sorted(unknown)}; factors: {model.factor_names}")
        factor_weights = [float(factor_weights.get(name, 1.0)) for name in model.factor_names]
    weights = torch.as_tensor(factor_weights, dtype=torch.float32, device=users.device)
    scores = (model.all_factor_scores(users) * weights.view(-1, 1, model.kfac)).sum(-1)  # (B, n_items)
    scores[:, 0] = -torch.inf
    if exclude_history:
        block = model.history[users.cpu().numpy()]
        rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        scores[torch.from_numpy(rows).to(scores.device), torch.from_numpy(block.indices).long().to(scores.device)] = -torch.inf
    return torch.topk(scores, k, dim=1)
