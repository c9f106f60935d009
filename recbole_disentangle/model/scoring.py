"""Evaluation-time scoring of the concept-mixture decoder: item side once per pass, items and
users in chunks under a memory budget (issue 14).

The decoder's score ln sum_k c_ik exp(sim(z_u^(k), h_i) / tau) needs a (users, K, items) block of
logits. Scored at once, that block is K times the (users, items) score matrix the evaluator
ranks, and three of them are alive inside ``torch.logsumexp`` (the logits, logits - max, their
exp): at 200k items and eval_batch_size 10^8 (500 users) that is 8 GB. Here the block is cut into
(user chunk, item chunk) pieces whose size ``eval_memory_budget_mb`` bounds, and the log-sum-exp
is done in place, so one piece is alive at a time. The item side (ln c_i and 1 / |h_i|)
is computed by the model once per evaluation pass (:class:`ItemSide`), not once per batch.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recbole_disentangle.model.layers import EPS

# Used when a config predates the key (checkpoints of earlier versions); properties/overall.yaml
# holds the documented default.
DEFAULT_EVAL_MEMORY_BUDGET_MB = 256
# Below this many items a chunk's matrix product is dominated by per-call overhead: users are cut
# first, down to one user, before items are cut below it.
MIN_ITEM_CHUNK = 1024
FLOAT_BYTES = 4


@dataclass
class ItemSide:
    """What scoring needs of every item, fixed during an evaluation pass."""

    log_c: torch.Tensor  # ln c_i, (n_items, K): the test-time assignment of Eq. 6
    item_repr: torch.Tensor  # h_i, (n_items, d), the parameter itself (no copy)
    # 1 / (tau |h_i|) for cosine, 1 / tau for the inner product, (n_items,): applied to the logits,
    # so that no normalised (n_items, d) copy of h is kept (as large as h: 160 MB at 200k x 200)
    logit_scale: torch.Tensor
    key: tuple  # the parameters (storage, in-place version) and settings it was computed from

    @classmethod
    def of(cls, log_c: torch.Tensor, item_repr: torch.Tensor, tau: float, cosine: bool, key: tuple) -> "ItemSide":
        if cosine:  # F.normalize's denominator, max(|h_i|, EPS)
            scale = 1.0 / (item_repr.norm(dim=-1).clamp_min(EPS) * tau)
        else:
            scale = torch.full((item_repr.shape[0],), 1.0 / tau, dtype=item_repr.dtype, device=item_repr.device)
        return cls(log_c, item_repr, scale, key)


def chunk_sizes(n_users: int, n_items: int, n_concepts: int, budget_mb: float) -> tuple[int, int]:
    """(users, items) per chunk so that one (users, K, items) float32 block fits ``budget_mb``.

    Whole item rows while they fit (fewest matrix products); otherwise items are cut, and users
    too once the item chunk reaches :data:`MIN_ITEM_CHUNK`. At least one user and one item.
    """
    pairs = max(1, int(budget_mb * 2**20) // (n_concepts * FLOAT_BYTES))  # (user, item) pairs per block
    item_chunk = min(n_items, max(pairs // max(n_users, 1), min(pairs, MIN_ITEM_CHUNK)))
    user_chunk = max(1, min(n_users, pairs // item_chunk))
    return user_chunk, item_chunk


def logsumexp_in_place(values: torch.Tensor, dim: int) -> torch.Tensor:
    """``torch.logsumexp(values, dim)`` overwriting ``values``: no temporaries of its size.

    As torch does, a slice that is all -inf gives -inf (its max is taken as 0, not -inf - -inf).
    """
    peak = values.amax(dim, keepdim=True)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    return values.sub_(peak).exp_().sum(dim).log_().add_(peak.squeeze(dim))


def mixture_scores(z: torch.Tensor, items: ItemSide, cosine: bool, budget_mb: float) -> torch.Tensor:
    """ln sum_k c_ik exp(sim(z_u^(k), h_i) / tau) for every user of ``z`` (B, K, d) and every item,
    (B, n_items): :meth:`MacridVAE.scores` at test time, computed chunk by chunk."""
    if cosine:
        z = F.normalize(z, dim=-1, eps=EPS)
    n_users, n_concepts, _ = z.shape
    n_items = items.item_repr.shape[0]
    log_c_by_concept = items.log_c.t()  # (K, n_items), a view
    scores = torch.empty(n_users, n_items, dtype=z.dtype, device=z.device)
    user_chunk, item_chunk = chunk_sizes(n_users, n_items, n_concepts, budget_mb)
    for first_user in range(0, n_users, user_chunk):
        users = slice(first_user, first_user + user_chunk)
        for first_item in range(0, n_items, item_chunk):
            chunk = slice(first_item, first_item + item_chunk)
            logits = torch.matmul(z[users], items.item_repr[chunk].t())  # (users, K, items): the one block
            logits.mul_(items.logit_scale[chunk]).add_(log_c_by_concept[:, chunk].unsqueeze(0))
            scores[users, chunk] = logsumexp_in_place(logits, dim=1)
            del logits  # else it stays alive while the next chunk's block is allocated: two blocks, not one
    return scores


def pair_mixture_scores(z_rows: torch.Tensor, items: ItemSide, item_ids: torch.Tensor, cosine: bool) -> torch.Tensor:
    """The same score for pairs: row p of ``z_rows`` (P, K, d) with item ``item_ids[p]``, (P,).

    A batched product per pair, so no (P, K, d) product is formed beside ``z_rows``.
    """
    if cosine:
        z_rows = F.normalize(z_rows, dim=-1, eps=EPS)
    logits = torch.bmm(z_rows, items.item_repr[item_ids].unsqueeze(2)).squeeze(2)  # (P, K)
    return torch.logsumexp(logits * items.logit_scale[item_ids].unsqueeze(1) + items.log_c[item_ids], dim=1)


__all__ = ["DEFAULT_EVAL_MEMORY_BUDGET_MB", "CachedItemSide", "ItemSide", "chunk_sizes", "logsumexp_in_place", "mixture_scores",
           "pair_mixture_scores"]


class CachedItemSide:
    """MacridVAE's :meth:`~recbole_disentangle.model.base.ModelHooks.evaluation_cache` (a mixin):
    the item side computed once per evaluation pass, scoring in budgeted chunks. It reads the
    model's ``log_concepts``, ``item_embedding``, ``prototypes``, ``concept_active``, ``tau``,
    ``similarity``, ``test_assignment`` and ``eval_memory_budget_mb``."""

    # Evaluation (either protocol) reads the item side through evaluation_item_side, computed once
    # per pass inside evaluation_cache(), and scores in chunks that eval_memory_budget_mb bounds
    # (model/scoring.py). Training keeps scores / pair_scores: it needs gradients and fresh Gumbel
    # samples of c_i every step.
    _evaluation_depth = 0  # how many evaluation_cache() blocks are open (the trainer's and the protocol's nest)
    _cached_item_side: ItemSide | None = None

    @contextmanager
    def evaluation_cache(self):
        """:meth:`ModelHooks.evaluation_cache`: inside it, ln c_i and 1 / |h_i| are computed
        once and reused by every batch; dropped when the outermost block ends or the model trains."""
        self._evaluation_depth += 1
        try:
            yield self
        finally:
            self._evaluation_depth -= 1
            if self._evaluation_depth == 0:
                self._cached_item_side = None

    def train(self, mode: bool = True):
        if mode:  # parameters are about to change; the version check below would also catch it
            self._cached_item_side = None
        return super().train(mode)

    def evaluation_item_side(self) -> ItemSide:
        """ln c_i, h_i and the logits' scale 1 / (tau |h_i|) (cosine) as scoring reads them.

        Reused only inside :meth:`evaluation_cache`, in eval mode without autograd, and only while
        h, m and the active concepts are the tensors (storage and in-place version: an optimizer
        step or ``load_state_dict`` bumps it) and settings it was computed from: never stale.
        """
        parts = (self.item_embedding, self.prototypes, self.concept_active)
        key = (self.training, self.test_assignment, self.similarity, self.tau,
               *((t.device, t.data_ptr(), t._version) for t in parts))
        cached = self._cached_item_side
        if cached is not None and cached.key == key:
            return cached
        side = ItemSide.of(self.log_concepts(), self.item_embedding, self.tau, self.similarity == "cosine", key)
        if self._evaluation_depth > 0 and not self.training and not torch.is_grad_enabled():
            self._cached_item_side = side
        return side

    def item_scores(self, z: torch.Tensor, items: ItemSide) -> torch.Tensor:
        """Every item's score for the users of ``z`` (B, K, d), (B, n_items), in budgeted chunks."""
        return mixture_scores(z, items, self.similarity == "cosine", self.eval_memory_budget_mb)
