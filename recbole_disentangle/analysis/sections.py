"""The sections of :func:`recbole_disentangle.analysis.analyse`, one function each.

:class:`AnalysisOptions` holds what the caller chose; :class:`Subject` what was loaded and
computed once for every section (the model's view, the analysed items and users, the planted
factors). Each section reads those two and returns its part of ``analysis.json``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recbole_disentangle.analysis import concept_maps, concepts, control, representations
from recbole_disentangle.analysis.representations import (
    CATEGORY_FIELDS,
    ModelView,
    float_item_fields,
    item_categories,
    item_titles,
    item_tokens,
    model_view,
    user_components,
    user_confidence,
)
from recbole_disentangle.analysis.traversal import circular_periods
from recbole_disentangle.data.fields import loaded_item_fields
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.evaluation.disentanglement import alignment, concept_sizes, independence, kmeans_alignment, size_entropy


class AnalysisWarning(UserWarning):
    """A part of the analysis could not be computed; the message says which, why and what to do."""


@dataclass
class AnalysisOptions:
    """What :func:`~recbole_disentangle.analysis.analyse` is asked for (its keyword arguments).

    ``control_weight``: the weight w_k of the control concept; None = 0 (mute it), or 1 (keep it
    as trained) when ``control_dim`` moves one of its dimensions, since a muted concept's
    component takes no part in the scores. ``circular_factors``: factor fields that are angles,
    "name" (radians) or "name:period" (e.g. "hue:360"), besides the data set's ``circular_fields``.
    """

    category_field: str | None = None
    multi_label: str = "most_frequent"
    factor_fields: list[str] | None = None
    max_users: int = 300
    steps: int = 5
    gamma: float = 1.0
    beam_size: int = 10
    tsne_iter: int = 1000
    plots: bool = True
    traverse_item: str | None = None
    traverse_user: str | None = None
    traverse_concept: int | None = None
    traverse_dim: int | None = None
    control_user: str | None = None
    control_concept: int | None = None
    control_weight: float | None = None
    control_dim: int | None = None
    control_delta: float | None = None
    circular_factors: list[str] | None = None
    topk: int = 10
    seed: int = 0


@dataclass
class Subject:
    """The loaded model and data set, and what every section reads of them."""

    config: object
    model: object
    dataset: object
    view: ModelView
    out_dir: Path
    items: np.ndarray  # items seen in training: the ones analysed
    tokens: np.ndarray
    titles: list
    factors: dict = field(default_factory=dict)  # planted factor field -> value per item
    periods: dict = field(default_factory=dict)  # circular factor field -> its period
    users: np.ndarray | None = None  # users with training interactions
    z: np.ndarray | None = None  # their components, (N, K, d)
    confidence: np.ndarray | None = None  # their confidence per concept, (N, K)
    item_concept: np.ndarray | None = None  # the mode of p(c_i) of each analysed item
    categories: np.ndarray | None = None
    category_field: str | None = None


def internal_user(dataset, token) -> int:
    try:
        return int(dataset.token2id(dataset.uid_field, str(token)))
    except ValueError:
        raise ConfigError(f"User '{token}' is not in data set '{dataset.dataset_name}'.") from None


def internal_item(dataset, token) -> int:
    try:
        return int(dataset.token2id(dataset.iid_field, str(token)))
    except ValueError:
        raise ConfigError(f"Item '{token}' is not in data set '{dataset.dataset_name}'.") from None


# ---- before any work ----------------------------------------------------------------------
def check_options(options: AnalysisOptions, view: ModelView) -> AnalysisOptions:
    """Options naming a concept or a dimension are checked before any work is done; the control
    weight's default is filled in."""
    d = int(view.item_repr.shape[1])
    for option, value in (("--control_concept", options.control_concept), ("--traverse_concept", options.traverse_concept)):
        if value is not None:
            control.check_concept(value, view.n_concepts, option)
    for option, value in (("--control_dim", options.control_dim), ("--traverse_dim", options.traverse_dim)):
        if value is not None:
            control.check_dimension(value, d, option)
    if options.control_weight is None:
        options.control_weight = 1.0 if options.control_dim is not None else 0.0
    return options


def planted_factors(config, dataset, options: AnalysisOptions) -> tuple[dict, dict]:
    """(factor field -> value per item, circular factor field -> period), checked against the data set."""
    factor_fields = float_item_fields(dataset) if options.factor_fields is None else list(options.factor_fields)
    missing = [f for f in factor_fields if dataset.item_feat is None or f not in dataset.item_feat.columns]
    if missing:
        raise ConfigError(
            f"--factor_fields names {', '.join(missing)}, not loaded from the item file of '{config['dataset']}' "
            f"(its loaded fields: {', '.join(loaded_item_fields(dataset)) or 'none'})."
        )
    factors = {f: dataset.item_feat[f].numpy().astype(np.float64) for f in factor_fields}
    periods = circular_periods(options.circular_factors)
    unknown = sorted(set(periods) - set(factors))
    if unknown:
        raise ConfigError(
            f"--circular_factors names {', '.join(unknown)}, which is not a traversed factor field "
            f"(traversed: {', '.join(factors) or 'none'}); add it with --factor_fields."
        )
    # declared by the data set (its YAML's circular_fields); the caller's period wins
    periods = {**{f: p for f, p in circular_periods(config["circular_fields"]).items() if f in factors}, **periods}
    return factors, periods


def load_subject(config, model, dataset, out_dir: Path, options: AnalysisOptions) -> Subject:
    representations.check_model(model)
    view = model_view(model)
    check_options(options, view)
    factors, periods = planted_factors(config, dataset, options)
    return Subject(config, model, dataset, view, out_dir, items=np.flatnonzero(view.trained_items),
                   tokens=item_tokens(dataset), titles=item_titles(dataset), factors=factors, periods=periods)


# ---- macro: concepts against categories ----------------------------------------------------
def macro_section(subject: Subject, options: AnalysisOptions) -> dict:
    """Concept-category alignment (or why not, with the concept sizes); sets the subject's categories."""
    config, dataset, view, items = subject.config, subject.dataset, subject.view, subject.items
    category_field = representations.category_field(dataset, options.category_field)
    categories, not_computed = None, None
    item_concept = view.concepts[items]  # the mode of p(c_i), never the soft test-time c_i
    section = None
    if category_field is not None:
        categories = item_categories(dataset, category_field, options.multi_label)[items]
        labelled = np.array([c is not None for c in categories], dtype=bool)
        if labelled.any():
            labels = categories[labelled].astype(str)
            section = {
                "category_field": category_field,
                "multi_label_rule": options.multi_label,
                **alignment(item_concept[labelled], labels, view.n_concepts),
                # the same numbers for K-means on h: did the prototypes miss a structure h has?
                "kmeans": kmeans_alignment(view.item_repr[items][labelled], labels, view.n_concepts, view.similarity,
                                           options.seed),
            }
        else:
            not_computed = (
                f"field '{category_field}' gives none of the {len(items)} analysed items a category. "
                "Pass --category_field naming an item field that labels them."
            )
    else:
        unloaded = [f for f in CATEGORY_FIELDS if f in representations.item_file_fields(dataset)]
        how = "Pass --category_field FIELD naming a token or token_seq item field with ground-truth categories."
        if unloaded:
            how = f"'{unloaded[0]}' is in {config['dataset']}.item but load_col does not load it: add it there. " + how
        not_computed = (
            f"the item file of '{config['dataset']}' loaded none of the category fields "
            f"{', '.join(CATEGORY_FIELDS)} (its loaded fields: {', '.join(loaded_item_fields(dataset)) or 'none'}). {how}"
        )
    if not_computed is not None:
        sizes = concept_sizes(item_concept, view.n_concepts)
        entropy, normalised = size_entropy(sizes)
        section = {
            "category_field": category_field, "not_computed": not_computed, "concept_sizes": sizes.tolist(),
            "concept_entropy": entropy, "concept_entropy_normalised": normalised,
        }
        # stacklevel: the caller of analyse
        warnings.warn(f"concept-category alignment is not computed: {not_computed}", AnalysisWarning, stacklevel=3)
    subject.item_concept, subject.categories, subject.category_field = item_concept, categories, category_field
    return section


def concepts_section(subject: Subject) -> list:
    view = subject.view
    return concepts.describe_concepts(view.concepts, view.concept_probs, view.concept_logits, view.tau, subject.items,
                                      subject.titles, subject.tokens, subject.categories)


# ---- micro: independence of dimensions -----------------------------------------------------
def micro_section(subject: Subject) -> dict:
    """Independence of item and user dimensions; sets the subject's users, their z_u and confidence."""
    model, view = subject.model, subject.view
    users = np.flatnonzero(np.diff(model.history.indptr) > 0)
    z = user_components(model, users)  # (N, K, d)
    subject.users, subject.z = users, z
    subject.confidence = user_confidence(model, users, view.concept_probs)
    return {
        "items": independence(view.item_repr[subject.items]),
        # the paper's d' = K d user representation z_u = [z^(1); ...; z^(K)]
        "users": independence(z.reshape(len(users), -1)),
        "n_users": int(len(users)),
    }


# ---- control: one user's re-ranked top-k after an adjustment -------------------------------
def control_section(subject: Subject, options: AnalysisOptions) -> dict | None:
    """Before the slow parts, so that a refused adjustment fails at once; None without users."""
    users, view, dataset, tokens, titles = subject.users, subject.view, subject.dataset, subject.tokens, subject.titles
    if not len(users):
        return None
    user = internal_user(dataset, options.control_user) if options.control_user is not None else int(users[0])
    row = np.flatnonzero(users == user)
    conf = subject.confidence[row[0]] if len(row) else np.zeros(view.n_concepts)
    k = int(conf.argmax()) if options.control_concept is None else int(options.control_concept)
    weights = np.ones(view.n_concepts)
    weights[k] = options.control_weight
    change = control.controlled(subject.model, user, options.topk, concept_weights=weights, concept=k,
                                dimension=options.control_dim, delta=options.control_delta)

    def listing(recs):
        return [
            {"item": str(tokens[r.item]), "title": titles[r.item], "score": r.score, "concept": r.concept,
             "item_concept": r.item_concept}
            for r in recs
        ]

    return {
        "user": str(dataset.field2id_token[dataset.uid_field][user]),
        "user_confidence": conf.tolist(),
        "concept": k,
        "concept_weight": options.control_weight,
        "dimension": options.control_dim,
        "delta": options.control_delta,
        "before": listing(change["before"]),
        "after": listing(change["after"]),
        "changed": change["changed"],
    }


# ---- concept maps --------------------------------------------------------------------------
def concept_map_section(subject: Subject, options: AnalysisOptions, concept_entries: list) -> dict:
    view, users, z, items = subject.view, subject.users, subject.z, subject.items
    rng = np.random.default_rng(options.seed)
    sample = np.sort(rng.choice(len(users), size=min(options.max_users, len(users)), replace=False))
    top2 = concept_maps.top_components(subject.confidence[sample], 2)  # (S, 2)
    user_points = z[sample[:, None], top2].reshape(-1, z.shape[-1])
    xy = concept_maps.tsne(np.concatenate([view.item_repr[items], user_points]), view.similarity, options.seed,
                           options.tsne_iter)
    config = subject.config
    label = f"{config['model']} on {config['dataset']} ({view.similarity} similarity, K = {view.n_concepts})"
    return concept_maps.draw(
        subject.out_dir, xy[: len(items)], subject.item_concept, view.n_concepts,
        categories=subject.categories, category_field=subject.category_field or "category",
        user_xy=xy[len(items):], user_concepts=top2.reshape(-1), label=label,
        concept_labels=[concepts.legend_label(entry) for entry in concept_entries],
    )
