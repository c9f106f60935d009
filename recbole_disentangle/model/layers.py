"""Pieces shared by the disentangled models (MacridVAE and its descendants).

Equation numbers refer to Ma et al., "Learning Disentangled Representations for
Recommendation" (NeurIPS 2019) and Algorithm 1 of the SEM-MacridVAE paper (TPAMI 2022).
Everything here is batched: a batch of users is a sparse (rows, cols, values) triple, never a
Python loop over users or items.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

# Algorithm 1: "We add 1e-8 to prevent division-by-zero wherever appropriate."
EPS = 1e-8

SIMILARITIES = ("cosine", "inner")


def similarity_matrix(left: torch.Tensor, right: torch.Tensor, similarity: str) -> torch.Tensor:
    """``left @ right.T`` as cosine (Eq. 6, the paper's choice) or plain inner product (its ablation)."""
    if similarity == "cosine":
        left = F.normalize(left, dim=-1, eps=EPS)
        right = F.normalize(right, dim=-1, eps=EPS)
    return left @ right.transpose(-1, -2)


# Below this temperature e^(-2/tau) (the smallest term of the cosine mixture in exp space) would
# leave float32's normal range (about e^-87), so cosine_mixture_scores falls back to log space.
EXP_SPACE_MIN_TAU = 1 / 40


class _ExpSpaceLogSumExp(torch.autograd.Function):
    """ln sum_k exp(scaled_uki + log_weight_ki) over k, computed in exp space for ``scaled`` in
    [-80, 0] (so no max needs subtracting): forward exp, multiply, sum; backward one multiply and
    one sum. torch.logsumexp over (B, K, N) plus the additions around it reads or writes the
    (B, K, N) tensor about a dozen times, forward and backward; here five (exp, multiply and sum,
    then multiply and sum)."""

    @staticmethod
    def forward(ctx, scaled: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
        mixed = scaled.exp().mul_(log_weights.exp())  # w_ki e^(scaled_uki), (B, K, N)
        total = mixed.sum(1)
        ctx.save_for_backward(mixed, total)
        return total.log()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        mixed, total = ctx.saved_tensors
        # d ln total_ui / d scaled_uki = d ln total_ui / d log_weight_ki = mixed_uki / total_ui.
        grad_scaled = mixed * (grad / total).unsqueeze(1)
        return grad_scaled, grad_scaled.sum(0)


def cosine_mixture_scores(z: torch.Tensor, h: torch.Tensor, log_c: torch.Tensor, tau: float) -> torch.Tensor:
    """ln sum_k c_ik exp(cos(z_u^(k), h_i) / tau) for every user of ``z`` (B, K, d) and every row of
    ``h`` (N, d), with ``log_c`` (N, K) = ln c_ik: MacridVAE's unnormalised ln p_ui, (B, N).

    The same value as torch.logsumexp(cos / tau + ln c, over k), computed with fewer passes over
    the (B, K, N) tensor (a fifth of a CPU epoch on ml-100k went to them): as cos <= 1, the terms
    e^((cos - 1) / tau) lie in [e^(-2/tau), 1] and need no max subtracted; the product's GEMM adds
    the -1/tau. For tau < EXP_SPACE_MIN_TAU, or c_i that do not sum to 1 (the sum is then no longer
    bounded below), use the log-space form.
    """
    left = F.normalize(z, dim=-1, eps=EPS)
    right = F.normalize(h, dim=-1, eps=EPS)
    batch, concepts, dim = left.shape
    offset = torch.full((), -1.0 / tau, dtype=left.dtype, device=left.device)
    scaled = torch.addmm(offset, left.reshape(batch * concepts, dim), right.t(), alpha=1.0 / tau)
    return _ExpSpaceLogSumExp.apply(scaled.view(batch, concepts, -1), log_c.t()) + 1.0 / tau


TEST_ASSIGNMENTS = ("mode", "softmax")


def log_concept_assignment(
    logits: torch.Tensor, training: bool, temperature: float = 1.0, test_assignment: str = "softmax"
) -> torch.Tensor:
    """ln c_i for every item: a Gumbel-softmax sample while training; at test time the
    probabilities softmax(s_i) themselves (``test_assignment=softmax``, the default: what the
    authors' released code uses, and what reproduces the paper's Table 1), or with
    ``test_assignment=mode`` the one-hot mode of p(c_i) (the paper's text: "we use the mode of
    p(C) as C"). Training sees Gumbel samples at temperature 1 of logits cos/0.1, which are soft
    for items near two prototypes; the one-hot mode then scores with an assignment the decoder
    was never trained on (about a fifth of NDCG lost on ml-100k, docs/results.md).

    ``logits`` are s_ik = sim(h_i, m_k)/tau (Eq. 6). Working in log space keeps ln c finite when a
    sampled weight underflows to 0 in float32, which would make ln(0) and its gradient NaN.
    """
    if training:
        uniform = torch.rand_like(logits).clamp_(EPS, 1.0 - EPS)
        gumbel = -torch.log(-torch.log(uniform))
        return F.log_softmax((logits + gumbel) / temperature, dim=-1)
    if test_assignment == "softmax":
        return F.log_softmax(logits, dim=-1)
    log_c = torch.full_like(logits, float("-inf"))
    return log_c.scatter_(-1, logits.argmax(dim=-1, keepdim=True), 0.0)


def gaussian_kl_to_prior(mu: torch.Tensor, log_var_ratio: torch.Tensor, sigma0: float, include_mean: bool = True) -> torch.Tensor:
    """KL( N(mu, sigma^2) || N(0, sigma0^2 I) ), summed over the last dimension.

    ``log_var_ratio`` is ln(sigma^2 / sigma0^2), the quantity the encoder outputs (negated).
    Per dimension: 0.5 * (sigma^2/sigma0^2 + mu^2/sigma0^2 - 1 - ln(sigma^2/sigma0^2)).
    With ``include_mean=False`` the mu term is left out: for a unit-norm mu (cosine MacridVAE)
    it is the constant 0.5/sigma0^2 per concept, as the authors' code notes.
    """
    kl = 0.5 * (log_var_ratio.exp() - 1.0 - log_var_ratio)
    if include_mean:
        kl = kl + 0.5 * mu.pow(2) / sigma0**2
    return kl.sum(dim=-1)


@dataclass
class SparseRows:
    """A batch of user rows of the interaction matrix in COO form (row index within the batch)."""

    rows: torch.Tensor  # (nnz,) long, in [0, batch_size)
    cols: torch.Tensor  # (nnz,) long, item ids
    values: torch.Tensor  # (nnz,) float, x_ui
    batch_size: int

    def to_dense(self, n_cols: int) -> torch.Tensor:
        dense = torch.zeros(self.batch_size, n_cols, device=self.values.device, dtype=self.values.dtype)
        dense[self.rows, self.cols] = self.values
        return dense


def segment_sum(values: torch.Tensor, segments: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Sum of ``values`` rows grouped by ``segments`` (e.g. per user of a batch)."""
    out = values.new_zeros((n_segments,) + values.shape[1:])
    return out.index_add_(0, segments, values)


def segment_logsumexp(values: torch.Tensor, segments: torch.Tensor, n_segments: int) -> torch.Tensor:
    """log-sum-exp of ``values`` (nnz,) or (nnz, k) within each segment; -inf for an empty one."""
    shape = (n_segments,) + values.shape[1:]
    index = segments.view((-1,) + (1,) * (values.dim() - 1)).expand_as(values)
    peak = values.new_full(shape, float("-inf")).scatter_reduce(0, index, values.detach(), "amax")
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = segment_sum((values - peak[segments]).exp(), segments, n_segments)
    return total.log() + peak


def sampled_row_dots(left: torch.Tensor, right: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """<left[rows[e]], right[cols[e]]> for every e: (left @ right.T) at the given entries only.

    On CPU and CUDA one SDDMM (``torch.sparse.sampled_addmm`` on a CSR pattern, entries sorted by
    row then column); elsewhere a gather of both sides, (nnz, d) each.
    """
    if rows.numel() == 0:
        return left.new_zeros(0)
    if left.device.type not in ("cpu", "cuda"):
        return (left[rows] * right[cols]).sum(-1)
    n_rows, n_cols = left.shape[0], right.shape[0]
    order = torch.argsort(rows * n_cols + cols)
    crow = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        pattern = torch.sparse_csr_tensor(
            crow, cols[order], left.new_zeros(order.numel()), (n_rows, n_cols), check_invariants=False
        )
    dots = torch.sparse.sampled_addmm(pattern, left, right.t(), beta=0.0).values()
    return torch.empty_like(dots).index_copy_(0, order, dots)


class _SparseRowsTimes(torch.autograd.Function):
    """S @ dense for S given by (row, col, value) triples, with a backward that touches only S's entries.

    ``torch.sparse.mm``'s backward takes the gradient of S's values from the dense product
    grad_out @ dense.T, (rows x n_cols), then keeps S's entries: in the encoder that is a
    (B*K x n_items) product per step, the largest matrix product of a step at 50k+ items and
    one that sampled softmax cannot shrink. Here the gradient of value e is the dot product
    <grad_out[row_e], dense[col_e]> alone, and the gradient of the dense side S.T @ grad_out
    (as torch computes it).
    """

    @staticmethod
    def forward(ctx, values, dense, rows, cols, n_rows):
        indices = torch.stack((rows, cols))
        matrix = torch.sparse_coo_tensor(indices, values, (n_rows, dense.shape[0]), check_invariants=False)
        ctx.save_for_backward(values, dense, rows, cols)
        ctx.n_rows = n_rows
        return torch.sparse.mm(matrix, dense)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        values, dense, rows, cols = ctx.saved_tensors
        grad_values = grad_dense = None
        if ctx.needs_input_grad[0]:
            grad_values = sampled_row_dots(grad_out, dense, rows, cols)
        if ctx.needs_input_grad[1]:
            transposed = torch.sparse_coo_tensor(
                torch.stack((cols, rows)), values, (dense.shape[0], ctx.n_rows), check_invariants=False
            )
            grad_dense = torch.sparse.mm(transposed, grad_out)
        return grad_values, grad_dense, None, None, None


def sparse_rows_times(
    values: torch.Tensor, dense: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, n_rows: int
) -> torch.Tensor:
    """(n_rows, d) = S @ ``dense``, S (n_rows x len(dense)) holding ``values`` at (``rows``, ``cols``)."""
    return _SparseRowsTimes.apply(values, dense, rows, cols, n_rows)


class ConceptEncoder(nn.Module):
    """q(z_u^(k) | x_u, C) for every concept k at once (Sec. 2.3, Algorithm 1 lines 17-26).

    The first layer is the context table t_i (n_items x d, "the context representations are its
    first layer" in the authors' code); f_nn then maps d -> hidden... -> 2d with tanh between
    layers and dropout before every layer except the last. Following the released code, the
    concept-weighted input x_u * c_k is L2-normalised (the sqrt(sum c_ik^2) of Eq. in Sec. 2.3
    for binary x) and gets its own dropout mask per concept.
    """

    def __init__(self, n_items: int, embedding_size: int, hidden_sizes: list[int], dropout: float):
        super().__init__()
        self.embedding_size = embedding_size
        self.dropout = dropout
        self.context = nn.Parameter(torch.empty(n_items, embedding_size))  # t_i
        self.context_bias = nn.Parameter(torch.empty(embedding_size))
        sizes = [embedding_size, *hidden_sizes, 2 * embedding_size]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def weight_matrices(self) -> list[torch.Tensor]:
        """The weights (not biases) the L2 penalty applies to, as in the authors' code."""
        return [self.context, *(layer.weight for layer in self.layers)]

    def forward(
        self, batch: SparseRows, log_c: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (a, b): each (batch, K, d); b = -ln(sigma^2 / sigma0^2).

        ``context``: rows of t gathered by the caller, indexed by ``batch.cols`` (as ``log_c`` is);
        the sampled-softmax step passes the batch's rows so that t's gradient has those rows only.
        """
        context = self.context if context is None else context
        n_concepts = log_c.shape[1]
        # x_ui * c_ik for every stored (u, i) and every k: (nnz, K).
        weighted = batch.values.unsqueeze(1) * log_c[batch.cols].exp()
        # sqrt(sum + EPS^2), not sqrt(sum): the same value (EPS^2 = 1e-16 vanishes beside any
        # sum of squares a float32 can tell from 0, and an empty concept still gets norm EPS),
        # but a finite gradient where a concept is empty for a user (all its c_ik = 0, e.g. a
        # concept switched off by adaptive K), where d sqrt(s)/ds at s = 0 would make NaN.
        norm = (segment_sum(weighted.pow(2), batch.rows, batch.batch_size) + EPS**2).sqrt()  # (B, K)
        weighted = weighted / norm.clamp_min(EPS)[batch.rows]
        weighted = F.dropout(weighted, self.dropout, self.training)
        # sum_i w_uik t_i as one sparse product: row (u, k) of a (B*K, n_items) matrix times t.
        concept_rows = batch.rows.unsqueeze(1) * n_concepts + torch.arange(n_concepts, device=weighted.device)
        hidden = sparse_rows_times(
            weighted.reshape(-1), context, concept_rows.reshape(-1), batch.cols.repeat_interleave(n_concepts),
            batch.batch_size * n_concepts,
        ) + self.context_bias
        for layer in self.layers:
            hidden = torch.tanh(hidden)
            if layer is not self.layers[-1]:
                hidden = F.dropout(hidden, self.dropout, self.training)
            hidden = layer(hidden)
        hidden = hidden.view(batch.batch_size, n_concepts, 2 * self.embedding_size)
        return hidden[..., : self.embedding_size], hidden[..., self.embedding_size :]


def importance_log_normaliser(
    positive_scores: torch.Tensor,
    positive_rows: torch.Tensor,
    sampled_scores: torch.Tensor,
    sampled_is_positive: torch.Tensor,
    log_expected_count: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """ln Z_u of a softmax over the catalog, from the user's positives plus sampled negatives.

    Z_u = sum over the user's positives of e^s (exact) + sum over sampled j not among them of
    e^(s_j) / (S q_j) (the log-Q correction: an unbiased estimate of the rest of the catalog).
    As the samples cover the catalog, ln Z_u tends to the full-softmax normaliser.

    Args:
        positive_scores: (nnz,) scores of the stored (u, i) pairs.
        positive_rows: (nnz,) batch row of each pair.
        sampled_scores: (B, S) scores of the S shared sampled items.
        sampled_is_positive: (B, S) bool, sample j is a positive of user u (an "accidental hit").
        log_expected_count: (S,) ln(S q_j).
    """
    corrected = sampled_scores - log_expected_count
    corrected = corrected.masked_fill(sampled_is_positive, float("-inf"))
    sampled_part = torch.logsumexp(corrected, dim=1)
    positive_part = segment_logsumexp(positive_scores, positive_rows, batch_size)
    return torch.logaddexp(positive_part, sampled_part)
