"""MacridVAE's loss with sampled softmax, computed on the rows a step needs (issue 14).

With S sampled negatives the decoder reads h_i and c_i of the batch's items and the samples
only, and the encoder reads t_i of the batch's items only; yet the full-catalog step computes
s_ik = sim(h_i, m_k)/tau and a Gumbel sample for all N items, gives h and t dense (N, d)
gradients, and Adam then moves all N x d rows of both tables (its momentum moves rows whose
gradient is 0). Here:

* the rows R = (batch items) U (samples) of h are gathered once with a sparse-gradient embedding
  lookup, and c_i is drawn for those rows only. The Gumbel noise of different items is
  independent, and each item of R gets one c_i per step that the encoder and the decoder share,
  as before: the estimator is the same in distribution, its cost O(|R| K d);
* t is gathered for the batch's items only, so the encoder's gradient is (rows of t, values);
* ``reg_weight`` is a lazy L2: reg_weight * (|h_i|^2 over R + |t_i|^2 over the batch's items +
  |m|^2 + f_nn's weights), where full softmax penalises every row of h and t every step. An item
  is pulled toward 0 in the steps that use it, so rare items are regularised less than under the
  full penalty (the usual "lazy" regularisation of sparse embedding training);
* h and t are then the model's ``row_sparse_parameters``: the trainer updates them with a row-wise
  (lazy) Adam that touches the rows in their sparse gradients only (optim.RowSparseAdam, built by the trainer).

What is still catalog-sized in a step: nothing the step computes. ``prototype_recentring`` (off
by default) re-centres m_k over all trained items before each step, O(N K d) without gradients;
SEM-MacridVAE's category loss sums over every item with a category, so it refuses sampled softmax.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbole_disentangle.errors import ConfigError
from recbole_disentangle.model.layers import SparseRows, importance_log_normaliser, log_concept_assignment


def check_sampled_settings(config) -> None:
    """What the row-wise updates cannot honour, refused with a ConfigError (MacridVAE.check_config)."""
    if not config["sampled_negatives"]:
        return

    def fail(key, rule):
        raise ConfigError(f"{config['model']}: '{key}' = {config[key]!r} is invalid: {rule}.")

    # h and t are trained by a row-wise Adam (optim.RowSparseAdam): an Adam learner only; and
    # torch's clip_grad_norm_ cannot read sparse gradients.
    if str(config["learner"]).lower() != "adam":
        fail("learner", "with sampled_negatives > 0 the item tables are trained by a row-wise Adam; use 'adam'")
    if config["clip_grad_norm"]:
        fail("clip_grad_norm", "with sampled_negatives > 0 h and t get sparse gradients, which torch's "
             "clip_grad_norm_ cannot read; leave it unset (~)")


def sampled_step_loss(model, batch: SparseRows) -> torch.Tensor:
    """ELBO loss of ``model`` (a MacridVAE with ``sampled_negatives`` > 0) for ``batch``, reading
    and differentiating only the rows of h and t the batch and the samples need."""
    sampled = model.draw_negatives()
    nnz = batch.cols.numel()
    # R: sorted distinct ids of the batch's items and the samples; ``local`` maps both into R.
    rows, local = torch.unique(torch.cat((batch.cols, sampled)), return_inverse=True)
    h = F.embedding(rows, model.item_embedding, sparse=True)  # (|R|, d), sparse gradient on h
    log_c = log_concept_assignment(model.concept_logits(h), model.training, model.gumbel_temperature, model.test_assignment)

    # The encoder's rows: the batch's items only, so t gets no (zero) gradient rows for samples,
    # which the lazy Adam would still move by their momentum.
    items, item_cols = torch.unique(batch.cols, return_inverse=True)
    t = F.embedding(items, model.encoder.context, sparse=True)
    encoder_batch = SparseRows(batch.rows, item_cols, batch.values, batch.batch_size)
    z, mu, log_var_ratio = model.encode(encoder_batch, log_c[torch.searchsorted(rows, items)], context=t)

    decoder_batch = SparseRows(batch.rows, local[:nnz], batch.values, batch.batch_size)
    negatives = (local[nnz:], model.sampling_probs[sampled])
    loss = model.sampled_recon_loss(z, log_c, decoder_batch, negatives, table=h)
    loss = loss + model.beta_tensor() * model.kl_loss(mu, log_var_ratio)
    if model.reg_weight > 0:
        # t is counted by its gathered rows, as h is
        dense_weights = (model.prototypes, *(w for w in model.encoder.weight_matrices() if w is not model.encoder.context))
        squares = h.pow(2).sum() + t.pow(2).sum() + sum(w.pow(2).sum() for w in dense_weights)
        loss = loss + model.reg_weight * squares
    return loss


class SampledSoftmax:
    """MacridVAE's sampled-softmax parts (a mixin): the sampling distribution q, the draw of the
    negatives, the log-Q corrected loss, and the tables the trainer updates row-wise. It reads the
    model's ``history``, ``n_items``, ``sampled_negatives``, ``scores``, ``pair_scores``,
    ``item_embedding`` and ``encoder``."""

    def register_sampling_distribution(self, distribution: str) -> None:
        """q_j (``sampling_probs``) and its cumulative sum (``sampling_cdf``) as buffers."""
        self.register_buffer("sampling_probs", self._sampling_probs(distribution), persistent=False)
        # Its cumulative sum (float64, ends at exactly 1): a step draws its samples by binary
        # search, O(S log N), where torch.multinomial rebuilds the N-item distribution every call.
        cdf = self.sampling_probs.double().cumsum(0)
        self.register_buffer("sampling_cdf", cdf / cdf[-1], persistent=False)

    def _sampling_probs(self, distribution: str) -> torch.Tensor:
        """q_j of the sampled softmax; item 0 is RecBole's padding and is never sampled."""
        if distribution == "popularity":
            counts = np.asarray(self.history.sum(axis=0)).ravel()
        else:
            counts = np.ones(self.n_items)
        counts[0] = 0.0
        return torch.as_tensor(counts / counts.sum(), dtype=torch.float32)

    def draw_negatives(self) -> torch.Tensor:
        """S = ``sampled_negatives`` item ids drawn with replacement from q (``sampling_probs``)."""
        draws = torch.rand(self.sampled_negatives, dtype=torch.float64, device=self.sampling_cdf.device)
        return torch.searchsorted(self.sampling_cdf, draws, right=True).clamp_(max=self.n_items - 1)

    def sampled_recon_loss(self, z: torch.Tensor, log_c: torch.Tensor, batch: SparseRows,
                           negatives: tuple[torch.Tensor, torch.Tensor] | None = None,
                           table: torch.Tensor | None = None) -> torch.Tensor:
        """The same loss with the softmax normaliser estimated from sampled items (log-Q corrected).

        By default over the whole of h and ``log_c``, drawing its own samples; the sampled step
        (sampled_step.py) passes gathered rows instead: ``table`` (rows of h), ``log_c`` and
        ``batch.cols`` over those rows, and ``negatives`` = (the samples' rows there, their q_j).
        """
        if negatives is None:
            sampled = self.draw_negatives()
            negatives = (sampled, self.sampling_probs[sampled])
        sampled, q = negatives
        log_expected_count = torch.log(self.sampled_negatives * q)
        sampled_scores = self.scores(z, log_c, sampled, table)  # (B, S)
        # Accidental hits: sampled items the user has; they are already counted exactly.
        n_rows = log_c.shape[0]
        positive_keys = batch.rows * n_rows + batch.cols
        candidate_keys = torch.arange(batch.batch_size, device=z.device).unsqueeze(1) * n_rows + sampled
        is_positive = torch.isin(candidate_keys, positive_keys)
        positive_scores = self.pair_scores(z, log_c, batch, table)
        log_norm = importance_log_normaliser(
            positive_scores, batch.rows, sampled_scores, is_positive, log_expected_count, batch.batch_size
        )
        log_p = positive_scores - log_norm[batch.rows]
        return -(log_p * batch.values).sum() / batch.batch_size

    def row_sparse_parameters(self) -> list[nn.Parameter]:
        """The N x d tables whose gradients are row-sparse (sampled softmax: h and t), for the
        trainer's row-wise Adam; none under full softmax, which keeps one torch.optim.Adam."""
        return [self.item_embedding, self.encoder.context] if self.sampled_negatives > 0 else []
