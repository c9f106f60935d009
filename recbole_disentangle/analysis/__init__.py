"""Interpretability and control of a trained disentangled model, from its checkpoint.

``analyse(model_file, out_dir, ...)`` (and ``python -m recbole_disentangle.analysis``) loads the
model and its data set with :func:`recbole_disentangle.quick_start.load_data_and_model` and writes
into ``out_dir``:

* ``items_by_concept.png``, ``items_by_category.png``, ``items_and_users.png``: t-SNE concept maps
  (:mod:`.concept_maps`);
* ``traversals/*.png``: one strip per traversal (:mod:`.traversal`);
* ``analysis.json``: every number: concept-category alignment (NMI, ARI, Hungarian accuracy) of
  the prototype concepts and, beside it, of K-means clusters of the item vectors (``kmeans``:
  both low = the vectors hold no category structure; K-means high, prototypes low = the
  prototypes missed it), concept sizes and their entropy, each concept's name (``concepts``: its
  commonest categories and top items, :mod:`.concepts`), micro-disentanglement of items and
  users, the traversals, and a before/after re-ranking for one user (:mod:`.control`).

Items are the ones seen in training (an item without interactions keeps its random
initialisation, so its concept says nothing). An item's concept is the mode of p(c_i)
(:func:`.representations.item_concepts`) whatever the model's ``test_assignment``. Works for
every model with MacridVAE's parts (MacridVAE, SEM-MacridVAE).

Categories come from ``category_field`` or, unnamed, the first of
:data:`.representations.CATEGORY_FIELDS` the item file loaded. A named field that is not loaded is
a ConfigError; with no field named and none found the alignment is not computed, and an
:class:`AnalysisWarning` (and the command's summary) says so and how to name one.

Planted factors (``factor_*`` float fields) are traversed; a circular one (an angle: named in
``circular_factors`` or in the data set's ``circular_fields``) is judged by circular measures
(:mod:`.traversal`), a linear one by Spearman's correlation.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from recbole_disentangle.analysis import concept_maps, concepts, control, representations
from recbole_disentangle.analysis.representations import (
    CATEGORY_FIELDS,
    float_item_fields,
    item_categories,
    item_titles,
    item_tokens,
    model_view,
    user_components,
    user_confidence,
)
from recbole_disentangle.analysis.traversal import (
    circular_linear_correlation,
    circular_monotonicity,
    circular_periods,
    circular_strictly_monotone,
    factor_dimension,
    factor_direction,
    spearman,
    traverse,
    traverse_direction,
)
from recbole_disentangle.data.fields import loaded_item_fields
from recbole_disentangle.errors import ConfigError
from recbole_disentangle.evaluation.disentanglement import alignment, concept_sizes, independence, kmeans_alignment, size_entropy

__all__ = ["AnalysisWarning", "CATEGORY_FIELDS", "analyse", "concept_maps", "concepts", "control", "representations",
           "traverse", "traverse_direction"]


class AnalysisWarning(UserWarning):
    """A part of the analysis could not be computed; the message says which, why and what to do."""


def _internal_user(dataset, token) -> int:
    try:
        return int(dataset.token2id(dataset.uid_field, str(token)))
    except ValueError:
        raise ConfigError(f"User '{token}' is not in data set '{dataset.dataset_name}'.") from None


def _internal_item(dataset, token) -> int:
    try:
        return int(dataset.token2id(dataset.iid_field, str(token)))
    except ValueError:
        raise ConfigError(f"Item '{token}' is not in data set '{dataset.dataset_name}'.") from None


def analyse(
    model_file: str | Path,
    out_dir: str | Path,
    *,
    category_field: str | None = None,
    multi_label: str = "most_frequent",
    factor_fields: list[str] | None = None,
    max_users: int = 300,
    steps: int = 5,
    gamma: float = 1.0,
    beam_size: int = 10,
    tsne_iter: int = 1000,
    plots: bool = True,
    traverse_item: str | None = None,
    traverse_user: str | None = None,
    traverse_concept: int | None = None,
    traverse_dim: int | None = None,
    control_user: str | None = None,
    control_concept: int | None = None,
    control_weight: float | None = None,
    control_dim: int | None = None,
    control_delta: float | None = None,
    circular_factors: list[str] | None = None,
    topk: int = 10,
    seed: int = 0,
) -> dict:
    """Run the whole analysis; returns what ``analysis.json`` holds (see the module docstring).

    ``control_weight``: the weight w_k of the control concept; default 0 (mute it), or 1 (keep
    it as trained) when ``control_dim`` moves one of its dimensions, since a muted concept's
    component takes no part in the scores. ``circular_factors``: factor fields that are angles,
    "name" (radians) or "name:period" (e.g. "hue:360"), besides the data set's ``circular_fields``.
    """
    from recbole_disentangle.quick_start import load_data_and_model

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config, model, dataset, *_ = load_data_and_model(str(model_file), map_location="cpu")
    representations.check_model(model)
    view = model_view(model)
    d = int(view.item_repr.shape[1])
    # Options naming a concept or a dimension are checked before any work is done.
    for option, value in (("--control_concept", control_concept), ("--traverse_concept", traverse_concept)):
        if value is not None:
            control.check_concept(value, view.n_concepts, option)
    for option, value in (("--control_dim", control_dim), ("--traverse_dim", traverse_dim)):
        if value is not None:
            control.check_dimension(value, d, option)
    if control_weight is None:
        control_weight = 1.0 if control_dim is not None else 0.0
    factor_fields = float_item_fields(dataset) if factor_fields is None else list(factor_fields)
    missing = [f for f in factor_fields if dataset.item_feat is None or f not in dataset.item_feat.columns]
    if missing:
        raise ConfigError(
            f"--factor_fields names {', '.join(missing)}, not loaded from the item file of '{config['dataset']}' "
            f"(its loaded fields: {', '.join(loaded_item_fields(dataset)) or 'none'})."
        )
    factors = {f: dataset.item_feat[f].numpy().astype(np.float64) for f in factor_fields}
    periods = circular_periods(circular_factors)
    unknown = sorted(set(periods) - set(factors))
    if unknown:
        raise ConfigError(
            f"--circular_factors names {', '.join(unknown)}, which is not a traversed factor field "
            f"(traversed: {', '.join(factors) or 'none'}); add it with --factor_fields."
        )
    # declared by the data set (its YAML's circular_fields); the caller's period wins
    periods = {**{f: p for f, p in circular_periods(config["circular_fields"]).items() if f in factors}, **periods}
    items = np.flatnonzero(view.trained_items)
    tokens, titles = item_tokens(dataset), item_titles(dataset)
    rng = np.random.default_rng(seed)
    result: dict = {
        "model_file": str(model_file),
        "model": config["model"],
        "dataset": config["dataset"],
        "similarity": view.similarity,
        "n_concepts": view.n_concepts,
        "embedding_size": d,
        "n_items_analysed": int(len(items)),
    }

    # ---- macro: concepts against categories --------------------------------------------
    category_field = representations.category_field(dataset, category_field)
    categories, not_computed = None, None
    item_concept = view.concepts[items]  # the mode of p(c_i), never the soft test-time c_i
    if category_field is not None:
        categories = item_categories(dataset, category_field, multi_label)[items]
        labelled = np.array([c is not None for c in categories], dtype=bool)
        if labelled.any():
            labels = categories[labelled].astype(str)
            result["alignment"] = {
                "category_field": category_field,
                "multi_label_rule": multi_label,
                **alignment(item_concept[labelled], labels, view.n_concepts),
                # the same numbers for K-means on h: did the prototypes miss a structure h has?
                "kmeans": kmeans_alignment(view.item_repr[items][labelled], labels, view.n_concepts, view.similarity, seed),
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
        result["alignment"] = {
            "category_field": category_field, "not_computed": not_computed, "concept_sizes": sizes.tolist(),
            "concept_entropy": entropy, "concept_entropy_normalised": normalised,
        }
        warnings.warn(f"concept-category alignment is not computed: {not_computed}", AnalysisWarning, stacklevel=2)
    result["concepts"] = concepts.describe_concepts(
        view.concepts, view.concept_probs, view.concept_logits, view.tau, items, titles, tokens, categories
    )

    # ---- micro: independence of dimensions ---------------------------------------------
    history = model.history
    users = np.flatnonzero(np.diff(history.indptr) > 0)
    z = user_components(model, users)  # (N, K, d)
    result["independence"] = {
        "items": independence(view.item_repr[items]),
        # the paper's d' = K d user representation z_u = [z^(1); ...; z^(K)]
        "users": independence(z.reshape(len(users), -1)),
        "n_users": int(len(users)),
    }

    confidence = user_confidence(model, users, view.concept_probs)
    # ---- control: one user's re-ranked top-k after an adjustment (before the slow parts, so a
    # refused adjustment fails at once) -------------------------------------------------------
    if len(users):
        user = _internal_user(dataset, control_user) if control_user is not None else int(users[0])
        row = np.flatnonzero(users == user)
        conf = confidence[row[0]] if len(row) else np.zeros(view.n_concepts)
        k = int(conf.argmax()) if control_concept is None else int(control_concept)
        weights = np.ones(view.n_concepts)
        weights[k] = control_weight
        change = control.controlled(
            model, user, topk, concept_weights=weights, concept=k, dimension=control_dim, delta=control_delta
        )

        def listing(recs):
            return [
                {"item": str(tokens[r.item]), "title": titles[r.item], "score": r.score, "concept": r.concept,
                 "item_concept": r.item_concept}
                for r in recs
            ]

        result["control"] = {
            "user": str(dataset.field2id_token[dataset.uid_field][user]),
            "user_confidence": conf.tolist(),
            "concept": k,
            "concept_weight": control_weight,
            "dimension": control_dim,
            "delta": control_delta,
            "before": listing(change["before"]),
            "after": listing(change["after"]),
            "changed": change["changed"],
        }

    # ---- concept maps ----------------------------------------------------------------
    if plots:
        sample = np.sort(rng.choice(len(users), size=min(max_users, len(users)), replace=False))
        top2 = concept_maps.top_components(confidence[sample], 2)  # (S, 2)
        user_points = z[sample[:, None], top2].reshape(-1, z.shape[-1])
        xy = concept_maps.tsne(np.concatenate([view.item_repr[items], user_points]), view.similarity, seed, tsne_iter)
        label = f"{config['model']} on {config['dataset']} ({view.similarity} similarity, K = {view.n_concepts})"
        result["plots"] = concept_maps.draw(
            out_dir, xy[: len(items)], item_concept, view.n_concepts,
            categories=categories, category_field=category_field or "category",
            user_xy=xy[len(items):], user_concepts=top2.reshape(-1), label=label,
            concept_labels=[concepts.legend_label(entry) for entry in result["concepts"]],
        )

    # ---- traversals: one start item per concept, its most popular one (the best-trained h_i and a
    # name people know; the papers leave the start item open) --------------------------------
    eligible = view.trained_items
    popularity = np.asarray(history.sum(axis=0)).ravel()
    traversals = []
    strip_dir = out_dir / "traversals"
    for k in range(view.n_concepts):
        members = items[item_concept == k]
        if len(members) < 2 * steps:
            continue
        start = int(members[popularity[members].argmax()])
        if factors:
            plans = [
                (name,) + factor_dimension(view.item_repr[members], factors[name][members], periods.get(name))
                for name in factors
            ]
        else:  # no planted factor: the dimension along which the concept's items vary most
            plans = [(None, int(view.item_repr[members].var(axis=0).argmax()), None)]
        for name, j, rho in plans:
            try:
                walk = traverse(
                    view.item_repr[start], j, view.item_repr, view.concepts, view.prototypes, steps,
                    similarity=view.similarity, tau=view.tau, gamma=gamma, beam_size=beam_size, eligible=eligible,
                )
            except ValueError as err:  # too few items of the concept in the range
                traversals.append({"concept": k, "dimension": j, "factor": name, "skipped": str(err)})
                continue
            record = walk.to_dict()
            record.update(
                start_item=str(tokens[start]), start_title=titles[start],
                retrieved=[{"item": str(tokens[i]), "title": titles[i], "h_j": v} for i, v in zip(walk.items, walk.values)],
                all_in_start_concept=bool(all(view.concepts[i] == k for i in walk.items)),
            )
            del record["items"]
            if name is not None:
                along = factors[name][walk.items]
                record.update(factor=name, factor_rho_over_concept=rho, factor_values=along.tolist(), factor_spearman=spearman(walk.values, along))
            if name in periods:
                # an angle: rho_over_concept is then Mardia's circular-linear r of h_j with it
                period = periods[name]
                record.update(
                    factor_circular_period=period,
                    factor_circular_monotonicity=circular_monotonicity(walk.values, along, period),
                    factor_circular_linear=circular_linear_correlation(walk.values, along, period),
                    direction_traversal={"skipped": f"'{name}' is circular: no single direction of h carries an angle "
                                                    "(it takes a plane); judge the dimension traversal's circular measures"},
                )
            elif name is not None:
                # The same search along the direction of h that carries the factor best: a model
                # may hold a factor linearly yet spread over several coordinates.
                direction, direction_rho = factor_direction(view.item_repr[members], factors[name][members], seed=seed)
                try:
                    steered = traverse_direction(
                        view.item_repr[start], direction, view.item_repr, view.concepts, view.prototypes, steps,
                        similarity=view.similarity, tau=view.tau, gamma=gamma, beam_size=beam_size, eligible=eligible,
                    )
                    along = factors[name][steered.items]
                    record["direction_traversal"] = {
                        "factor_rho_over_concept": direction_rho,
                        "values": steered.values,
                        "retrieved": [str(tokens[i]) for i in steered.items],
                        "all_in_start_concept": bool(all(view.concepts[i] == k for i in steered.items)),
                        "factor_values": along.tolist(),
                        "factor_spearman": spearman(steered.values, along),
                    }
                except ValueError as err:
                    record["direction_traversal"] = {"factor_rho_over_concept": direction_rho, "skipped": str(err)}
            if plots:
                strip_dir.mkdir(exist_ok=True)
                suffix = f"_{name}" if name else ""
                record["plot"] = concept_maps.draw_traversal(
                    strip_dir / f"concept{k}_dim{j}{suffix}.png", walk.values, [titles[i] for i in walk.items],
                    factor=factors[name][walk.items] if name else None, factor_name=name or "",
                    title=f"concept {k}, dimension {j}, from '{titles[start][:40]}'",
                )
            traversals.append(record)
    # ---- a traversal the caller asked for: from an item, or from a user's component k -------
    if traverse_item is not None or traverse_user is not None:
        if traverse_item is not None:
            start_row = _internal_item(dataset, traverse_item)
            h_star, origin = view.item_repr[start_row], f"item {traverse_item}"
        else:
            user = _internal_user(dataset, traverse_user)
            row = np.flatnonzero(users == user)
            if not len(row):
                raise ConfigError(f"User '{traverse_user}' has no training interactions, so no learned z_u to start from.")
            k = int(confidence[row[0]].argmax()) if traverse_concept is None else int(traverse_concept)
            h_star, origin = z[row[0], k], f"user {traverse_user}, component z_u^({k})"
        j = int(np.abs(h_star).argmax()) if traverse_dim is None else int(traverse_dim)
        walk = traverse(
            h_star, j, view.item_repr, view.concepts, view.prototypes, steps,
            similarity=view.similarity, tau=view.tau, gamma=gamma, beam_size=beam_size, eligible=eligible,
        )
        record = walk.to_dict()
        del record["items"]
        record.update(
            start=origin,
            retrieved=[{"item": str(tokens[i]), "title": titles[i], "h_j": v} for i, v in zip(walk.items, walk.values)],
        )
        if plots:
            strip_dir.mkdir(exist_ok=True)
            record["plot"] = concept_maps.draw_traversal(
                strip_dir / f"requested_dim{j}.png", walk.values, [titles[i] for i in walk.items],
                title=f"{origin}: concept {walk.concept}, dimension {j}",
            )
        result["requested_traversal"] = record
    result["traversals"] = traversals
    result["factor_traversals"] = sum("factor_spearman" in t for t in traversals)
    circular = [t for t in traversals if "factor_circular_monotonicity" in t]
    if circular:
        result["circular_factor_traversals"] = len(circular)
        result["factor_traversal_mean_abs_circular_monotonicity"] = float(
            np.mean([abs(t["factor_circular_monotonicity"]) for t in circular])
        )
        result["factor_traversal_circular_strictly_monotone"] = sum(
            circular_strictly_monotone(t["factor_values"], t["factor_circular_period"]) for t in circular
        )
    done = [t for t in traversals if "factor_spearman" in t and "factor_circular_monotonicity" not in t]
    if done:
        result["factor_traversal_mean_abs_spearman"] = float(np.mean([abs(t["factor_spearman"]) for t in done]))
        result["factor_traversal_strictly_monotone"] = sum(_strictly_monotone(t["factor_values"]) for t in done)
        steered = [t["direction_traversal"] for t in done if "factor_spearman" in t["direction_traversal"]]
        if steered:
            result["factor_direction_traversal_mean_abs_spearman"] = float(np.mean([abs(t["factor_spearman"]) for t in steered]))
            result["factor_direction_traversal_strictly_monotone"] = sum(_strictly_monotone(t["factor_values"]) for t in steered)

    result["seconds"] = time.perf_counter() - started
    (out_dir / "analysis.json").write_text(json.dumps(result, indent=2, default=_plain), encoding="utf-8")
    return result


def _strictly_monotone(values) -> bool:
    steps = np.diff(np.asarray(values, dtype=np.float64))
    return bool(len(steps)) and (bool(np.all(steps > 0)) or bool(np.all(steps < 0)))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
