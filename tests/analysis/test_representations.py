"""Ground-truth labels from item fields (the multi-label rule) and the model check."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from recbole.utils import FeatureType

from recbole_disentangle.analysis.representations import check_model, item_categories, item_titles
from recbole_disentangle.errors import ConfigError, DatasetError


class Feat(dict):
    @property
    def columns(self):
        return list(self)


def fake_dataset():
    # items 1..4 (0 is padding); genres as RecBole stores a token_seq: ids into a vocabulary, 0-padded
    vocab = ["[PAD]", "Action", "Drama", "Comedy"]
    genres = torch.tensor([[0, 0], [1, 2], [2, 0], [3, 2], [1, 0], [0, 0]])
    return SimpleNamespace(
        dataset_name="toy",
        iid_field="item_id",
        item_feat=Feat(item_id=torch.arange(6), genre=genres, title=torch.tensor([[0], [1], [2], [0], [1], [0]])),
        field2type={"genre": FeatureType.TOKEN_SEQ, "title": FeatureType.TOKEN_SEQ, "item_id": FeatureType.TOKEN},
        field2id_token={"genre": np.array(vocab), "title": np.array(["[PAD]", "Heat", "Fargo"]),
                        "item_id": np.array(["[PAD]", "a", "b", "c", "d", "e"])},
    )


def test_multi_label_rules():
    dataset = fake_dataset()
    # catalog counts: Drama 3, Action 2, Comedy 1
    assert item_categories(dataset, "genre", "most_frequent").tolist() == [None, "Drama", "Drama", "Drama", "Action", None]
    assert item_categories(dataset, "genre", "first").tolist() == [None, "Action", "Drama", "Comedy", "Action", None]


def test_titles_fall_back_to_the_item_token():
    assert item_titles(fake_dataset()) == ["[PAD]", "Heat", "Fargo", "c", "Heat", "e"]


def test_missing_field_and_unknown_rule_are_explained():
    with pytest.raises(DatasetError, match="no field 'class'.*--category_field"):
        item_categories(fake_dataset(), "class")
    with pytest.raises(ConfigError, match="most_frequent"):
        item_categories(fake_dataset(), "genre", "rarest")


def test_a_model_without_prototypes_is_refused_with_the_parts_it_lacks():
    with pytest.raises(ConfigError, match="prototypes"):
        check_model(torch.nn.Linear(2, 2))


def test_the_category_field_is_found_or_its_absence_explained():
    from recbole_disentangle.analysis.representations import category_field

    dataset = fake_dataset()
    assert category_field(dataset) == "genre"  # the first of CATEGORY_FIELDS the item file loaded
    assert category_field(dataset, "title") == "title"
    with pytest.raises(ConfigError, match=r"--category_field 'colour'.*no field 'colour'.*loaded fields: genre, title"):
        category_field(dataset, "colour")
    del dataset.item_feat["genre"]
    assert category_field(dataset) is None  # none of the default names: the caller warns


def test_a_model_without_tau_is_refused_by_name_not_given_tau_1():
    import pytest
    import torch

    from recbole_disentangle.analysis.representations import concept_logits
    from recbole_disentangle.errors import ConfigError

    model = SimpleNamespace(item_embedding=torch.ones(3, 2), prototypes=torch.ones(2, 2), similarity="cosine",
                            log_concepts=None, encode=None, user_rows=None)
    with pytest.raises(ConfigError, match="lacks tau"):
        concept_logits(model)


def test_the_four_models_implement_the_documented_hooks():
    from recbole_disentangle import registry
    from recbole_disentangle.model.base import ModelHooks

    for name in registry.PLUGIN_MODELS:
        assert issubclass(registry.get_model(name), ModelHooks), name
    assert registry.plugin_lineage("SEM-MacridVAE") == ["MacridVAE", "SEM-MacridVAE"]
    assert registry.plugin_lineage("MultiVAE") == []
