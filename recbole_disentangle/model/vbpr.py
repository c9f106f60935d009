"""VBPR: visual Bayesian personalised ranking (He & McAuley, AAAI 2016), the classic multimodal baseline.

x_ui = beta_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i   (Eq. 2 of the paper; the
global offset alpha and the user bias beta_u cancel in every pairwise difference and are left
out). f_i are the item's pre-extracted features: every configured modality (text, image) is
L2-normalised and the modalities are concatenated, so VBPR reads the same inputs as AD-DRL.
Trained with BPR on RecBole's pairwise batches, one term per (positive, sampled negative) pair.

The feature loading VBPR shares with AD-DRL is the multimodal data set's
(:mod:`recbole_disentangle.data.multimodal`), the settings check and the batch layout are in
:mod:`recbole_disentangle.model.multimodal`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_disentangle.data.multimodal import MultimodalDataset
from recbole_disentangle.errors import DatasetError
from recbole_disentangle.model.base import ModelHooks
from recbole_disentangle.model.hyperparameters import Hyperparameter, integer, number
from recbole_disentangle.model.multimodal import FEATURE_NAMES, MISSING_MODALITY, check_modalities, pairwise_batch


# VBPR's hyper-parameters, declared once (model/hyperparameters.py): check_config, the docstring
# and properties/model/VBPR.yaml follow them. The modality settings: check_modalities.
HYPERPARAMETERS = (
    Hyperparameter("embedding_size", "int", "The user's budget: gamma_u gets embedding_size - embedding_size//2, "
                   "theta_u embedding_size//2.", integer(2),
                   "it must be an integer >= 2 (split between gamma_u and theta_u)"),
    Hyperparameter("reg_weight", "float", "L2 on the batch's gamma, theta, item biases, and on E and beta'.",
                   number(at_least=0, bools=True, nan=True), "it must be a number >= 0"),
    Hyperparameter("modalities", "list of str", "Feature modalities concatenated into f_i (at least one of text, "
                   "image)."),
    FEATURE_NAMES,
    MISSING_MODALITY,
)


class VBPR(GeneralRecommender, ModelHooks):
    r"""VBPR with BPR training over N sampled negatives per positive (``id`` is always part of it;
    ``train_neg_sample_args``: N negatives)."""

    input_type = InputType.PAIRWISE
    dataset_class = MultimodalDataset  # item features, aligned once
    hyperparameters = HYPERPARAMETERS

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.reg_weight = config["reg_weight"]
        self.sample_num = config["train_neg_sample_args"]["sample_num"]
        features = dataset.modality_features(config["modalities"])
        if not features:
            raise DatasetError(f"VBPR: none of the feature modalities {config['modalities']} is available for "
                               f"{config['dataset']}; VBPR without features is BPR (--model=BPR).")
        self.modalities = list(features)
        self.register_buffer("features", torch.cat([features[m] for m in self.modalities], dim=1))
        half = self.embedding_size // 2
        self.gamma_user = nn.Embedding(self.n_users, self.embedding_size - half)
        self.gamma_item = nn.Embedding(self.n_items, self.embedding_size - half)
        self.theta_user = nn.Embedding(self.n_users, half)
        self.projection = nn.Linear(self.features.shape[1], half, bias=False)  # E
        self.feature_bias = nn.Linear(self.features.shape[1], 1, bias=False)  # beta'
        self.item_bias = nn.Embedding(self.n_items, 1)
        for table in (self.gamma_user, self.gamma_item, self.theta_user):
            nn.init.xavier_normal_(table.weight)
        nn.init.xavier_normal_(self.projection.weight)
        nn.init.zeros_(self.feature_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    @classmethod
    def check_config(cls, config) -> None:
        super().check_config(config)
        check_modalities(config, need_features=True)

    def scores(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """x_ui for each user against ``items`` (all items when None), (B, items)."""
        item_index = slice(None) if items is None else items
        f = self.features[item_index]
        gamma_i = self.gamma_item.weight[item_index]
        beta_i = self.item_bias.weight[item_index].squeeze(-1) + self.feature_bias(f).squeeze(-1)
        return (self.gamma_user(users) @ gamma_i.t() + self.theta_user(users) @ self.projection(f).t()
                + beta_i.unsqueeze(0))

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """x_ui for aligned users and items, any matching shapes."""
        f = self.features[items]
        return ((self.gamma_user(users) * self.gamma_item(items)).sum(-1)
                + (self.theta_user(users) * self.projection(f)).sum(-1)
                + self.item_bias(items).squeeze(-1) + self.feature_bias(f).squeeze(-1))

    def calculate_loss(self, interaction):
        users, pos, neg = pairwise_batch(interaction, self.USER_ID, self.ITEM_ID, self.NEG_ITEM_ID, self.sample_num)
        s_pos = self.pair_scores(users, pos)  # (B,)
        s_neg = self.pair_scores(users.unsqueeze(1).expand_as(neg), neg)  # (B, N)
        loss = F.softplus(-(s_pos.unsqueeze(1) - s_neg)).mean()  # -ln sigma(x_uij) per sampled pair
        if self.reg_weight > 0:
            items = torch.cat([pos, neg.reshape(-1)])
            reg = (self.gamma_user(users).pow(2).sum() + self.theta_user(users).pow(2).sum()
                   + self.gamma_item(items).pow(2).sum() + self.item_bias(items).pow(2).sum()) / len(users)
            reg = reg + self.projection.weight.pow(2).sum() + self.feature_bias.weight.pow(2).sum()
            loss = loss + self.reg_weight * reg
        return loss

    def predict(self, interaction):
        return self.pair_scores(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):
        return self.scores(interaction[self.USER_ID]).view(-1)
