"""AD-DRL: attribute-driven disentangled representation learning (Li et al., ACM MM 2024, arXiv 2312.14433).

Every user and every item modality (ID embedding, projected text features, projected image
features) is a vector of K x chunk numbers read as K factor chunks; factor k < A is tied to
the k-th configured item attribute (price, popularity, brand, category, ...), the rest are free.

* High level, intra-modality (Sec. 3.1.1): one factor classifier g reads every chunk of the
  user, ID, text and image representations and must name its factor index k (cross-entropy),
  so each chunk carries one factor. One classifier is shared by all modalities so that "factor
  k" means the same thing in each of them (the authors' code trains one per modality).
* High level, inter-modality (Sec. 3.1.2): InfoNCE with temperature ``inter_temperature`` over
  cosine similarities aligns chunk k of modality a with chunk k of modality b of the same item;
  the item's other chunks of b are the negatives. Every modality pair, both directions.
* Low level (Sec. 3.2): per factor, attention weights over the modalities' unit chunks
  (alpha = softmax_m w^T tanh(W ê_mk + b), ê = e / ||e||) give the fused chunk
  f_ik = sum_m alpha_ikm ê_mik: as in the authors' code every modality's chunk is L2-normalised
  before fusion, so no modality wins by its scale and every factor term is bounded;
  a linear classifier per attribute predicts the item's discrete attribute value from the fused
  chunk of that attribute's factor (cross-entropy; unknown values are left out).
* Score: s_ui = sum_k softplus(<u_k / ||u_k||, f_ik>). Ranking loss (authors' code): with N
  sampled negatives, softplus(-(s_ui - max_j s_uj)) summed over the batch's positives, plus
  ``reg_weight`` x (sum of squared norms of the batch's user vectors and of every modality's
  item vectors) / 2 / batch. The auxiliary losses are scaled as the authors' code scales them
  (batch means, summed over factors, modality pairs and attributes), so the published weights
  keep their meaning next to the summed ranking loss. Each auxiliary loss has its own weight
  (``intra_weight``, ``inter_weight``, ``attribute_weight``, ``reg_weight``); a weight of 0 is
  the corresponding ablation.

Explanations and control live in :mod:`recbole_disentangle.analysis.control` (the model only
scores): ``explain_factors`` gives each factor's share of a user's score of an item,
``modality_weights`` the modalities' part in each fused factor, ``rerank_by_factors`` re-ranks
after the user scales factors up or down (``factor_names`` names the factors).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_disentangle.data.attributes import AttributeSpec
from recbole_disentangle.data.multimodal import MultimodalDataset
from recbole_disentangle.errors import DatasetError
from recbole_disentangle.model.base import ModelHooks
from recbole_disentangle.model.hyperparameters import Hyperparameter, boolean, integer, is_int, number, one_of
from recbole_disentangle.model.multimodal import FEATURE_NAMES, MISSING_MODALITY, check_modalities, fail, pairwise_batch

MISSING_ATTRIBUTE_POLICIES = ("error", "skip")


# AD-DRL's hyper-parameters, declared once (model/hyperparameters.py): check_config checks them in
# this order (then the attributes and the modality settings), the docstring lists them, and
# properties/model/AD-DRL.yaml follows them.
WEIGHT_RULE = "it must be a number >= 0 (0 switches the term off)"
HYPERPARAMETERS = (
    Hyperparameter("kfac", "int", "K, the number of factor chunks (Baby 4; Sports and Toys 5).",
                   integer(1), "the number of factors K must be an integer >= 1"),
    Hyperparameter("embedding_size", "int", "K x chunk: the whole user / item vector; must be a multiple of kfac.",
                   lambda size, kfac: is_int(size) and size >= kfac and size % kfac == 0,
                   "it is K x chunk, so a positive multiple of kfac = {kfac}", depends_on=("kfac",)),
    Hyperparameter("reg_weight", "float", "L2 weight: squared norms / 2 of the batch's user and item vectors (every "
                   "modality) per positive (Baby 0; Sports/Toys 1).", number(at_least=0, bools=True, nan=True),
                   WEIGHT_RULE),
    Hyperparameter("intra_weight", "float", "Weight of the intra-modality factor classification loss (0 = ablation).",
                   number(at_least=0, bools=True, nan=True), WEIGHT_RULE),
    Hyperparameter("inter_weight", "float", "Weight of the inter-modality InfoNCE (Baby 1; Sports/Toys 0.01; 0 = "
                   "ablation).", number(at_least=0, bools=True, nan=True), WEIGHT_RULE),
    Hyperparameter("attribute_weight", "float", "Weight of the attribute-value classification loss (Baby 50; "
                   "Sports/Toys 10; 0 = ablation).", number(at_least=0, bools=True, nan=True), WEIGHT_RULE),
    Hyperparameter("fusion_normalize", "bool", "Fuse L2-normalised modality chunks (the authors' code; bounded factor "
                   "terms) or the raw chunks (false).", boolean,
                   "it must be true (the authors' fusion of unit chunks) or false"),
    Hyperparameter("inter_temperature", "float", "Temperature of the inter-modality InfoNCE.",
                   number(above=0, bools=True, nan=True), "it must be a number > 0"),
    Hyperparameter("attention_size", "int", "Hidden width of the fusion attention MLP w^T tanh(W e + b).",
                   integer(1), "it must be an integer >= 1"),
    Hyperparameter("attribute_holdout", "float", "Fraction of items whose attribute labels are kept out of training, "
                   "to measure accuracy.", number(at_least=0, below=1, bools=True), "it must lie in [0, 1)"),
    Hyperparameter("missing_attribute", "str", "An attribute whose field is not loaded: error, or skip (its factor "
                   "stays free).", one_of(MISSING_ATTRIBUTE_POLICIES),
                   f"choose one of {', '.join(MISSING_ATTRIBUTE_POLICIES)}"),
    Hyperparameter("attributes", "list", "{name, field, rule, levels}: attribute k supervises factor k (rules: "
                   "data/attributes.py)."),
    Hyperparameter("modalities", "list of str", "Item modalities used, any non-empty subset of id, text, image."),
    FEATURE_NAMES,
    MISSING_MODALITY,
)


class ADDRL(GeneralRecommender, ModelHooks):
    r"""AD-DRL with RecBole's pairwise sampling (N negatives per positive; ``attributes``' rules are
    in :mod:`recbole_disentangle.data.attributes`)."""

    input_type = InputType.PAIRWISE
    dataset_class = MultimodalDataset  # item features and attributes, aligned once
    hyperparameters = HYPERPARAMETERS

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.kfac = config["kfac"]
        self.embedding_size = config["embedding_size"]
        self.chunk = self.embedding_size // self.kfac
        self.sample_num = config["train_neg_sample_args"]["sample_num"]
        self.reg_weight = config["reg_weight"]
        self.intra_weight = config["intra_weight"]
        self.inter_weight = config["inter_weight"]
        self.attribute_weight = config["attribute_weight"]
        self.inter_temperature = config["inter_temperature"]
        self.fusion_normalize = config["fusion_normalize"]

        features = dataset.modality_features(config["modalities"])
        self.modalities = [m for m in config["modalities"] if m == "id" or m in features]
        if not self.modalities:
            raise DatasetError(f"AD-DRL: none of the modalities {config['modalities']} is available for {config['dataset']}.")
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        if "id" in self.modalities:
            self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.projections = nn.ModuleDict()
        for modality, values in features.items():
            self.register_buffer(f"{modality}_features", values)
            self.projections[modality] = nn.Linear(values.shape[1], self.embedding_size)
        self.factor_classifier = nn.Linear(self.chunk, self.kfac)  # g: chunk -> factor index
        self.attention = nn.Sequential(
            nn.Linear(self.chunk, config["attention_size"]), nn.Tanh(), nn.Linear(config["attention_size"], 1, bias=False)
        )
        self._init_attributes(config, dataset)
        self.attribute_classifiers = nn.ModuleList(nn.Linear(self.chunk, n) for n in self.attributes.n_classes)
        self.history = dataset.inter_matrix(form="csr")
        self.last_losses: dict[str, float] = {}
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Embedding, nn.Linear)):
            nn.init.xavier_normal_(module.weight)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _init_attributes(self, config, dataset) -> None:
        self.attributes = dataset.item_attributes([AttributeSpec.parse(entry) for entry in config["attributes"] or []])
        n_kept = len(self.attributes.names)
        self.factor_names = self.attributes.names + [f"free{k}" for k in range(n_kept, self.kfac)]
        labels = self.attributes.labels.clone()
        held_out = torch.zeros(self.n_items, dtype=torch.bool)
        if config["attribute_holdout"] > 0:
            # Seeded by the run's seed: the same items are held out in every run of a comparison.
            rng = np.random.default_rng(config["seed"])
            held_out[1:] = torch.from_numpy(rng.random(self.n_items - 1) < config["attribute_holdout"])
            labels[held_out] = -1
        self.register_buffer("attribute_labels", labels, persistent=False)  # training targets
        self.register_buffer("attribute_truth", self.attributes.labels, persistent=False)
        self.register_buffer("attribute_held_out", held_out, persistent=False)

    # ---- configuration ------------------------------------------------------------------
    @classmethod
    def check_config(cls, config) -> None:
        """Reject unusable hyper-parameters before any data is read."""
        super().check_config(config)
        kfac = config["kfac"]
        attributes = config["attributes"] or []
        if not isinstance(attributes, list):
            fail(config, "attributes", "it must be a list of {name, field, rule} mappings")
        specs = [AttributeSpec.parse(entry) for entry in attributes]
        if len(specs) > kfac:
            fail(config, "attributes", f"{len(specs)} attributes need at least as many factors, but kfac = {kfac}")
        if len({s.name for s in specs}) != len(specs):
            fail(config, "attributes", "two attributes share a name")
        check_modalities(config)

    # ---- representations ----------------------------------------------------------------
    def user_chunks(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_embedding(users).view(*users.shape, self.kfac, self.chunk)

    def modality_chunks(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Per-modality item chunks, (n, M, K, chunk); all items when ``items`` is None."""
        reps = []
        for modality in self.modalities:
            if modality == "id":
                reps.append(self.item_embedding.weight if items is None else self.item_embedding(items))
            else:
                values = getattr(self, f"{modality}_features")
                reps.append(self.projections[modality](values if items is None else values[items]))
        stacked = torch.stack(reps, dim=-2)  # (n, M, D)
        return stacked.view(*stacked.shape[:-1], self.kfac, self.chunk)

    def fuse(self, chunks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused chunks (n, K, chunk) and attention weights alpha (n, K, M), softmax over modalities.

        Each modality's chunk is L2-normalised first (authors' code; ``fusion_normalize: false``
        fuses the raw chunks instead): a fused chunk then has norm <= 1.
        """
        units = F.normalize(chunks, dim=-1) if self.fusion_normalize else chunks
        alpha = torch.softmax(self.attention(units).squeeze(-1), dim=-2)  # (n, M, K)
        fused = (alpha.unsqueeze(-1) * units).sum(dim=-3)
        return fused, alpha.transpose(-1, -2)

    def factor_scores(self, user_chunks: torch.Tensor, item_fused: torch.Tensor) -> torch.Tensor:
        """softplus(<u_k/||u_k||, f_ik>) for aligned shapes (..., K, chunk) -> (..., K)."""
        return F.softplus((F.normalize(user_chunks, dim=-1) * item_fused).sum(-1))

    def all_factor_scores(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n, K) factor scores of each user against ``items`` (all items when None)."""
        fused, _ = self.fuse(self.modality_chunks(items))
        u = F.normalize(self.user_chunks(users), dim=-1)
        return F.softplus(torch.einsum("bkc,nkc->bnk", u, fused))

    # ---- losses -------------------------------------------------------------------------
    @staticmethod
    def ranking_loss(s_pos: torch.Tensor, s_neg: torch.Tensor) -> torch.Tensor:
        """softplus(-(s_pos - max_j s_neg_j)), summed over positives: s_pos (B,), s_neg (B, N)."""
        return F.softplus(-(s_pos - s_neg.max(dim=1).values)).sum()

    def intra_loss(self, reps: list[torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the factor classifier on every chunk (chunk k's target is k): for each
        representation in ``reps`` (user, and the items' modalities), the batch mean summed over k."""
        total = reps[0].new_zeros(())
        for rep in reps:
            chunks = rep.reshape(-1, self.kfac, self.chunk)  # (n, K, c)
            logits = self.factor_classifier(chunks)  # (n, K, K)
            target = torch.arange(self.kfac, device=chunks.device).expand(len(chunks), -1)
            total = total + self.kfac * F.cross_entropy(logits.reshape(-1, self.kfac), target.reshape(-1))
        return total

    def inter_loss(self, chunks: torch.Tensor) -> torch.Tensor:
        """InfoNCE aligning chunk k across modalities, chunks (n, M, K, c); 0 with one modality.

        Batch mean summed over k, over both directions and over every pair of modalities.
        """
        if chunks.shape[1] < 2:
            return chunks.new_zeros(())
        z = F.normalize(chunks, dim=-1)
        target = torch.arange(self.kfac, device=z.device).expand(len(z), -1).reshape(-1)
        total = z.new_zeros(())
        for a, b in combinations(range(z.shape[1]), 2):
            logits = torch.einsum("nkc,njc->nkj", z[:, a], z[:, b]) / self.inter_temperature
            total = total + self.kfac * F.cross_entropy(logits.reshape(-1, self.kfac), target)  # a -> b
            total = total + self.kfac * F.cross_entropy(logits.transpose(1, 2).reshape(-1, self.kfac), target)  # b -> a
        return total

    def attribute_loss(self, fused: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of attribute a's classifier on fused chunk a (batch mean over the items
        whose value is known), summed over attributes."""
        total = fused.new_zeros(())
        labels = self.attribute_labels[items]
        for a, classifier in enumerate(self.attribute_classifiers):
            known = labels[:, a] >= 0
            if known.any():
                total = total + F.cross_entropy(classifier(fused[known, a]), labels[known, a])
        return total

    def calculate_loss(self, interaction):
        users, pos, neg = pairwise_batch(interaction, self.USER_ID, self.ITEM_ID, self.NEG_ITEM_ID, self.sample_num)
        # Each distinct item of the batch is encoded once (a popular item recurs among the B x N
        # negatives); the auxiliary losses see every distinct item once, the ranking loss all pairs.
        items, inverse = torch.unique(torch.cat([pos, neg.reshape(-1)]), return_inverse=True)
        chunks = self.modality_chunks(items)  # (n, M, K, c)
        fused, _ = self.fuse(chunks)
        u = self.user_chunks(users)
        batch = len(users)
        f_pos = fused[inverse[:batch]]
        f_neg = fused[inverse[batch:]].view(batch, self.sample_num, self.kfac, self.chunk)
        s_pos = self.factor_scores(u, f_pos).sum(-1)
        s_neg = self.factor_scores(u.unsqueeze(1), f_neg).sum(-1)
        losses = {"rank": self.ranking_loss(s_pos, s_neg)}
        if self.reg_weight > 0:
            # every pair's items count, as in the authors' code: each modality's vector of the
            # positive and of each of its N negatives
            item_norms = chunks.pow(2).sum(dim=(-1, -2)).sum(-1)  # (n,) over modalities
            reg = u.pow(2).sum() + item_norms[inverse].sum()
            losses["reg"] = self.reg_weight * reg / 2 / batch
        if self.intra_weight > 0:
            losses["intra"] = self.intra_weight * self.intra_loss([u, *chunks.unbind(dim=1)])  # user, then each modality
        if self.inter_weight > 0:
            losses["inter"] = self.inter_weight * self.inter_loss(chunks)
        if self.attribute_weight > 0 and len(self.attribute_classifiers):
            losses["attribute"] = self.attribute_weight * self.attribute_loss(fused, items)
        self.last_losses = {k: float(v.detach()) for k, v in losses.items()}
        return sum(losses.values())

    # ---- prediction ---------------------------------------------------------------------
    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        fused, _ = self.fuse(self.modality_chunks(items))
        return self.factor_scores(self.user_chunks(users), fused).sum(-1)

    def full_sort_predict(self, interaction):
        return self.all_factor_scores(interaction[self.USER_ID]).sum(-1).view(-1)

    def report(self) -> dict:
        """What ``quick_start.run`` records after training: the attribute accuracy of the fused chunks."""
        was_training = self.training
        self.eval()
        try:
            return {"attribute_accuracy": self.attribute_accuracy()} if len(self.attribute_classifiers) else {}
        finally:
            self.train(was_training)

    @torch.no_grad()
    def attribute_accuracy(self) -> dict[str, dict[str, float]]:
        """Per attribute: accuracy of its classifier on the fused chunks, and the majority class's.

        ``held_out`` counts only the items whose labels were kept out of training
        (``attribute_holdout``); ``all`` every item with a known value.
        """
        fused, _ = self.fuse(self.modality_chunks())
        report = {}
        for a, (name, classifier) in enumerate(zip(self.attributes.names, self.attribute_classifiers)):
            truth = self.attribute_truth[:, a]
            predicted = classifier(fused[:, a]).argmax(-1)
            entry = {}
            for subset, mask in (("all", truth >= 0), ("held_out", (truth >= 0) & self.attribute_held_out)):
                if mask.any():
                    train_known = self.attribute_labels[:, a] >= 0
                    majority = torch.bincount(self.attribute_labels[train_known, a]).argmax() if train_known.any() else 0
                    entry[f"{subset}_accuracy"] = float((predicted[mask] == truth[mask]).float().mean())
                    entry[f"{subset}_majority"] = float((truth[mask] == majority).float().mean())
                    entry[f"{subset}_items"] = int(mask.sum())
            report[name] = entry
        return report
