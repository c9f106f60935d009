"""SEM-MacridVAE: MacridVAE with item semantics (Wang et al., TPAMI 2022, Sec. 3.4, Algorithm 1).

Everything but the two semantic signals is this package's :class:`MacridVAE`, inherited:

* Visual initialisation (Eq. 10, Algorithm 1 lines 3-11): the item feature vectors v_i are
  centred and projected on their top-d principal components (scikit-learn PCA); the projection
  initialises h_i and the K-means centres (scikit-learn, seeded) of those h_i initialise m_k. The
  projection is rescaled to the standard deviation of a Xavier-normal initialisation of h (the
  authors' released code does so), so cosine logits and the L2 term start in MacridVAE's range.
* Category supervision (Eq. 11, Algorithm 1 line 34): lambda * sum_i CE(p(c_i), c^_i), where
  p(c_i) = softmax(s_i), s_ik = cos(h_i, m_k)/tau (Eq. 6), and c^_i is the item's category.
"""

from __future__ import annotations

import math
from dataclasses import replace
from logging import getLogger

import numpy as np
import torch
import torch.nn.functional as F
from recbole.utils import FeatureType

from recbole_disentangle.data.multimodal import MultimodalDataset
from recbole_disentangle.errors import ConfigError, DatasetError
from recbole_disentangle.model.hyperparameters import Hyperparameter, boolean, check_hyperparameters, number, one_of
from recbole_disentangle.model.macridvae import MacridVAE
from recbole_disentangle.model.sampled_step import check_sampled_settings

CATEGORY_OVERFLOW = ("other", "drop")


def _name_or_none(value) -> bool:
    return value is None or (isinstance(value, str) and bool(value))


_MACRIDVAE_DOCS = {  # what SEM-MacridVAE.yaml says of MacridVAE's keys it gives other defaults
    "embedding_size": "d, the size of each z_u^(k) and of h_i, t_i, m_k (also the PCA dimension).",
    "kfac": "K concepts; with category_supervision it must equal the number of categories used.",
    "prototype_init_scale": "As MacridVAE's; 1 (Xavier, the authors' code) as SEM-MacridVAE was measured with.",
}
# SEM-MacridVAE's hyper-parameters, declared once (model/hyperparameters.py): MacridVAE's, then its
# own; check_config checks them in this order (the last two after the rules that relate keys), the
# docstring lists them, and MacridVAE.yaml with SEM-MacridVAE.yaml over it follow them.
LATE_CHECKS = ("category_weight", "category_overflow")
HYPERPARAMETERS = (
    *(replace(p, doc=_MACRIDVAE_DOCS[p.name]) if p.name in _MACRIDVAE_DOCS else p for p in MacridVAE.hyperparameters),
    Hyperparameter("visual_init", "bool", "Eq. 10: h_i := PCA of the item features (rescaled), m_k := K-means "
                   "centres. False = the \"without visual\" ablation.", boolean, "it must be True or False"),
    Hyperparameter("category_supervision", "bool", "Eq. 11: cross-entropy between p(c_i) = softmax(s_i) and the "
                   "item's category. False = \"without categorical\".", boolean, "it must be True or False"),
    Hyperparameter("image_features", "str", "Feature set <dataset>.<name>.npy/.ids in feature_dir (e.g. alexnet, made "
                   "by `python -m recbole_disentangle.data.features image`).", _name_or_none,
                   "it must be a name (or ~ for none)"),
    Hyperparameter("text_features", "str", "Text feature set (e.g. title, made by `... features text`); with "
                   "image_features, both are concatenated.", _name_or_none, "it must be a name (or ~ for none)"),
    Hyperparameter("category_field", "str", "token or token_seq field of the .item file holding the categories "
                   "(ml-100k: class).", _name_or_none, "it must be a name (or ~ for none)"),
    Hyperparameter("category_weight", "float", "lambda, weight of sum_i CE(p(c_i), c^_i) added to each step's loss "
                   "(1 = Algorithm 1 line 34).", number(at_least=0, nan=True), "lambda must be a number >= 0"),
    Hyperparameter("category_overflow", "str", "More categories than K: \"other\" keeps the K-1 most frequent + one "
                   "[other]; \"drop\" keeps the K most frequent.", one_of(CATEGORY_OVERFLOW),
                   f"choose one of {', '.join(CATEGORY_OVERFLOW)}"),
)


class SEMMacridVAE(MacridVAE):
    r"""SEM-MacridVAE: MacridVAE whose h and m start from item features and whose concepts are
    supervised by item categories.

    Its hyper-parameters (MacridVAE's and its own) are declared in :data:`HYPERPARAMETERS`, listed
    at the end of this docstring.

    Which c_i the cross-entropy reads: the softmax of the Eq. 6 logits, p(c_i), not the Gumbel
    sample. Eq. 6 defines the learned quantity as that categorical distribution (Algorithm 1
    "Item categories c_i" among the parameters theta); the Gumbel-softmax sample is only the
    reparameterised draw used by the encoder and decoder. CE(p(c_i), c^_i) = -ln p(c_i = c^_i)
    is the likelihood of the observed category under the model, its gradient is exact where a
    sample's would add Gumbel noise, and it supervises the same distribution whose mode is
    c_i at test time.

    Multi-label categories (ml-100k genres): an item's target is uniform over its distinct
    categories after the mapping below, so CE = -mean over its categories of ln p(c_i = k).
    More categories than K: with ``drop`` the K most frequent (items holding the label; ties by
    RecBole's token id) are kept and the others ignored; with ``other`` the K-1
    most frequent are kept and all others become one category "[other]". The mapping is logged.
    Fewer categories than K is an error (set ``kfac`` to their number). Items without a category
    after the mapping take no part in the loss (counted in the log).

    Items without a feature vector keep MacridVAE's random (Xavier-uniform) h_i, counted in the
    log; PCA and K-means see only the items that have one.

    With ``visual_init`` and ``category_supervision`` both off, the model is MacridVAE: the same
    parameters from the same seed and the same loss.
    """

    dataset_class = MultimodalDataset  # item features, aligned once
    hyperparameters = HYPERPARAMETERS

    def __init__(self, config, dataset):
        # MacridVAE draws every initial weight; the semantic steps below use no torch RNG, so
        # switching them off leaves exactly MacridVAE for the same seed.
        super().__init__(config, dataset)
        self.visual_init = config["visual_init"]
        self.category_supervision = config["category_supervision"]
        self.category_weight = config["category_weight"]
        logger = getLogger()
        # Categories first: their checks are cheap, the PCA and K-means below are not.
        if self.category_supervision:
            targets, names = self.category_targets(dataset, config["category_field"], self.kfac, config["category_overflow"])
            self.category_names = names
            self.register_buffer("category_target", targets, persistent=False)
            self.register_buffer("category_items", torch.nonzero(targets.sum(1) > 0).view(-1), persistent=False)
        if self.visual_init:
            names = [config[key] for key in ("image_features", "text_features") if config[key]]
            features, present = self._item_features(dataset, names)
            with torch.no_grad():
                item_repr, prototypes = self.semantic_initialisation(features, present, self.kfac, config["seed"])
                self.item_embedding[present] = item_repr.to(self.item_embedding)
                self.prototypes.copy_(prototypes.to(self.prototypes))
            n_without = int((~present[1:]).sum())
            logger.info(
                f"SEM-MacridVAE: h_i of {int(present.sum())} items initialised from the PCA of features "
                f"{'+'.join(names)}; {n_without} items without features keep their random init."
            )

    # ---- configuration ------------------------------------------------------------------
    @classmethod
    def check_config(cls, config) -> None:
        check_hyperparameters(config, [p for p in cls.hyperparameters if p.name not in LATE_CHECKS])
        model = config["model"]
        if config["visual_init"] and not (config["image_features"] or config["text_features"]):
            raise ConfigError(
                f"{model}: visual_init is on but neither 'image_features' nor 'text_features' names a feature "
                "set; make one with `python -m recbole_disentangle.data.features` and pass e.g. "
                "--text_features=title, or switch the initialisation off with --visual_init=False."
            )
        if config["adaptive_k"] and config["category_supervision"]:
            raise ConfigError(
                f"{model}: adaptive_k merges concepts, but category_supervision ties concept k to category k "
                "(K = the number of categories); switch one off (--adaptive_k=False or --category_supervision=False)."
            )
        if config["category_supervision"] and config["sampled_negatives"] > 0:
            # Eq. 11 sums over every item with a category each step: a dense gradient on all of h,
            # which the sampled step's row-wise updates of h (model/sampled_step.py) cannot take.
            raise ConfigError(
                f"{model}: category_supervision sums its cross-entropy over every item each step, which "
                "sampled softmax (sampled_negatives > 0, row-wise updates of h) does not support; use full softmax "
                "(--sampled_negatives=0) or switch the supervision off with --category_supervision=False."
            )
        check_sampled_settings(config)
        if config["category_supervision"] and not config["category_field"]:
            raise ConfigError(
                f"{model}: category_supervision is on but 'category_field' is not set; name a token or "
                "token_seq field of the .item file (e.g. --category_field=class for ml-100k), or switch the "
                "supervision off with --category_supervision=False."
            )
        check_hyperparameters(config, [p for p in cls.hyperparameters if p.name in LATE_CHECKS])

    # ---- visual initialisation (Eq. 10) ---------------------------------------------------
    @staticmethod
    def _item_features(dataset, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature rows aligned to internal ids; several sets are concatenated.

        Each set is first divided by its mean row norm so that, concatenated, neither dominates
        the principal components by its scale alone (AlexNet fc7 norms are ~100, MiniLM's 1).
        """
        blocks, present = [], None
        for name in names:
            loaded = dataset.item_features(name)
            mean_norm = loaded.values[loaded.present].norm(dim=1).mean().clamp_min(1e-12)
            blocks.append(loaded.values / mean_norm if len(names) > 1 else loaded.values)
            present = loaded.present if present is None else present & loaded.present
        return torch.cat(blocks, dim=1), present

    def semantic_initialisation(self, features: torch.Tensor, present: torch.Tensor, n_concepts: int, seed: int):
        """(h_i of the items with features, m_k): Eq. 10, then the authors' rescaling.

        ``features`` is (n_items, F) with rows for every internal id; only ``present`` rows count.
        h = P (v_i - mean v) with P the top-d eigenvectors of the covariance of the v_i (PCA),
        scaled so that its standard deviation is that of a Xavier-normal (n_items, d) matrix,
        sqrt(2 / (n_items + d)); m = K-means centres of those h (seeded, so runs repeat).
        """
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA

        d = self.embedding_size
        values = features[present].numpy()  # float32: 130k x 4096 Amazon features stay ~2 GB
        n, dim = values.shape
        if d > min(n, dim):
            raise DatasetError(
                f"SEM-MacridVAE: PCA to d = embedding_size = {d} dimensions needs at least {d} items with features "
                f"and {d}-dimensional features; the features have {n} items x {dim} dimensions. Lower "
                "embedding_size or provide more features."
            )
        if n < n_concepts:
            raise DatasetError(f"SEM-MacridVAE: K-means with K = kfac = {n_concepts} needs >= {n_concepts} items with features; {n} have.")
        # Eq. 10 literally: eigenvectors of the F x F covariance of the centred v_i (exact and
        # deterministic; for n >> F far cheaper than an SVD of the n x F matrix).
        projected = PCA(n_components=d, svd_solver="covariance_eigh").fit_transform(values).astype(np.float64)
        xavier_std = math.sqrt(2.0 / (self.n_items + d))
        projected *= xavier_std / max(projected.std(), 1e-12)
        centres = KMeans(n_clusters=n_concepts, n_init=10, random_state=seed).fit(projected).cluster_centers_
        return torch.from_numpy(projected).float(), torch.from_numpy(centres).float()

    # ---- category supervision (Eq. 11) ----------------------------------------------------
    @staticmethod
    def category_targets(dataset, field: str, n_concepts: int, overflow: str) -> tuple[torch.Tensor, list[str]]:
        """(n_items, K) target distributions c^_i (rows sum to 1, or 0 without a category), and
        the category name of each concept k. The rule is the class docstring's."""
        logger = getLogger()
        if dataset.item_feat is None or field not in dataset.item_feat:
            raise DatasetError(
                f"SEM-MacridVAE: category_field '{field}' is not a loaded item field of {dataset.dataset_name} "
                f"(loaded: {', '.join(dataset.item_feat.columns) if dataset.item_feat is not None else 'no .item file'}); "
                "add it to load_col: item: [...] or pick another field."
            )
        field_type = dataset.field2type[field]
        if field_type not in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
            raise DatasetError(f"SEM-MacridVAE: category_field '{field}' is {field_type.value}; a token or token_seq field is needed.")
        labels = dataset.item_feat[field].numpy().reshape(dataset.item_num, -1)  # 0 = padding / no label
        n_tokens = len(dataset.field2id_token[field])
        multi_hot = np.zeros((dataset.item_num, n_tokens), dtype=bool)
        rows = np.repeat(np.arange(dataset.item_num), labels.shape[1])
        multi_hot[rows, labels.reshape(-1)] = True
        multi_hot[:, 0] = False
        multi_hot[0] = False  # RecBole's padding item
        counts = multi_hot.sum(0)
        used = [t for t in np.argsort(-counts, kind="stable") if counts[t] > 0]
        names = [str(dataset.field2id_token[field][t]) for t in used]
        if len(used) < n_concepts:
            raise DatasetError(
                f"SEM-MacridVAE: category_field '{field}' has {len(used)} categories ({', '.join(names)}) but kfac = "
                f"{n_concepts}; K must equal the number of categories: set --kfac={len(used)}."
            )
        kept = n_concepts if overflow == "drop" or len(used) == n_concepts else n_concepts - 1
        concept_of_token = np.full(n_tokens, -1)
        concept_of_token[used[:kept]] = np.arange(kept)
        concept_names = names[:kept]
        if len(used) > kept:
            rest = ", ".join(f"{name} ({counts[t]})" for name, t in zip(names[kept:], used[kept:]))
            if overflow == "other":
                concept_of_token[used[kept:]] = kept
                concept_names.append("[other]")
                logger.info(f"SEM-MacridVAE: categories beyond the {kept} most frequent become '[other]' (concept {kept}): {rest}")
            else:
                logger.info(f"SEM-MacridVAE: categories beyond the {kept} most frequent are dropped: {rest}")
        # Multi-hot over concepts (duplicates collapse), then uniform over the item's concepts.
        item_rows, tokens = np.nonzero(multi_hot)
        concepts = concept_of_token[tokens]
        keep = concepts >= 0
        targets = np.zeros((dataset.item_num, n_concepts), dtype=np.float32)
        targets[item_rows[keep], concepts[keep]] = 1.0
        targets /= np.maximum(targets.sum(1, keepdims=True), 1.0)
        mapping = ", ".join(f"{k}={name} ({int((targets[:, k] > 0).sum())} items)" for k, name in enumerate(concept_names))
        n_without = int((targets[1:].sum(1) == 0).sum())
        logger.info(
            f"SEM-MacridVAE: concept <- category of '{field}': {mapping}; {n_without} of {dataset.item_num - 1} "
            "items have no category and take no part in the category loss."
        )
        return torch.from_numpy(targets), concept_names

    def category_loss(self) -> torch.Tensor:
        """lambda * sum_i CE(softmax(s_i), c^_i) over the items with a category (Eq. 11, line 34)."""
        items = self.category_items
        log_p = F.log_softmax(self.concept_logits()[items], dim=1)
        return -self.category_weight * (self.category_target[items] * log_p).sum()

    # ---- training -----------------------------------------------------------------------
    def calculate_loss(self, interaction):
        # Eq. 11 is added to the per-user MacridVAE objective of each step (Algorithm 1 line 34
        # adds the sum over all M items to every user's L; averaged over the batch's users it
        # stays that sum).
        loss = super().calculate_loss(interaction)
        if self.category_supervision and self.category_weight > 0:
            loss = loss + self.category_loss()
        return loss
