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
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from recbole_disentangle.analysis import concept_maps, concepts, control, representations, sections, traversal_sections
from recbole_disentangle.analysis.representations import CATEGORY_FIELDS
from recbole_disentangle.analysis.sections import AnalysisOptions, AnalysisWarning
from recbole_disentangle.analysis.traversal import traverse, traverse_direction
from recbole_disentangle.quick_start import load_data_and_model

__all__ = ["AnalysisOptions", "AnalysisWarning", "CATEGORY_FIELDS", "analyse", "concept_maps", "concepts", "control",
           "representations", "traverse", "traverse_direction"]


def analyse(model_file: str | Path, out_dir: str | Path, options: AnalysisOptions | None = None, **chosen) -> dict:
    """Run the whole analysis; returns what ``analysis.json`` holds (see the module docstring).

    ``options``: an :class:`AnalysisOptions`, or its fields as keyword arguments (``plots=False``,
    ``control_dim=0``, ...); the class documents them.
    """
    unknown = sorted(set(chosen) - {f.name for f in fields(AnalysisOptions)})
    if unknown:
        raise TypeError(f"analyse() got unexpected keyword argument(s) {', '.join(unknown)}")
    options = AnalysisOptions(**chosen) if options is None else replace(options)  # the caller's stays as it is
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config, model, dataset, *_ = load_data_and_model(str(model_file), map_location="cpu")
    subject = sections.load_subject(config, model, dataset, out_dir, options)
    view = subject.view
    result: dict = {
        "model_file": str(model_file),
        "model": config["model"],
        "dataset": config["dataset"],
        "similarity": view.similarity,
        "n_concepts": view.n_concepts,
        "embedding_size": int(view.item_repr.shape[1]),
        "n_items_analysed": int(len(subject.items)),
    }
    result["alignment"] = sections.macro_section(subject, options)
    result["concepts"] = sections.concepts_section(subject)
    result["independence"] = sections.micro_section(subject)
    control_result = sections.control_section(subject, options)  # before the slow parts: a refusal fails at once
    if control_result is not None:
        result["control"] = control_result
    if options.plots:
        result["plots"] = sections.concept_map_section(subject, options, result["concepts"])
    traversals = traversal_sections.concept_traversals(subject, options)
    requested = traversal_sections.requested_traversal(subject, options)
    if requested is not None:
        result["requested_traversal"] = requested
    result["traversals"] = traversals
    result.update(traversal_sections.traversal_summary(traversals))
    result["seconds"] = time.perf_counter() - started
    (out_dir / "analysis.json").write_text(json.dumps(result, indent=2, default=_plain), encoding="utf-8")
    return result


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
