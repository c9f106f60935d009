"""MacridVAE: Macro-micro disentangled VAE (Ma et al., NeurIPS 2019).

Implements Section 2.3 of the paper and Algorithm 1 of the SEM-MacridVAE paper. Where the text
leaves a detail open, the authors' released TensorFlow code decides (each such place says so).

Differences from RecBole's own MacridVAE (reachable as ``RecBoleMacridVAE``):
* per-concept L2 normalisation of x_u * c_k with its own dropout mask, where RecBole normalises
  x_u once before splitting by concept;
* KL against the N(0, sigma0^2 I) prior of the paper, where RecBole takes it against N(0, I);
* beta annealed over the first ``anneal_epochs`` epochs (authors' code), where RecBole anneals
  over 200000 steps;
* one training step is a batch of distinct users, each seen once per epoch, where RecBole's
  auto-encoders iterate interaction rows (weighting users by their activity);
* the decoder mixture is computed in log space, so it never overflows. At test time c_i is
  softmax(s_i) as in the authors' code and RecBole (``test_assignment: softmax``, the default);
  ``test_assignment: mode`` gives the one-hot mode the paper's text describes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_disentangle.model.base import ModelHooks
from recbole_disentangle.model.hyperparameters import Hyperparameter, boolean, int_list, integer, number, one_of
from recbole_disentangle.model.layers import (
    EPS,
    EXP_SPACE_MIN_TAU,
    SIMILARITIES,
    TEST_ASSIGNMENTS,
    ConceptEncoder,
    SparseRows,
    cosine_mixture_scores,
    gaussian_kl_to_prior,
    log_concept_assignment,
    similarity_matrix,
)
from recbole_disentangle.model.sampled_step import SampledSoftmax, check_sampled_settings, sampled_step_loss
from recbole_disentangle.model.prototypes import PrototypeUpkeep
from recbole_disentangle.model.scoring import DEFAULT_EVAL_MEMORY_BUDGET_MB, CachedItemSide, pair_mixture_scores
from recbole_disentangle.transfer import copy_to_device

SAMPLING_DISTRIBUTIONS = ("uniform", "popularity")


LOG_VAR_RATIO_BOUND = 20.0  # |ln(sigma^2 / sigma0^2)| at most this (see MacridVAE.encode)

# MacridVAE's hyper-parameters, declared once (model/hyperparameters.py): check_config checks them
# in this order, the class docstring lists them, and tests/model/test_hyperparameters.py holds
# properties/model/MacridVAE.yaml (defaults, comments) to them.
HYPERPARAMETERS = (
    Hyperparameter("kfac", "int", "K, the number of macro concepts (prototypes m_k).",
                   integer(1), "the number of concepts K must be an integer >= 1"),
    Hyperparameter("embedding_size", "int", "d, the size of each concept's component z_u^(k) and of h_i, t_i, m_k.",
                   integer(1), "d must be an integer >= 1"),
    Hyperparameter("tau", "float", "Temperature of the cosine similarities, Eq. 6 and the decoder.",
                   number(above=0, bools=True, nan=True), "it must be a number > 0"),
    Hyperparameter("std", "float", "sigma0, the prior N(0, sigma0^2 I) and the scale of sigma_u.",
                   number(above=0, bools=True, nan=True), "it must be a number > 0"),
    Hyperparameter("gumbel_temperature", "float", "Temperature of the Gumbel-softmax sample of c_i (authors: 1).",
                   number(above=0, bools=True, nan=True), "it must be a number > 0"),
    Hyperparameter("beta", "float", "Weight of the KL term (micro disentanglement, Eq. 5).",
                   number(at_least=0, bools=True, nan=True), "it must be a number >= 0"),
    Hyperparameter("reg_weight", "float", "L2 weight on h, m, t and f_nn's weights (sum of squares).",
                   number(at_least=0, bools=True, nan=True), "it must be a number >= 0"),
    Hyperparameter("dropout_prob", "float", "Dropout before every encoder layer but the last, in [0, 1).",
                   number(at_least=0, below=1, bools=True), "the dropout rate must lie in [0, 1)"),
    Hyperparameter("anneal_epochs", "int", "KL weight beta_t = min(beta, t / T), T = anneal_epochs epochs of steps; "
                   "0 = beta from the start.", integer(0), "it must be an integer >= 0 (0 = no annealing)"),
    Hyperparameter("encoder_hidden_size", "list of int", "Hidden layers of f_nn: d -> hidden... -> 2d (0 to 3 layers "
                   "in the paper's search).", int_list(1),
                   "it must be a list of positive layer widths, e.g. [] or [600]"),
    Hyperparameter("test_assignment", "str", "c_i at test time: softmax (softmax(s_i), the authors' released code, "
                   "which produced Table 1) or mode (one-hot, the paper's text).",
                   one_of(TEST_ASSIGNMENTS), f"choose one of {', '.join(TEST_ASSIGNMENTS)}"),
    Hyperparameter("similarity", "str", "cosine (the paper) or inner (its mode-collapse ablation).",
                   one_of(SIMILARITIES), f"choose one of {', '.join(SIMILARITIES)}"),
    Hyperparameter("sampled_negatives", "int", "0 = full softmax over the catalog; S > 0 = sampled softmax with S "
                   "shared samples.", integer(0), "it must be an integer >= 0 (0 = full softmax)"),
    Hyperparameter("sampling_distribution", "str", "q_j of the sampled softmax: uniform or popularity (log-Q "
                   "corrected either way).", one_of(SAMPLING_DISTRIBUTIONS),
                   f"choose one of {', '.join(SAMPLING_DISTRIBUTIONS)}"),
    Hyperparameter("adaptive_k", "bool", "SEM-MacridVAE paper Sec. 4.1.4: start with K = kfac and, after each epoch, "
                   "merge the two concepts whose p(i|k) are closest when their JS divergence < merge_threshold.",
                   boolean, "it must be True or False"),
    Hyperparameter("prototype_recentring", "float", "Before each training step m_k moves this fraction of the way to "
                   "the interaction-weighted mean direction of its items (the M-step of Eq. 6 read as a von "
                   "Mises-Fisher mixture, MacridVAE.recentre_prototypes); cosine only (inner: no effect); 0 = "
                   "gradient only, as the paper.", number(at_least=0, at_most=1),
                   "it is the fraction of the way m_k moves per step, in [0, 1] (0 = off)"),
    Hyperparameter("gpu_train_batch_size", "int", "Users per step on a GPU, where train_batch_size is not set by the "
                   "user; the default learning_rate is then scaled by sqrt(gpu_train_batch_size / train_batch_size) "
                   "(recbole_disentangle/device_settings.py); 0 = train_batch_size on every device.", integer(0),
                   "it must be an integer >= 0 (0 = train_batch_size on every device)"),
    Hyperparameter("prototype_init_scale", "float", "m_k starts at this multiple of its Xavier initialisation (cosine "
                   "only; 1 = the authors' code).", number(above=0),
                   "it multiplies m_k's Xavier initialisation: a number > 0"),
    Hyperparameter("merge_threshold", "float", "JS divergence (nats, in [0, ln 2]) under which adaptive K merges two "
                   "concepts.", number(at_least=0, at_most=math.log(2)),
                   "a Jensen-Shannon divergence in nats lies in [0, ln 2 = 0.693]"),
)


class MacridVAE(SampledSoftmax, PrototypeUpkeep, CachedItemSide, GeneralRecommender, ModelHooks):
    r"""MacridVAE with the paper's equations (the module's docstring sums them up).

    Its hyper-parameters are declared once, in :data:`HYPERPARAMETERS` (listed below, from it);
    :meth:`merge_concepts` is what ``adaptive_k`` does, :meth:`recentre_prototypes` what
    ``prototype_recentring`` does.
    """

    hyperparameters = HYPERPARAMETERS

    input_type = InputType.POINTWISE
    # quick_start feeds models with this flag batches of distinct user ids (one per user per epoch).
    train_by_user = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.kfac = config["kfac"]
        self.tau = config["tau"]
        self.sigma0 = config["std"]
        self.beta = config["beta"]
        self.dropout_prob = config["dropout_prob"]
        self.reg_weight = config["reg_weight"]
        self.similarity = config["similarity"]
        self.gumbel_temperature = config["gumbel_temperature"]
        self.test_assignment = config["test_assignment"]
        self.sampled_negatives = config["sampled_negatives"]
        self.adaptive_k = config["adaptive_k"]
        self.merge_threshold = config["merge_threshold"]
        self.prototype_recentring = config["prototype_recentring"]
        self.prototype_init_scale = config["prototype_init_scale"]
        # Bounds the (users, K, items) block of evaluation scoring (model/scoring.py); configs of
        # checkpoints written before the key existed lack it.
        self.eval_memory_budget_mb = config["eval_memory_budget_mb"] or DEFAULT_EVAL_MEMORY_BUDGET_MB

        self.set_history(dataset.inter_matrix(form="csr"))
        # Training interactions per item, and the items that have some: the only ones whose h_i
        # the data has shaped (the others keep their random initialisation), so the only ones
        # that define concepts. Under the paper protocol the held-out users' fold-in rows are
        # in the history but are not trained on.
        training_rows = self.history
        if getattr(dataset, "training_users", None) is not None:
            training_rows = self.history[np.asarray(dataset.training_users)]
        degree = np.asarray(training_rows.sum(axis=0), dtype=np.float32).ravel()
        degree[0] = 0.0  # RecBole's padding item
        self.register_buffer("item_degree", torch.from_numpy(degree), persistent=False)
        self.register_buffer("trained_items", torch.from_numpy(np.flatnonzero(degree > 0)), persistent=False)
        # beta_t = min(beta, t / T), T = anneal_epochs epochs of batches (authors' code). Under
        # the paper protocol the history also holds held-out users' fold-in rows, which are
        # not trained on: the data set then names its training users.
        n_training_users = len(getattr(dataset, "training_users", range(self.n_users_with_history)))
        batches_per_epoch = math.ceil(n_training_users / config["train_batch_size"])
        self.total_anneal_steps = config["anneal_epochs"] * batches_per_epoch
        self.register_buffer("anneal_step", torch.zeros((), dtype=torch.long))
        # Adaptive K keeps every tensor K-sized (parameters, optimizer state, checkpoints) and
        # switches merged concepts off here; saved only when on, so checkpoints of models
        # without it load as before.
        self.register_buffer("concept_active", torch.ones(self.kfac, dtype=torch.bool), persistent=self.adaptive_k)

        self.item_embedding = nn.Parameter(torch.empty(self.n_items, self.embedding_size))  # h_i
        self.prototypes = nn.Parameter(torch.empty(self.kfac, self.embedding_size))  # m_k
        self.encoder = ConceptEncoder(
            self.n_items, self.embedding_size, list(config["encoder_hidden_size"] or []), self.dropout_prob
        )
        self.register_sampling_distribution(config["sampling_distribution"])
        self.reset_parameters()

    # ---- configuration ------------------------------------------------------------------
    @classmethod
    def check_config(cls, config) -> None:
        """Each of HYPERPARAMETERS against its rule (ModelHooks.check_config), then what the sampled
        softmax's row-wise updates cannot honour."""
        super().check_config(config)
        check_sampled_settings(config)

    def reset_parameters(self) -> None:
        # Xavier-uniform weights and N(0, 0.001) biases, as in the authors' code.
        for weight in (self.item_embedding, self.prototypes, *self.encoder.weight_matrices()):
            nn.init.xavier_uniform_(weight)
        if self.similarity == "cosine":
            # Only m_k's direction enters Eq. 6, but its length sets how fast Adam turns it (about
            # lr / |m_k| radians per step, whatever the gradient's size), and Xavier makes m_k ~10x
            # longer than h_i on ml-latest-small: the items cluster in a few epochs while the
            # prototypes trail them for 40-60. See properties/model/MacridVAE.yaml for what 0.1 measured.
            with torch.no_grad():
                self.prototypes.mul_(self.prototype_init_scale)
        for bias in (self.encoder.context_bias, *(layer.bias for layer in self.encoder.layers)):
            nn.init.trunc_normal_(bias, std=0.001, a=-0.002, b=0.002)

    # ---- data ---------------------------------------------------------------------------
    def set_history(self, matrix) -> None:
        """The user x item matrix the encoder reads (training interactions, or fold-in input).

        Stored binary (x_ui in {0, 1}, Sec. 2.1): repeated interactions count once.
        """
        history = matrix.tocsr().astype(np.float32)
        history.sum_duplicates()
        history.data[:] = 1.0
        self.history = history
        self.n_users_with_history = int((np.diff(history.indptr) > 0).sum())
        # The same matrix as tensors where the model lives, so that a step slices its users' rows
        # there (no copy of the batch from the host; non-persistent buffers: they follow .to()
        # and stay out of checkpoints). Column ids as int32 while stored: half the memory.
        device = self.history_indptr.device if hasattr(self, "history_indptr") else self.device
        self.register_buffer("history_indptr", torch.from_numpy(history.indptr.astype(np.int64)).to(device), persistent=False)
        self.register_buffer("history_indices", torch.from_numpy(history.indices.astype(np.int32)).to(device), persistent=False)

    def user_rows(self, users: torch.Tensor) -> SparseRows:
        """The history rows of ``users`` (in their order, repeats included) as a batch."""
        total = None
        if users.device.type == "cpu":
            # Ids on the host (a training step's: host_batch_fields): the batch's number of
            # interactions, a shape the device needs before it can slice, comes from the host copy
            # of the matrix, so the step does not wait for the device to compute it.
            host_ids = users.numpy()
            total = int((self.history.indptr[host_ids + 1] - self.history.indptr[host_ids]).sum())
        users = copy_to_device(users, self.history_indptr.device).long()
        starts = self.history_indptr[users]
        counts = self.history_indptr[users + 1] - starts
        if total is None:
            # Ids on the device (RecBole's evaluation loop copies them there): one scalar crosses
            # to the host, where slicing the scipy matrix needed the ids there and the batch copied back.
            total = int(counts.sum())
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts, output_size=total)
        offsets = torch.arange(total, device=users.device) - (counts.cumsum(0) - counts).repeat_interleave(counts, output_size=total)
        cols = self.history_indices[starts[rows] + offsets].long()
        return SparseRows(rows=rows, cols=cols, values=torch.ones(total, device=users.device), batch_size=len(users))

    def host_batch_fields(self) -> tuple[str, ...]:
        """A training step's user ids stay on the host: :meth:`user_rows` reads the batch's size there."""
        return (self.USER_ID,)

    # ---- model --------------------------------------------------------------------------
    def concept_logits(self, h: torch.Tensor | None = None) -> torch.Tensor:
        """s_ik = sim(h_i, m_k) / tau for every item, (n_items, K): the logits of p(c_i), Eq. 6; for
        the rows ``h`` of the item table only when given (the sampled-softmax step).

        Concepts merged away by adaptive K get -inf: p(c_i = k) = 0, so they take no part in the
        encoder or decoder and receive no gradient.
        """
        h = self.item_embedding if h is None else h
        logits = similarity_matrix(h, self.prototypes, self.similarity) / self.tau
        if self.adaptive_k:
            logits = logits.masked_fill(~self.concept_active, float("-inf"))
        return logits

    def log_concepts(self) -> torch.Tensor:
        """ln c_i for every item, (n_items, K): Eq. 6, sampled in training, the mode (or softmax) at test."""
        return log_concept_assignment(self.concept_logits(), self.training, self.gumbel_temperature, self.test_assignment)

    def encode(self, batch: SparseRows, log_c: torch.Tensor, context: torch.Tensor | None = None):
        """z_u (B, K, d), mu, ln(sigma^2/sigma0^2): Algorithm 1 lines 17-26. ``context``: gathered
        rows of t that ``batch.cols`` index (see ConceptEncoder.forward)."""
        a, b = self.encoder(batch, log_c, context)
        # mu = a / ||a|| keeps z on the sphere the cosine decoder reads; the inner-product
        # ablation has no sphere to stay on, so it keeps a as it is.
        mu = F.normalize(a, dim=-1, eps=EPS) if self.similarity == "cosine" else a
        # The network outputs b = -ln(sigma^2 / sigma0^2): sigma = sigma0 e^(-b/2). b is unbounded and
        # e^(-b) (the KL's sigma^2/sigma0^2) overflows float32 past b = -88, so one diverging step
        # would turn the loss into inf and then NaN. The bound (sigma within e^(+-10) of sigma0) is
        # far outside what training reaches: the KL's e^x - x grows on both sides of 0.
        log_var_ratio = (-b).clamp(-LOG_VAR_RATIO_BOUND, LOG_VAR_RATIO_BOUND)
        if self.training:
            z = mu + torch.randn_like(mu) * self.sigma0 * torch.exp(0.5 * log_var_ratio)
        else:
            z = mu
        return z, mu, log_var_ratio

    def scores(self, z: torch.Tensor, log_c: torch.Tensor, items: torch.Tensor | None = None,
               table: torch.Tensor | None = None) -> torch.Tensor:
        """ln sum_k c_ik exp(sim(z^(k), h_i)/tau), the unnormalised ln p_ui of the decoder, (B, items).
        ``table``: rows of h that ``items`` and ``log_c`` index, in place of the whole of h."""
        h = self.item_embedding if table is None else table
        h = h if items is None else h[items]
        log_c = log_c if items is None else log_c[items]
        if self.similarity == "cosine" and self.tau >= EXP_SPACE_MIN_TAU:  # c_i sum to 1 (log_concept_assignment)
            return cosine_mixture_scores(z, h, log_c, self.tau)
        logits = similarity_matrix(z, h, self.similarity) / self.tau  # (B, K, items)
        return torch.logsumexp(logits + log_c.t().unsqueeze(0), dim=1)

    def pair_scores(self, z: torch.Tensor, log_c: torch.Tensor, batch: SparseRows,
                    table: torch.Tensor | None = None) -> torch.Tensor:
        """The same score for the stored (u, i) pairs only, (nnz,); ``table`` as in :meth:`scores`."""
        # Normalising is row-wise, so normalising before the gather gives the same values: for z
        # (and a gathered table) once per row, not once per (u, i) pair.
        h = self.item_embedding[batch.cols] if table is None else table
        if self.similarity == "cosine":
            h, z = F.normalize(h, dim=-1, eps=EPS), F.normalize(z, dim=-1, eps=EPS)
        h = h if table is None else h[batch.cols]
        logits = (z[batch.rows] * h.unsqueeze(1)).sum(-1) / self.tau  # (nnz, K)
        return torch.logsumexp(logits + log_c[batch.cols], dim=1)

    def current_beta(self) -> float:
        """beta_t = min(beta, t / T) as a Python number (for people and reports; a step uses :meth:`beta_tensor`)."""
        if self.total_anneal_steps <= 0:
            return self.beta
        return min(self.beta, self.anneal_step.item() / self.total_anneal_steps)

    def beta_tensor(self) -> torch.Tensor:
        """beta_t = min(beta, t / T) as a 0-d float32 tensor where the model lives: a training step
        reads it without a host sync (computed in float64, so the value is float32(min(beta, t / T))
        as before, when it was a Python float)."""
        if self.total_anneal_steps <= 0:
            return torch.tensor(self.beta, dtype=torch.float32, device=self.anneal_step.device)
        ratio = self.anneal_step.to(torch.float64) / self.total_anneal_steps
        return ratio.clamp(max=self.beta).to(torch.float32)

    # ---- losses -------------------------------------------------------------------------
    def recon_loss(self, z: torch.Tensor, log_c: torch.Tensor, batch: SparseRows) -> torch.Tensor:
        """-sum_{i in x_u} ln p_ui, averaged over the users of the batch."""
        if self.sampled_negatives == 0:
            padding = torch.zeros(1, dtype=torch.long, device=z.device)
            scores = self.scores(z, log_c).index_fill(1, padding, float("-inf"))  # item 0 is padding
            log_p = F.log_softmax(scores, dim=1)
            return -(log_p[batch.rows, batch.cols] * batch.values).sum() / batch.batch_size
        return self.sampled_recon_loss(z, log_c, batch)

    def kl_loss(self, mu: torch.Tensor, log_var_ratio: torch.Tensor) -> torch.Tensor:
        """KL(q(z_u|x_u,C) || N(0, sigma0^2 I)) summed over concepts, averaged over users.

        With cosine similarity mu has unit norm per concept, so the mean term is a constant and
        is dropped (authors' code); the inner-product ablation keeps it.
        """
        include_mean = self.similarity != "cosine"
        kl = gaussian_kl_to_prior(mu, log_var_ratio, self.sigma0, include_mean)  # (B, K)
        if self.adaptive_k:
            # A merged concept's z_u is the encoder's output for an empty input: no posterior of
            # the model, so its KL would only pull the shared f_nn toward that point.
            kl = kl * self.concept_active
        return kl.sum(dim=1).mean()

    def reg_loss(self) -> torch.Tensor:
        """L2 on the weight matrices (h, m, t and f_nn), as the authors' code applies it."""
        weights = (self.item_embedding, self.prototypes, *self.encoder.weight_matrices())
        return self.reg_weight * sum(w.pow(2).sum() for w in weights)

    def calculate_loss(self, interaction):
        if self.training and self.prototype_recentring > 0 and self.similarity == "cosine":
            # Before the step's forward pass, so the step trains h, t and f_nn against the
            # re-centred m (see recentre_prototypes for why m_k needs this).
            self.recentre_prototypes(self.prototype_recentring)
        batch = self.user_rows(interaction[self.USER_ID])
        if self.sampled_negatives > 0:
            loss = sampled_step_loss(self, batch)  # touches the batch's and the sampled items' rows only
        else:
            log_c = self.log_concepts()
            z, mu, log_var_ratio = self.encode(batch, log_c)
            loss = self.recon_loss(z, log_c, batch) + self.beta_tensor() * self.kl_loss(mu, log_var_ratio)
            if self.reg_weight > 0:
                loss = loss + self.reg_loss()
        if self.training:
            self.anneal_step += 1
        return loss

    # ---- prediction ---------------------------------------------------------------------
    def full_sort_predict(self, interaction):
        items = self.evaluation_item_side()
        z, _, _ = self.encode(self.user_rows(interaction[self.USER_ID]), items.log_c)
        return self.item_scores(z, items).view(-1)

    def fold_in_predict(self, fold_in) -> torch.Tensor:
        """Every item's score for users given by their interactions (a scipy (B, n_items) matrix,
        binarised as the history is): the paper protocol's held-out users, who have no row the
        model was trained on."""
        block = fold_in.tocsr().astype(np.float32)
        block.sum_duplicates()
        block.data[:] = 1.0
        rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
        batch = SparseRows(
            rows=torch.from_numpy(rows).to(self.device),
            cols=torch.from_numpy(block.indices.astype(np.int64)).to(self.device),
            values=torch.from_numpy(block.data).to(self.device),
            batch_size=block.shape[0],
        )
        items = self.evaluation_item_side()
        z, _, _ = self.encode(batch, items.log_c)
        return self.item_scores(z, items)

    def predict(self, interaction):
        users, item_ids = interaction[self.USER_ID], interaction[self.ITEM_ID]
        items = self.evaluation_item_side()
        z, _, _ = self.encode(self.user_rows(users), items.log_c)
        return pair_mixture_scores(z, items, item_ids, self.similarity == "cosine")
