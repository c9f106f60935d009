"""Disentanglement measures of a trained model's representations (Ma et al. 2019, Sec. 3.3-3.4).

Macro disentanglement is judged by how well the inferred concepts (arg max_k c_ik) match
ground-truth item categories: normalised mutual information, adjusted Rand index, and accuracy
after the Hungarian matching of concepts to categories. Concept sizes and their entropy show mode
collapse (most items on one prototype, the paper's Figure 2e for inner-product similarity).
The same three numbers for K-means clusters of the item vectors (:func:`kmeans_alignment`) tell
the two failures apart: both low, the item vectors hold no category structure; K-means high and
the prototypes low, the structure is there but the prototypes do not sit on it.
Micro disentanglement is the paper's independence score 1 - 2/(d(d-1)) sum_{i<j} |corr_ij|.

All functions take plain numpy arrays, so they serve any model and any label source.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def _labels(concepts, categories) -> tuple[np.ndarray, np.ndarray]:
    concepts, categories = np.asarray(concepts).ravel(), np.asarray(categories).ravel()
    if concepts.shape != categories.shape:
        raise ValueError(f"{concepts.size} concepts but {categories.size} categories: give one of each per item.")
    if concepts.size == 0:
        raise ValueError("no items to compare: the concept and category arrays are empty.")
    return concepts, categories


def hungarian_accuracy(concepts, categories) -> float:
    """Share of items whose concept maps to their category under the best one-to-one matching.

    The matching maximises the number of agreeing items (scipy's ``linear_sum_assignment`` on the
    concept x category contingency table). With more concepts than categories (or the reverse) the
    unmatched ones count as wrong, so splitting a category over two concepts is penalised.
    """
    concepts, categories = _labels(concepts, categories)
    table = contingency_matrix(categories, concepts)  # (categories, concepts)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / concepts.size)


def _partition_scores(concepts, categories) -> dict:
    concepts, categories = _labels(concepts, categories)
    return {
        "nmi": float(normalized_mutual_info_score(categories, concepts)),
        "ari": float(adjusted_rand_score(categories, concepts)),
        "hungarian_accuracy": hungarian_accuracy(concepts, categories),
    }


def concept_sizes(concepts, n_concepts: int) -> np.ndarray:
    """Items per concept 0..K-1 (concepts with no item included, as 0)."""
    concepts = np.asarray(concepts, dtype=np.int64).ravel()
    return np.bincount(concepts, minlength=n_concepts)


def size_entropy(sizes) -> tuple[float, float]:
    """Entropy (nats) of the concept-size distribution, and that entropy / ln K (1 = equal sizes).

    A collapsed model (all items on one prototype) scores 0; K equal concepts score ln K and 1.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    total = sizes.sum()
    if total <= 0:
        return 0.0, 0.0
    p = sizes[sizes > 0] / total
    entropy = float(-(p * np.log(p)).sum())
    return entropy, entropy / math.log(len(sizes)) if len(sizes) > 1 else 0.0


def alignment(concepts, categories, n_concepts: int | None = None) -> dict:
    """NMI, ARI, Hungarian accuracy, concept sizes and their entropy, as a plain dict.

    ``concepts``: inferred concept per item (arg max_k c_ik); ``categories``: ground-truth label per
    item (any hashable values). NMI uses the arithmetic-mean normalisation (scikit-learn's default).
    """
    concepts, categories = _labels(concepts, categories)
    n_concepts = int(n_concepts if n_concepts is not None else concepts.max() + 1)
    sizes = concept_sizes(concepts, n_concepts)
    entropy, normalised = size_entropy(sizes)
    return {
        **_partition_scores(concepts, categories),
        "n_items": int(concepts.size),
        "n_categories": int(len(np.unique(categories))),
        "concept_sizes": sizes.tolist(),
        "concept_entropy": entropy,
        "concept_entropy_normalised": normalised,
        "largest_concept_share": float(sizes.max() / sizes.sum()),
    }


def comparable_space(points, similarity: str) -> np.ndarray:
    """The vectors as the model compares them: L2-normalised for cosine similarity, raw for inner.

    With cosine only directions matter, and Euclidean distance between unit vectors orders
    neighbours as cosine does, so Euclidean tools (K-means, t-SNE) then see what the model sees.
    """
    points = np.asarray(points, dtype=np.float64)
    if similarity == "cosine":
        return points / np.maximum(np.linalg.norm(points, axis=-1, keepdims=True), 1e-12)
    return points


def kmeans_alignment(reprs, categories, n_clusters: int, similarity: str = "cosine", seed: int = 0) -> dict:
    """NMI, ARI and Hungarian accuracy of K-means clusters of ``reprs`` against ``categories``.

    ``reprs``: (n, d) item vectors h_i, one per labelled item; K-means (``n_clusters`` = K, the
    number of concepts, so it gets no more freedom than the prototypes; 10 restarts, ``seed``)
    runs in :func:`comparable_space`. Read beside :func:`alignment` of the prototype concepts:
    K-means high and prototypes low means the vectors cluster by category and the prototypes
    missed it; both low means the vectors themselves hold no category structure.
    """
    from sklearn.cluster import KMeans

    x = comparable_space(reprs, similarity)
    categories = np.asarray(categories).ravel()
    if x.ndim != 2 or x.shape[0] != categories.size:
        raise ValueError(f"{x.shape[0] if x.ndim else 0} item vectors but {categories.size} categories: give one of each per item.")
    if x.shape[0] < n_clusters:
        raise ValueError(f"K-means needs at least K = {n_clusters} items, got {x.shape[0]}.")
    clusters = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(x)
    return {
        **_partition_scores(clusters, categories),
        "n_clusters": int(n_clusters),
        "space": "L2-normalised h" if similarity == "cosine" else "raw h",
        "seed": int(seed),
    }


def independence(representations) -> float:
    """Micro disentanglement 1 - 2/(d(d-1)) sum_{i<j} |corr_ij| (Ma et al. 2019, Sec. 3.4).

    ``representations``: (n, d), one row per item or user. corr is Pearson's correlation between
    dimensions over the rows. A constant dimension has no defined correlation; it is counted as
    uncorrelated (0) with every other, since it carries no factor that could be entangled.
    Returns 1 for d = 1 (nothing to correlate).
    """
    x = np.asarray(representations, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need an (n >= 2, d) matrix of representations, got shape {x.shape}.")
    d = x.shape[1]
    if d < 2:
        return 1.0
    x = x - x.mean(axis=0)
    std = np.sqrt((x**2).sum(axis=0))
    live = std > 1e-12 * max(1.0, float(std.max()))
    corr = np.zeros((d, d))
    z = x[:, live] / std[live]
    corr[np.ix_(live, live)] = z.T @ z
    upper = np.abs(corr[np.triu_indices(d, k=1)])
    return float(1.0 - 2.0 / (d * (d - 1)) * upper.sum())
