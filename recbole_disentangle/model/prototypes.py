"""What keeps MacridVAE's concept prototypes m_k in shape between gradient steps.

Two optional mechanisms, both off by default, both acting on m_k (and ``concept_active``) only:
prototype re-centring (``prototype_recentring``: m_k moves toward the mean direction of its items
before each training step) and adaptive K (``adaptive_k``, SEM-MacridVAE paper Sec. 4.1.4: after
an epoch, two concepts over the same items merge). :class:`PrototypeUpkeep` is a mixin of
:class:`~recbole_disentangle.model.macridvae.MacridVAE`; it reads the model's ``concept_logits``,
``item_embedding``, ``prototypes``, ``trained_items``, ``item_degree``, ``concept_active``,
``similarity`` and ``merge_threshold``.
"""

from __future__ import annotations

from logging import getLogger

import torch
import torch.nn.functional as F

from recbole_disentangle.model.layers import EPS


def js_divergence_matrix(distributions: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats, in [0, ln 2]) between every pair of rows of ``distributions``
    (K, M), each a probability distribution: JS(P, Q) = KL(P || A)/2 + KL(Q || A)/2, A = (P + Q)/2.
    Terms with p = 0 are 0 (the limit of p ln p)."""
    p = distributions.unsqueeze(1)  # (K, 1, M)
    q = distributions.unsqueeze(0)  # (1, K, M)
    mean = 0.5 * (p + q)

    def kl_to_mean(x):
        return torch.where(x > 0, x * (torch.log(x.clamp_min(1e-30)) - torch.log(mean.clamp_min(1e-30))), torch.zeros_like(x)).sum(-1)

    return 0.5 * kl_to_mean(p) + 0.5 * kl_to_mean(q)


class PrototypeUpkeep:
    """Re-centring and merging of MacridVAE's prototypes (see the module docstring)."""

    # ---- prototype re-centring ----------------------------------------------------------
    @torch.no_grad()
    def recentre_prototypes(self, rate: float) -> None:
        """m_k <- (1 - rate) m_k + rate * |m_k| * normalise(sum_i n_i p(k|i) h_i / |h_i|), n_i = the
        item's training interactions.

        Why: h_i learns from every interaction of item i, m_k only through the Gumbel-sampled c_i;
        on planted data the items form their concept clusters within ~5 epochs while the m_k turn
        ~0.03 rad per epoch (Xavier gives m a norm 3x that of h, and Adam's step per coordinate is
        ~lr however small the noisy gradient), so the argmax of p(c_i) matches the planted
        concepts only after 40-60 epochs, often after early stopping has kept an earlier model.

        What: with cosine similarity p(k|i) = softmax_k(cos(h_i, m_k) / tau) (Eq. 6) is the
        posterior of an equal-weight mixture of von Mises-Fisher components with mean directions
        m_k / |m_k| and concentration 1 / tau; the direction above is that mixture's M-step for
        m_k (spherical soft k-means). Each item counts as often as it was adopted (n_i), as in
        the ELBO, which sums over interactions: weighted per item instead, the M-step split the
        largest, sparsely adopted concept of planted data with unequal concepts (400/250/150/100/
        100 items) and merged two small ones (concept NMI 0.71-0.82 over 5 seeds, against 0.90+
        weighted by n_i). Eq. 6 and the ELBO are unchanged: m_k still gets its gradient, this only
        moves it faster toward its items. Only the direction of m_k enters Eq. 6, so its length
        is kept.
        """
        items = self.trained_items
        p = torch.softmax(self.concept_logits()[items], dim=1)  # (n, K); switched-off concepts get 0
        p = p * self.item_degree[items].unsqueeze(1)
        directions = F.normalize(p.t() @ F.normalize(self.item_embedding[items], dim=1, eps=EPS), dim=1, eps=EPS)
        has_items = p.sum(0) > 0
        length = self.prototypes.norm(dim=1, keepdim=True)
        updated = (1.0 - rate) * self.prototypes + rate * length * directions
        self.prototypes.copy_(torch.where(has_items.unsqueeze(1), updated, self.prototypes))

    # ---- adaptive K (SEM-MacridVAE paper, Sec. 4.1.4) -----------------------------------------
    def on_epoch_end(self) -> None:
        """Called by the trainer after every training epoch."""
        if self.adaptive_k:
            self.merge_concepts()

    def concept_item_distributions(self) -> torch.Tensor:
        """p(i|k) for the active concepts, (K_active, n_trained_items): Bayes from p(k|i) =
        softmax(s_i) with a uniform p(i) over the items that have training interactions."""
        trained = self.trained_items
        p_k_given_i = torch.softmax(self.concept_logits()[trained][:, self.concept_active], dim=1)
        return (p_k_given_i / p_k_given_i.sum(0, keepdim=True).clamp_min(EPS)).t()

    @torch.no_grad()
    def merge_concepts(self) -> tuple[int, int] | None:
        """Merge the two concepts whose p(i|k) are closest if their Jensen-Shannon divergence is
        below ``merge_threshold``; returns the (kept, removed) concept indices, or None.

        One merge per call (after an epoch): merging changes p(k|i) of every item the two shared,
        so the other pairs are judged again after training on the merged model. The kept
        prototype becomes the mean of the two (for cosine the mean direction, at their mean
        length, since only the direction enters Eq. 6); the removed one stays in the tensor,
        switched off in ``concept_active``, so parameter shapes and optimizer state never change.

        What it detects: two prototypes over the same items. Two prototypes that split one
        concept cleanly cover disjoint items, as two concepts do, and are not merged (with
        prototype re-centring K = 10 stayed 10 on planted data with 5 concepts); without it the
        two prototypes of one concept overlap while they form and merge at threshold 0.15 (K = 10
        ended at 5 / 7 / 6 / 9 / 7 over 5 seeds; at 0.25 early merges, while every prototype still
        covers every item, left 1-2 concepts; docs/results.md, "Concepts that form in every run").
        """
        active = torch.nonzero(self.concept_active).view(-1)
        if len(active) < 2:
            return None
        js = js_divergence_matrix(self.concept_item_distributions())
        js.fill_diagonal_(float("inf"))
        flat = int(torch.argmin(js))
        a, b = divmod(flat, len(active))
        if js[a, b] >= self.merge_threshold:
            return None
        keep, drop = int(active[min(a, b)]), int(active[max(a, b)])
        m_keep, m_drop = self.prototypes[keep], self.prototypes[drop]
        if self.similarity == "cosine":
            length = 0.5 * (m_keep.norm() + m_drop.norm())
            merged = F.normalize(F.normalize(m_keep, dim=0, eps=EPS) + F.normalize(m_drop, dim=0, eps=EPS), dim=0, eps=EPS) * length
        else:
            merged = 0.5 * (m_keep + m_drop)
        self.prototypes[keep] = merged
        self.concept_active[drop] = False
        getLogger().info(
            f"MacridVAE adaptive K: merged concept {drop} into {keep} (JS divergence {js[a, b].item():.4g} < "
            f"{self.merge_threshold}); {int(self.concept_active.sum())} concepts remain."
        )
        return keep, drop
