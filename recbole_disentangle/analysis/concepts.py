"""Names for the concepts: what each prototype m_k stands for, in words a person can check.

A concept k is named by

* its most frequent ground-truth categories: among the items whose concept (the mode of p(c_i))
  is k, the ``n_categories`` commonest labels with their count and share of the concept's
  labelled items;
* its top items: the ``n_items`` analysed items with the highest p(c_i = k), ties (p saturates at
  1 for items deep inside a concept, cosine/tau being large) broken by the similarity sim(h_i, m_k);
  with their titles when the data set has a title field.

The same descriptions go to ``analysis.json`` (``concepts``) and to the legend of the concept map
(:func:`legend_label`), so the picture and the numbers name a concept alike.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

LEGEND_TITLE_CHARS = 28


def describe_concepts(
    concepts: np.ndarray,
    concept_probs: np.ndarray,
    concept_logits: np.ndarray,
    tau: float,
    items: np.ndarray,
    titles,
    tokens,
    categories: np.ndarray | None = None,
    n_categories: int = 3,
    n_items: int = 5,
) -> list[dict]:
    """One description per concept 0..K-1 (see the module docstring).

    ``concepts``, ``concept_probs`` (n_items, K), ``concept_logits`` (n_items, K): over every
    internal item id, as :class:`~recbole_disentangle.analysis.representations.ModelView` holds them;
    ``items``: the internal ids analysed; ``categories``: one label (or None) per analysed item,
    aligned with ``items``, or None without a category field.
    """
    items = np.asarray(items)
    mine = np.asarray(concepts)[items]
    descriptions = []
    for k in range(concept_probs.shape[1]):
        members = mine == k
        entry: dict = {"concept": k, "size": int(members.sum())}
        if categories is not None:
            labels = [c for c in np.asarray(categories, dtype=object)[members] if c is not None]
            counts = Counter(labels).most_common(n_categories)
            entry["labelled"] = len(labels)
            entry["top_categories"] = [
                {"category": str(name), "count": int(n), "share": n / len(labels)} for name, n in counts
            ]
        p, s = concept_probs[items, k], concept_logits[items, k]
        order = np.lexsort((-s, -p))[:n_items]  # last key first: p, then the similarity
        entry["top_items"] = [
            {"item": str(tokens[i]), "title": titles[i], "p": float(p[r]), "similarity": float(s[r] * tau)}
            for r, i in zip(order, items[order])
        ]
        descriptions.append(entry)
    return descriptions


def legend_label(description: dict, n_categories: int = 3, n_titles: int = 2) -> str:
    """"concept k (size): Drama 45%, Comedy 20%, ...\\n e.g. Title one; Title two" for a map legend."""

    def short(text: str) -> str:
        return text if len(text) <= LEGEND_TITLE_CHARS else text[: LEGEND_TITLE_CHARS - 1] + "…"

    head = f"concept {description['concept']} ({description['size']})"
    tops = description.get("top_categories") or []
    if tops:
        head += ": " + ", ".join(f"{short(t['category'])} {t['share']:.0%}" for t in tops[:n_categories])
    titles = [short(t["title"]) for t in description["top_items"][:n_titles]]
    return head + ("\ne.g. " + "; ".join(titles) if titles else "")
