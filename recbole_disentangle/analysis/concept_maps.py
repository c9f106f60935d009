"""Concept maps: t-SNE pictures of items and user components (Ma et al. 2019 Sec. 3.3, Figure 2).

One t-SNE embeds the items and, for a sample of users, the two components z_u^(k) with the highest
confidence sum_{i: x_ui > 0} c_ik, together (as Figure 2a does), so the three pictures share
coordinates:

* ``items_by_concept.png``: items coloured by the inferred concept arg max_k c_ik (Figure 2c), each
  concept named in the legend by its commonest categories and top items (:mod:`.concepts`);
* ``items_by_category.png``: the same items coloured by ground-truth category (Figure 2d), each
  category drawn in the colour of the concept the Hungarian matching pairs it with, so the two
  pictures can be compared by eye;
* ``items_and_users.png``: items faint, user components as larger marks coloured by k (Figure 2a).

With cosine similarity the representations are L2-normalised first: the model only ever compares
directions, and Euclidean distance on the unit sphere orders neighbours as cosine does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.manifold import TSNE

from recbole_disentangle.evaluation.disentanglement import comparable_space
# matplotlib (the analysis extra) is imported when a picture is drawn, so that the rest of the
# analysis package (AD-DRL's explanations, MacridVAE's control) works without it.
from recbole_disentangle.figures import pyplot

FIGSIZE = (9.5, 7.5)
DPI = 110
MAX_LEGEND = 20


def palette(n: int) -> list:
    """n distinct colours; palette(n)[:m] == palette(m), so concept k has one colour in every picture."""
    plt = pyplot()
    base = [plt.get_cmap("tab10")(i) for i in range(10)]
    base += [plt.get_cmap("tab20")(i) for i in range(1, 20, 2)]  # the light shades of the same hues
    base += [plt.get_cmap("tab20b")(i) for i in range(20)]
    return [base[i % len(base)] for i in range(n)]


def tsne(points: np.ndarray, similarity: str, seed: int = 0, max_iter: int = 1000) -> np.ndarray:
    points = comparable_space(points, similarity)
    perplexity = float(min(30.0, max(5.0, (len(points) - 1) / 3)))
    return TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=max_iter
    ).fit_transform(points)


def top_components(confidence: np.ndarray, n: int = 2) -> np.ndarray:
    """Indices of each user's ``n`` most confident components, (users, n)."""
    return np.argsort(-confidence, axis=1, kind="stable")[:, :n]


def matched_colours(concepts: np.ndarray, categories: np.ndarray, n_concepts: int):
    """Category -> colour: a category matched to concept k (Hungarian) gets concept k's colour."""
    names = sorted({c for c in categories if c is not None}, key=str)
    table = np.zeros((len(names), n_concepts))
    index = {name: i for i, name in enumerate(names)}
    for k, c in zip(concepts, categories):
        if c is not None:
            table[index[c], k] += 1
    rows, cols = linear_sum_assignment(table, maximize=True)
    colours = palette(max(20, n_concepts + len(names)))
    mapping = {names[r]: colours[c] for r, c in zip(rows, cols)}
    spare = iter(colours[n_concepts:])
    for name in sorted(names, key=lambda n: -table[index[n]].sum()):
        if name not in mapping:
            mapping[name] = next(spare)
    return mapping, {name: int(table[index[name]].sum()) for name in names}


def _finish(ax, title: str, path: Path, legend_title: str) -> None:
    plt = pyplot()
    ax.set_title(title, fontsize=13)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(title=legend_title, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, markerscale=2.0, frameon=False)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=DPI, bbox_inches="tight")  # "tight": a legend of named concepts is wide
    plt.close(ax.figure)


def draw(
    out_dir: str | Path,
    item_xy: np.ndarray,
    item_concepts: np.ndarray,
    n_concepts: int,
    *,
    categories: np.ndarray | None = None,
    category_field: str = "category",
    user_xy: np.ndarray | None = None,
    user_concepts: np.ndarray | None = None,
    label: str = "",
    concept_labels: list[str] | None = None,
) -> list[str]:
    """Write the concept-map PNGs; returns their paths.

    ``concept_labels``: one legend entry per concept (:func:`.concepts.legend_label`); default
    "concept k (size)".
    """
    plt = pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = palette(n_concepts)
    sizes = np.bincount(item_concepts, minlength=n_concepts)
    if concept_labels is None:
        concept_labels = [f"concept {k} ({sizes[k]})" for k in range(n_concepts)]
    elif len(concept_labels) != n_concepts:
        raise ValueError(f"{len(concept_labels)} concept labels for {n_concepts} concepts: give one per concept.")
    written = []

    fig, ax = plt.subplots(figsize=FIGSIZE)
    for k in range(n_concepts):
        mask = item_concepts == k
        ax.scatter(*item_xy[mask].T, s=9, color=colours[k], alpha=0.8, label=concept_labels[k])
    path = out_dir / "items_by_concept.png"
    _finish(ax, f"{label}\nt-SNE of the items, coloured by inferred concept argmax_k c_ik", path, "concept (items)")
    written.append(str(path))

    if categories is not None:
        mapping, counts = matched_colours(item_concepts, categories, n_concepts)
        fig, ax = plt.subplots(figsize=FIGSIZE)
        known = np.array([c is not None for c in categories])
        if (~known).any():
            ax.scatter(*item_xy[~known].T, s=6, color="lightgrey", label=f"no label ({(~known).sum()})")
        order = sorted(mapping, key=lambda n: -counts[n])
        for i, name in enumerate(order):
            mask = np.array([c == name for c in categories])
            legend = f"{name} ({counts[name]})" if i < MAX_LEGEND else None
            ax.scatter(*item_xy[mask].T, s=9, color=mapping[name], alpha=0.8, label=legend)
        path = out_dir / "items_by_category.png"
        _finish(
            ax, f"{label}\nthe same items, coloured by ground truth '{category_field}' (colour = matched concept)", path, category_field
        )
        written.append(str(path))

    if user_xy is not None and len(user_xy):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        for k in range(n_concepts):
            mask = item_concepts == k
            ax.scatter(*item_xy[mask].T, s=5, color=colours[k], alpha=0.15)
        for k in range(n_concepts):
            mask = user_concepts == k
            ax.scatter(
                *user_xy[mask].T, s=26, marker="^", color=colours[k], edgecolors="black", linewidths=0.3,
                label=f"z_u^({k}) ({mask.sum()})",
            )
        path = out_dir / "items_and_users.png"
        n_users = len(user_xy) // 2
        _finish(
            ax, f"{label}\n{n_users} users' two most confident components (triangles) over the items, by concept",
            path, "user component",
        )
        written.append(str(path))
    return written


def draw_traversal(path: str | Path, values, titles, factor=None, factor_name: str = "", title: str = "") -> str:
    """A strip of the traversal: h_j per step, the items' titles under the steps (and a planted factor if given)."""
    plt = pyplot()
    import textwrap

    steps = np.arange(1, len(values) + 1)
    fig, ax = plt.subplots(figsize=(max(7.5, 1.9 * len(values)), 5.0))
    lines = ax.plot(steps, values, marker="o", color="tab:blue", label="h_j of the retrieved item")
    ax.set_ylabel("h_j", color="tab:blue")
    ax.set_xticks(steps)
    ax.set_xticklabels([f"step {t}\n" + "\n".join(textwrap.wrap(text, 18)[:3]) for t, text in zip(steps, titles)], fontsize=8)
    if factor is not None:
        twin = ax.twinx()
        lines += twin.plot(steps, factor, marker="s", color="tab:orange", label=f"planted {factor_name}")
        twin.set_ylabel(f"planted {factor_name}", color="tab:orange")
    ax.legend(lines, [line.get_label() for line in lines], loc="best", fontsize=9)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return str(path)
