"""The disentanglement measures on hand-made cases whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recbole_disentangle.evaluation.disentanglement import (
    alignment,
    concept_sizes,
    hungarian_accuracy,
    independence,
    size_entropy,
)


def test_perfect_alignment_under_relabelling_scores_one():
    categories = np.array(["drama", "drama", "comedy", "comedy", "horror", "horror"])
    concepts = np.array([2, 2, 0, 0, 1, 1])  # the same partition, other names
    result = alignment(concepts, categories, n_concepts=3)
    assert result["nmi"] == pytest.approx(1.0)
    assert result["ari"] == pytest.approx(1.0)
    assert result["hungarian_accuracy"] == pytest.approx(1.0)
    assert result["concept_sizes"] == [2, 2, 2]
    assert result["concept_entropy_normalised"] == pytest.approx(1.0)


def test_hungarian_accuracy_is_one_to_one():
    categories = np.array([0, 0, 0, 0, 1, 1])
    # concept 0 holds all of category 0 and one of category 1; concept 1 the other one of category 1
    concepts = np.array([0, 0, 0, 0, 0, 1])
    assert hungarian_accuracy(concepts, categories) == pytest.approx(5 / 6)
    # two concepts splitting one category: only one of them can be matched to it
    assert hungarian_accuracy(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0])) == pytest.approx(0.5)


def test_collapse_shows_in_sizes_and_entropy():
    categories = np.repeat(np.arange(4), 25)
    collapsed = alignment(np.zeros(100, dtype=int), categories, n_concepts=4)
    assert collapsed["concept_sizes"] == [100, 0, 0, 0]
    assert collapsed["concept_entropy"] == pytest.approx(0.0)
    assert collapsed["largest_concept_share"] == 1.0
    assert collapsed["nmi"] == pytest.approx(0.0)
    assert collapsed["hungarian_accuracy"] == pytest.approx(0.25)
    entropy, normalised = size_entropy(concept_sizes([0, 1, 2, 3], 4))
    assert entropy == pytest.approx(math.log(4)) and normalised == pytest.approx(1.0)


def test_random_concepts_score_near_chance():
    rng = np.random.default_rng(0)
    result = alignment(rng.integers(0, 5, 5000), rng.integers(0, 5, 5000), 5)
    assert result["nmi"] < 0.01 and abs(result["ari"]) < 0.01


def test_independent_dimensions_score_near_one_and_copies_lower():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20000, 6))
    assert independence(x) == pytest.approx(1.0, abs=0.01)
    # one dimension a copy of another: one of the 15 pairs has |corr| = 1
    copied = np.column_stack([x, x[:, 0]])  # d = 7, 21 pairs
    assert independence(copied) == pytest.approx(1 - 1 / 21, abs=0.01)
    # all dimensions the same (up to sign and scale): every |corr| = 1
    same = np.column_stack([x[:, 0], -2 * x[:, 0], 3 * x[:, 0]])
    assert independence(same) == pytest.approx(0.0, abs=1e-9)


def test_independence_counts_a_constant_dimension_as_uncorrelated():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.standard_normal(5000), np.full(5000, 3.0)])
    assert independence(x) == pytest.approx(1.0, abs=0.05)


def test_bad_shapes_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="one of each"):
        alignment([0, 1], [0])
    with pytest.raises(ValueError, match="matrix"):
        independence(np.zeros(5))


def test_kmeans_sees_category_clusters_that_the_prototypes_miss():
    """h clustered by category on dimensions 0-2, prototypes pointing along dimensions 3-5 where
    only noise lives: the concepts (nearest prototype) are noise, K-means on h finds the categories."""
    from recbole_disentangle.analysis.traversal import nearest_prototype
    from recbole_disentangle.evaluation.disentanglement import kmeans_alignment

    rng = np.random.default_rng(0)
    categories = np.repeat(np.array(["drama", "comedy", "horror"]), 60)
    centres = np.eye(6)[:3]
    h = 2.0 * centres[np.repeat(np.arange(3), 60)] + 0.1 * rng.standard_normal((180, 6))
    prototypes = np.eye(6)[3:]
    concepts = nearest_prototype(h, prototypes)
    by_prototypes = alignment(concepts, categories, 3)
    for similarity in ("cosine", "inner"):
        by_kmeans = kmeans_alignment(h, categories, 3, similarity, seed=0)
        assert by_kmeans["nmi"] > 0.95 and by_kmeans["hungarian_accuracy"] > 0.95 and by_kmeans["ari"] > 0.95
    assert by_prototypes["nmi"] < 0.1 and by_prototypes["hungarian_accuracy"] < 0.5
    # both low when h itself holds no category structure
    shuffled = kmeans_alignment(h, rng.permutation(categories), 3, "cosine", seed=0)
    assert shuffled["nmi"] < 0.1
    assert by_kmeans["n_clusters"] == 3 and kmeans_alignment(h, categories, 3, "cosine")["space"] == "L2-normalised h"
    with pytest.raises(ValueError, match="at least K"):
        kmeans_alignment(h[:2], categories[:2], 3)


def test_kmeans_on_cosine_models_clusters_directions_not_lengths():
    """Two directions, each with short and long vectors: on the unit sphere (cosine) K = 2 splits by
    direction; on raw h (inner) the long vectors dominate and the directions are not recovered."""
    from recbole_disentangle.evaluation.disentanglement import kmeans_alignment

    rng = np.random.default_rng(1)
    direction = np.repeat([0, 1], 40)
    length = np.tile(np.repeat([1.0, 10.0], 20), 2)
    h = np.eye(2)[direction] * length[:, None] + 0.05 * rng.standard_normal((80, 2))
    assert kmeans_alignment(h, direction, 2, "cosine")["nmi"] > 0.95
    assert kmeans_alignment(h, direction, 2, "inner")["nmi"] < 0.5
