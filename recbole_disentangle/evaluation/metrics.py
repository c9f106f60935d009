"""Per-user ranking metrics of the papers' protocol, as MultVAE's code defines them.

A metric is a function ``(hits, n_targets) -> per-user values``: ``hits`` (B, k) is 1.0 where
the item ranked at that position (best first, the top k only) is a target, ``n_targets`` (B,)
the number of each user's targets. :data:`RANKING_METRICS` names each one; ``name@k`` asks for
it at cut-off k. A new metric is one function here and one entry in :data:`RANKING_METRICS`; a
protocol lists the ``name@k`` it reports (``evaluation/protocols.py``).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch


def _discounts(k: int, device) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, device=device, dtype=torch.float))


def ndcg(hits: torch.Tensor, n_targets: torch.Tensor) -> torch.Tensor:
    """Binary gains 1/log2(rank + 2) over the ideal DCG of min(k, number of targets) hits."""
    k = hits.shape[1]
    discounts = _discounts(k, hits.device)
    dcg = (hits * discounts).sum(1)
    ideal_discounts = torch.cumsum(discounts, 0)
    idcg = ideal_discounts[(n_targets.clamp(max=k) - 1).long().clamp(min=0)]
    return dcg / idcg


def recall(hits: torch.Tensor, n_targets: torch.Tensor) -> torch.Tensor:
    """Hits in the top k / min(k, number of targets) (MultVAE's normalisation, not / targets)."""
    return hits.sum(1) / n_targets.clamp(max=hits.shape[1])


RANKING_METRICS = {"ndcg": ndcg, "recall": recall}


def parse_metric(name: str) -> tuple[str, int]:
    """'ndcg@100' -> ('ndcg', 100)."""
    metric, _, k = name.lower().partition("@")
    if metric not in RANKING_METRICS or not k.isdigit() or int(k) < 1:
        raise ValueError(f"Unknown ranking metric {name!r}: give name@k with name one of {', '.join(RANKING_METRICS)}.")
    return metric, int(k)


def ranking_metrics(scores: torch.Tensor, targets: torch.Tensor,
                    names=("ndcg@100", "recall@20", "recall@50")) -> dict[str, torch.Tensor]:
    """Each metric of ``names`` for each user (default: the paper protocol's).

    ``scores`` (B, n_items) with -inf where an item must not be ranked; ``targets`` (B, n_items)
    bool. The top items are found once, for the largest k (at most the number of items).
    """
    top = top_items(scores, names)
    return metrics_from_hits(targets.gather(1, top).float(), targets.sum(1).float(), names)


def top_items(scores: torch.Tensor, names) -> torch.Tensor:
    """The indices of the best-scored items, best first, (B, the largest k of ``names``, at most
    the number of items): found once for every metric."""
    k_max = min(max(parse_metric(name)[1] for name in names), scores.shape[1])
    return torch.topk(scores, k_max, dim=1).indices


def metrics_from_hits(hits: torch.Tensor, n_targets: torch.Tensor, names) -> dict[str, torch.Tensor]:
    """Each metric of ``names`` for each user from ``hits`` (B, k_max) of :func:`top_items`'s ranking
    and ``n_targets`` (B,): :func:`ranking_metrics` for callers that hold targets sparse."""
    k_max = hits.shape[1]
    return {name: RANKING_METRICS[metric](hits[:, : min(k, k_max)], n_targets)
            for name, metric, k in ((name, *parse_metric(name)) for name in names)}


def summarise(per_user: dict[str, torch.Tensor]) -> OrderedDict:
    """Mean and standard error (std / sqrt(n)) over users, as the papers report them."""
    result = OrderedDict()
    for name, values in per_user.items():
        values = values.double()
        result[name] = round(values.mean().item(), 5)
        result[f"{name}_se"] = round((values.std(unbiased=True) / math.sqrt(len(values))).item(), 5) if len(values) > 1 else 0.0
    result["users"] = int(len(next(iter(per_user.values()))))
    return result
