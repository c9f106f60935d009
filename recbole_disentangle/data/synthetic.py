"""Interaction data with planted structure: the test bed for concept recovery and traversal.

The generative story (all draws from one ``numpy.random.Generator(seed)``, so a seed fixes the
data set byte for byte):

1. K concepts with ``items_per_concept`` items each, or with ``concept_sizes`` (one item count per
   concept, e.g. 400 250 150 100 100: unequal concepts, where a model's concepts cannot just split
   the catalogue evenly). Every item i has its concept k_i and F planted
   factors f_i in [0, 1]^F, drawn uniformly (the "size" and "colour" of the paper's Sec. 2.1).
2. Every user u mixes 2 or 3 concepts (``min_concepts``..``max_concepts``, uniform), with mixing
   weights w_u ~ Dirichlet(1), and has for each of them a preferred factor position
   p_uk ~ U[0, 1]^F.
3. The user adopts n_u ~ Poisson(``interactions_per_user``) (at least ``min_interactions``)
   distinct items, drawn without replacement from
       P_u(i) = (1 - noise) * w_{u,k_i} * kern(f_i, p_{u,k_i}) / sum_{j: k_j = k_i} kern(f_j, p_{u,k_i}) + noise / M,
   kern(f, p) = exp(-sum_f (f_f - p_f)^2 / (2 w_f^2)) with w = ``factor_width`` (one width, or one
   per factor): within a concept, items near the user's preferred position are likelier. With one
   width for all factors the kernel is isotropic, so any rotation of the factor axes explains the
   interactions equally well and no model can tell factor 0 from a mix of factors 0 and 1 (the
   default, 0.15 for every factor, is such a case); distinct widths (``--factor_width 0.1 0.3``:
   users picky about factor 0, lenient about factor 1) make each factor an identifiable direction.
   So items co-occur because they share a concept (macro structure) and, inside a concept,
   because their factors are close (micro structure).

Written as RecBole atomic files ``<out>/<name>/<name>.inter`` (user_id, item_id, rating = 1,
timestamp = order of adoption) and ``<name>.item`` (item_id, ``concept:token`` = the true concept,
``factor_<f>:float`` = the planted factors, ``title:token_seq`` = a readable label). Item and user
tokens are shuffled so that no id order reveals the concept.

Command line: ``python -m recbole_disentangle.data.synthetic --out dataset_atomic --name planted``
(``--help`` lists the knobs); ``properties/dataset/planted.yaml`` makes ``--dataset=planted`` load
every column.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_disentangle.data.convert.atomic import DatasetWriter, OutputExists

DEFAULTS = {
    "n_concepts": 5,
    "items_per_concept": 100,
    "n_factors": 2,
    "n_users": 1000,
    "min_concepts": 2,
    "max_concepts": 3,
    "interactions_per_user": 30.0,
    "min_interactions": 8,
    "factor_width": (0.15,),
    "noise": 0.02,
    "seed": 0,
    "concept_sizes": None,
}


@dataclass
class PlantedData:
    """The generated data set. Item index i (0-based) is item token ``item_tokens[i]``."""

    users: np.ndarray  # (nnz,) user index of each interaction
    items: np.ndarray  # (nnz,) item index
    order: np.ndarray  # (nnz,) position of the interaction in the user's sequence
    item_concept: np.ndarray  # (M,) planted concept k_i
    item_factors: np.ndarray  # (M, F) planted factors f_i in [0, 1]
    user_concepts: list  # per user, the concepts it mixes
    item_tokens: np.ndarray  # (M,) token written for each item
    user_tokens: np.ndarray  # (N,) token written for each user


def generate(
    n_concepts: int = DEFAULTS["n_concepts"],
    items_per_concept: int = DEFAULTS["items_per_concept"],
    n_factors: int = DEFAULTS["n_factors"],
    n_users: int = DEFAULTS["n_users"],
    min_concepts: int = DEFAULTS["min_concepts"],
    max_concepts: int = DEFAULTS["max_concepts"],
    interactions_per_user: float = DEFAULTS["interactions_per_user"],
    min_interactions: int = DEFAULTS["min_interactions"],
    factor_width: float | tuple[float, ...] = DEFAULTS["factor_width"],
    noise: float = DEFAULTS["noise"],
    seed: int = DEFAULTS["seed"],
    concept_sizes: tuple[int, ...] | None = DEFAULTS["concept_sizes"],
) -> PlantedData:
    """Draw a planted data set (see the module docstring for the generative story).

    ``concept_sizes``: items per concept, one count per concept; it replaces ``items_per_concept``
    and its length must equal ``n_concepts``. ``None`` (the default) = ``items_per_concept`` each,
    drawn exactly as before the option existed (same seed, same bytes).
    """
    sizes, widths = checked_sizes_and_widths(n_concepts, items_per_concept, concept_sizes, n_factors, n_users,
                                             min_concepts, max_concepts, min_interactions, factor_width, noise)
    n_items = sum(sizes)
    max_n = min(n_items, int(interactions_per_user * 3) + min_interactions)
    # One generator for every draw, in this order (items, users, adoptions, tokens): a seed fixes
    # the data set byte for byte, so the steps below must keep drawing in the same sequence.
    rng = np.random.default_rng(seed)

    item_concept = np.repeat(np.arange(n_concepts), sizes)
    item_factors = rng.random((n_items, n_factors))
    member, weights, preferred = draw_users(rng, n_users, n_concepts, n_factors, min_concepts, max_concepts)
    probs = adoption_probabilities(item_factors, item_concept, weights, preferred, widths, noise)
    users, items, order = draw_adoptions(rng, probs, interactions_per_user, min_interactions, max_n)

    item_tokens = rng.permutation(n_items) + 1
    user_tokens = rng.permutation(n_users) + 1
    return PlantedData(
        users=users,
        items=items,
        order=order,
        item_concept=item_concept,
        item_factors=item_factors,
        user_concepts=[np.flatnonzero(row).tolist() for row in member],
        item_tokens=item_tokens,
        user_tokens=user_tokens,
    )


def checked_sizes_and_widths(n_concepts, items_per_concept, concept_sizes, n_factors, n_users, min_concepts,
                             max_concepts, min_interactions, factor_width, noise) -> tuple[list[int], np.ndarray]:
    """Items per concept and the kernel width per factor, after checking every knob of :func:`generate`;
    a ValueError saying which knob is wrong otherwise."""
    if concept_sizes is not None:
        sizes = [int(n) for n in concept_sizes]
        if len(sizes) != n_concepts or min(sizes) < 1:
            raise ValueError(
                f"concept_sizes = {list(concept_sizes)}: need one item count >= 1 per concept "
                f"(n_concepts = {n_concepts}); set --n_concepts {len(sizes)} to match."
            )
    if not 1 <= min_concepts <= max_concepts <= n_concepts:
        raise ValueError(
            f"need 1 <= min_concepts ({min_concepts}) <= max_concepts ({max_concepts}) <= n_concepts ({n_concepts})."
        )
    if not 0 <= noise < 1:
        raise ValueError(f"noise = {noise} must lie in [0, 1).")
    if n_factors < 1 or items_per_concept < 1 or n_users < 1:
        raise ValueError("n_factors, items_per_concept and n_users must be >= 1.")
    widths = np.atleast_1d(np.asarray(factor_width, dtype=np.float64))
    if widths.size == 1:
        widths = np.full(n_factors, widths[0])
    if widths.shape != (n_factors,) or (widths <= 0).any():
        raise ValueError(f"factor_width = {factor_width}: need one width > 0, or one per factor ({n_factors}).")
    sizes = [items_per_concept] * n_concepts if concept_sizes is None else sizes
    if min_interactions > sum(sizes):
        raise ValueError(f"min_interactions = {min_interactions} exceeds the {sum(sizes)} items.")
    return sizes, widths


def draw_users(rng: np.random.Generator, n_users: int, n_concepts: int, n_factors: int, min_concepts: int,
               max_concepts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 2 of the story: which concepts each user mixes (``member``, (N, K) bool), with which
    weights w_u ((N, K), zero outside ``member``), and where in factor space (p_uk, (N, K, F))."""
    n_mixed = rng.integers(min_concepts, max_concepts + 1, size=n_users)
    chosen = np.argsort(rng.random((n_users, n_concepts)), axis=1)  # a random permutation per user
    mixes = np.arange(n_concepts)[None, :] < n_mixed[:, None]  # keep the first n_mixed of it
    member = np.zeros((n_users, n_concepts), dtype=bool)
    np.put_along_axis(member, chosen, mixes, axis=1)
    weights = rng.dirichlet(np.ones(n_concepts), size=n_users) * member
    weights /= weights.sum(axis=1, keepdims=True)
    preferred = rng.random((n_users, n_concepts, n_factors))  # p_uk (only the mixed k matter)
    return member, weights, preferred


def adoption_probabilities(item_factors: np.ndarray, item_concept: np.ndarray, weights: np.ndarray,
                           preferred: np.ndarray, widths: np.ndarray, noise: float) -> np.ndarray:
    """P_u(i) of step 3 for every user and item at once: (N, M)."""
    n_users, n_concepts = weights.shape
    offsets = item_factors[None, :, :] - preferred[:, item_concept, :]
    kernel = np.exp(-(offsets**2 / (2 * widths**2)).sum(-1))
    per_concept = np.zeros((n_users, n_concepts))
    np.add.at(per_concept.T, item_concept, kernel.T)  # sum_j in concept k of kern, per user
    return (1 - noise) * weights[:, item_concept] * kernel / per_concept[:, item_concept] + noise / len(item_concept)


def draw_adoptions(rng: np.random.Generator, probs: np.ndarray, interactions_per_user: float,
                   min_interactions: int, max_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n_u distinct items per user, without replacement (Gumbel top-n_u of ln P_u(i)): the user,
    item and position in the user's sequence of every interaction, user by user."""
    n_users, n_items = probs.shape
    counts = np.clip(rng.poisson(interactions_per_user, size=n_users), min_interactions, max_n)
    with np.errstate(divide="ignore"):  # noise = 0: ln 0 = -inf, never drawn (as wanted)
        keys = np.log(probs) - np.log(-np.log(rng.random(probs.shape)))
    ranked = np.argsort(-keys, axis=1)
    take = np.arange(n_items)[None, :] < counts[:, None]
    users = np.broadcast_to(np.arange(n_users)[:, None], ranked.shape)[take]
    items = ranked[take]
    order = np.broadcast_to(np.arange(n_items)[None, :], ranked.shape)[take]
    return users, items, order


def write_atomic(data: PlantedData, out: str | Path, name: str = "planted", force: bool = False) -> Path:
    """Write ``data`` as ``<out>/<name>/<name>.inter`` and ``.item``; returns the folder.

    Raises ``OutputExists`` (before writing anything) when the files exist and ``force`` is false.
    """
    folder = Path(out) / name
    factor_fields = tuple((f"factor_{f}", "float") for f in range(data.item_factors.shape[1]))
    tables = {
        "inter": (("user_id", "token"), ("item_id", "token"), ("rating", "float"), ("timestamp", "float")),
        "item": (("item_id", "token"), ("concept", "token"), *factor_fields, ("title", "token_seq")),
    }
    inter = pd.DataFrame(
        {
            "user_id": data.user_tokens[data.users],
            "item_id": data.item_tokens[data.items],
            "rating": 1.0,
            "timestamp": data.order.astype(float),
        }
    )
    factors = {f"factor_{f}": np.round(data.item_factors[:, f], 6) for f in range(data.item_factors.shape[1])}
    readable = [" ".join(f"f{f}={v:.2f}" for f, v in enumerate(row)) for row in data.item_factors]
    item = pd.DataFrame(
        {
            "item_id": data.item_tokens,
            "concept": data.item_concept,
            **factors,
            "title": [f"c{k} {text}" for k, text in zip(data.item_concept, readable)],
        }
    ).sort_values("item_id")
    with DatasetWriter(folder, tables, force=force) as writer:
        writer.write("inter", inter)
        writer.write("item", item)
    return folder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_disentangle.data.synthetic",
        description="Write a seeded interaction data set with K planted concepts and per-concept factors "
        "as RecBole atomic files (<out>/<name>/<name>.inter and .item, the true concept in 'concept:token').",
    )
    parser.add_argument("--out", default="dataset_atomic", help="parent folder of the data set (default: dataset_atomic)")
    parser.add_argument("--name", default="planted", help="data set name = folder and file stem (default: planted)")
    parser.add_argument("--force", action="store_true", help="replace existing files")
    for key, value in DEFAULTS.items():
        if key == "factor_width":
            parser.add_argument(
                "--factor_width", type=float, nargs="+", default=list(value),
                help=f"kernel width, one for all factors or one per factor (default: {' '.join(map(str, value))})",
            )
            continue
        if key == "concept_sizes":
            parser.add_argument(
                "--concept_sizes", type=int, nargs="+", default=None, metavar="N",
                help="items of each concept, one count per concept (replaces --items_per_concept; "
                "their number must equal --n_concepts), e.g. --n_concepts 5 --concept_sizes 400 250 150 100 100",
            )
            continue
        parser.add_argument(f"--{key}", type=type(value), default=value, help=f"(default: {value})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    knobs = {key: getattr(args, key) for key in DEFAULTS}
    try:
        data = generate(**knobs)
        folder = write_atomic(data, args.out, args.name, force=args.force)
    except (ValueError, OutputExists) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {folder}: {len(data.user_tokens)} users, {len(data.item_tokens)} items, "
        f"{len(data.users)} interactions, {knobs['n_concepts']} planted concepts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
