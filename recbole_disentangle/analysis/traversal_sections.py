"""The analysis's traversal sections: one per concept along each planted factor, and the one the
caller asks for; each a beam search of :mod:`.traversal` with the analysis's settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recbole_disentangle.analysis import concept_maps
from recbole_disentangle.analysis.sections import AnalysisOptions, Subject, internal_item, internal_user
from recbole_disentangle.analysis.traversal import (
    circular_linear_correlation,
    circular_monotonicity,
    circular_strictly_monotone,
    factor_dimension,
    factor_direction,
    spearman,
    traverse,
    traverse_direction,
)
from recbole_disentangle.errors import ConfigError


def walk(subject: Subject, options: AnalysisOptions, start, along, direction: bool = False):
    """The beam search of :mod:`.traversal` from ``start`` along dimension ``along`` (or, with
    ``direction``, along the vector ``along``), with the analysis's settings."""
    view = subject.view
    search = traverse_direction if direction else traverse
    return search(start, along, view.item_repr, view.concepts, view.prototypes, options.steps,
                  similarity=view.similarity, tau=view.tau, gamma=options.gamma, beam_size=options.beam_size,
                  eligible=view.trained_items)


def retrieved(subject: Subject, found) -> list[dict]:
    return [{"item": str(subject.tokens[i]), "title": subject.titles[i], "h_j": v} for i, v in zip(found.items, found.values)]


def strip_dir(subject: Subject) -> Path:
    folder = subject.out_dir / "traversals"
    folder.mkdir(exist_ok=True)
    return folder


def concept_traversals(subject: Subject, options: AnalysisOptions) -> list[dict]:
    """One start item per concept, its most popular one (the best-trained h_i and a name people
    know; the papers leave the start item open), along each planted factor's dimension (or,
    without factors, the dimension along which the concept's items vary most)."""
    view, items, factors = subject.view, subject.items, subject.factors
    popularity = np.asarray(subject.model.history.sum(axis=0)).ravel()
    traversals = []
    for k in range(view.n_concepts):
        members = items[subject.item_concept == k]
        if len(members) < 2 * options.steps:
            continue
        start = int(members[popularity[members].argmax()])
        if factors:
            plans = [
                (name,) + factor_dimension(view.item_repr[members], factors[name][members], subject.periods.get(name))
                for name in factors
            ]
        else:
            plans = [(None, int(view.item_repr[members].var(axis=0).argmax()), None)]
        for name, j, rho in plans:
            traversals.append(concept_traversal(subject, options, k, members, start, name, j, rho))
    return traversals


def concept_traversal(subject: Subject, options: AnalysisOptions, k: int, members, start: int, name, j: int, rho) -> dict:
    view, factors, titles = subject.view, subject.factors, subject.titles
    try:
        found = walk(subject, options, view.item_repr[start], j)
    except ValueError as err:  # too few items of the concept in the range
        return {"concept": k, "dimension": j, "factor": name, "skipped": str(err)}
    record = found.to_dict()
    record.update(
        start_item=str(subject.tokens[start]), start_title=titles[start], retrieved=retrieved(subject, found),
        all_in_start_concept=bool(all(view.concepts[i] == k for i in found.items)),
    )
    del record["items"]
    if name is not None:
        along = factors[name][found.items]
        record.update(factor=name, factor_rho_over_concept=rho, factor_values=along.tolist(),
                      factor_spearman=spearman(found.values, along))
    if name in subject.periods:
        # an angle: rho_over_concept is then Mardia's circular-linear r of h_j with it
        period = subject.periods[name]
        record.update(
            factor_circular_period=period,
            factor_circular_monotonicity=circular_monotonicity(found.values, along, period),
            factor_circular_linear=circular_linear_correlation(found.values, along, period),
            direction_traversal={"skipped": f"'{name}' is circular: no single direction of h carries an angle "
                                            "(it takes a plane); judge the dimension traversal's circular measures"},
        )
    elif name is not None:
        record["direction_traversal"] = direction_traversal(subject, options, k, members, start, name)
    if options.plots:
        suffix = f"_{name}" if name else ""
        record["plot"] = concept_maps.draw_traversal(
            strip_dir(subject) / f"concept{k}_dim{j}{suffix}.png", found.values, [titles[i] for i in found.items],
            factor=factors[name][found.items] if name else None, factor_name=name or "",
            title=f"concept {k}, dimension {j}, from '{titles[start][:40]}'",
        )
    return record


def direction_traversal(subject: Subject, options: AnalysisOptions, k: int, members, start: int, name: str) -> dict:
    """The same search along the direction of h that carries the factor best: a model may hold a
    factor linearly yet spread over several coordinates."""
    view, factor = subject.view, subject.factors[name]
    direction, direction_rho = factor_direction(view.item_repr[members], factor[members], seed=options.seed)
    try:
        steered = walk(subject, options, view.item_repr[start], direction, direction=True)
    except ValueError as err:
        return {"factor_rho_over_concept": direction_rho, "skipped": str(err)}
    along = factor[steered.items]
    return {
        "factor_rho_over_concept": direction_rho,
        "values": steered.values,
        "retrieved": [str(subject.tokens[i]) for i in steered.items],
        "all_in_start_concept": bool(all(view.concepts[i] == k for i in steered.items)),
        "factor_values": along.tolist(),
        "factor_spearman": spearman(steered.values, along),
    }


def requested_traversal(subject: Subject, options: AnalysisOptions) -> dict | None:
    """A traversal the caller asked for: from an item, or from a user's component k; None if none was."""
    if options.traverse_item is None and options.traverse_user is None:
        return None
    view = subject.view
    if options.traverse_item is not None:
        start_row = internal_item(subject.dataset, options.traverse_item)
        h_star, origin = view.item_repr[start_row], f"item {options.traverse_item}"
    else:
        user = internal_user(subject.dataset, options.traverse_user)
        row = np.flatnonzero(subject.users == user)
        if not len(row):
            raise ConfigError(f"User '{options.traverse_user}' has no training interactions, so no learned z_u to start from.")
        k = int(subject.confidence[row[0]].argmax()) if options.traverse_concept is None else int(options.traverse_concept)
        h_star, origin = subject.z[row[0], k], f"user {options.traverse_user}, component z_u^({k})"
    j = int(np.abs(h_star).argmax()) if options.traverse_dim is None else int(options.traverse_dim)
    found = walk(subject, options, h_star, j)
    record = found.to_dict()
    del record["items"]
    record.update(start=origin, retrieved=retrieved(subject, found))
    if options.plots:
        record["plot"] = concept_maps.draw_traversal(
            strip_dir(subject) / f"requested_dim{j}.png", found.values, [subject.titles[i] for i in found.items],
            title=f"{origin}: concept {found.concept}, dimension {j}",
        )
    return record


def traversal_summary(traversals: list[dict]) -> dict:
    """How many traversals follow a planted factor, and how monotonically."""
    summary = {"factor_traversals": sum("factor_spearman" in t for t in traversals)}
    circular = [t for t in traversals if "factor_circular_monotonicity" in t]
    if circular:
        summary["circular_factor_traversals"] = len(circular)
        summary["factor_traversal_mean_abs_circular_monotonicity"] = float(
            np.mean([abs(t["factor_circular_monotonicity"]) for t in circular])
        )
        summary["factor_traversal_circular_strictly_monotone"] = sum(
            circular_strictly_monotone(t["factor_values"], t["factor_circular_period"]) for t in circular
        )
    done = [t for t in traversals if "factor_spearman" in t and "factor_circular_monotonicity" not in t]
    if done:
        summary["factor_traversal_mean_abs_spearman"] = float(np.mean([abs(t["factor_spearman"]) for t in done]))
        summary["factor_traversal_strictly_monotone"] = sum(strictly_monotone(t["factor_values"]) for t in done)
        steered = [t["direction_traversal"] for t in done if "factor_spearman" in t["direction_traversal"]]
        if steered:
            summary["factor_direction_traversal_mean_abs_spearman"] = float(np.mean([abs(t["factor_spearman"]) for t in steered]))
            summary["factor_direction_traversal_strictly_monotone"] = sum(strictly_monotone(t["factor_values"]) for t in steered)
    return summary


def strictly_monotone(values) -> bool:
    steps = np.diff(np.asarray(values, dtype=np.float64))
    return bool(len(steps)) and (bool(np.all(steps > 0)) or bool(np.all(steps < 0)))
