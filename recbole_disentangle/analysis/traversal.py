"""Controllable traversal of one dimension (Ma et al. 2019 Sec. 2.4; SEM-MacridVAE Sec. 3.5, Eq. 12).

Start from h* (an item representation h_i, or a user component mu_u^(k)) and a dimension j:

1. k* = the prototype closest to h*. The range (a, b) of h*_j over which k* stays the closest is
   found by binary search on each side (:func:`concept_range`).
2. (a, b) is cut into B sub-ranges a = a_0 < a_1 < ... < a_B = b holding about the same number of
   concept-k* items each (:func:`equal_count_bounds`).
3. One concept-k* item per sub-range, i_t with h_{i_t, j} in (a_{t-1}, a_t], chosen by beam search
   on Eq. 12:  sum_t e^{cos(h_{i_t,-j}, h_{*,-j})/tau} + gamma sum_{t<t'} e^{cos(h_{i_t,-j}, h_{i_t',-j})/tau}
   (:func:`beam_search`), where h_{-j} drops dimension j.

The items therefore change monotonically along dimension j while staying alike elsewhere.

:func:`traverse_direction` runs the same search along any unit direction v of the representation
space instead of a coordinate axis: a trained model may carry a factor linearly but spread over
several dimensions (see docs/results.md), and v = :func:`factor_direction` then follows it.

How well a traversal follows a planted factor depends on the factor's geometry. A linear factor
(a size) is judged by Spearman's rank correlation with the steps. A circular factor (an angle, a
hue, a time of day) has no order: a walk that turns steadily from 350 to 10 degrees crosses the
wrap-around and its Spearman correlation is poor although the walk is perfect. For it,
:func:`circular_monotonicity` (do the steps turn one way round the circle?) judges a traversal and
:func:`circular_linear_correlation` (Mardia's: how well h_j is a + b cos theta + c sin theta) picks
the dimension that carries the angle (:func:`factor_dimension` with ``period``). A factor is
circular when the caller says so (``--circular_factors``) or the data set's configuration lists
it in ``circular_fields``; :func:`circular_periods` reads both ("name" = radians, "name:360" =
degrees, "name:1" = fractions of a turn).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from recbole_disentangle.errors import ConfigError

EPS = 1e-12
TURN = 2 * math.pi


def prototype_similarity(h: np.ndarray, prototypes: np.ndarray, similarity: str = "cosine") -> np.ndarray:
    """sim(h, m_k) for one h (d,) or many (n, d) against all prototypes, as the model assigns concepts (Eq. 6)."""
    h = np.atleast_2d(h)
    if similarity == "cosine":
        h = h / np.maximum(np.linalg.norm(h, axis=-1, keepdims=True), EPS)
        prototypes = prototypes / np.maximum(np.linalg.norm(prototypes, axis=-1, keepdims=True), EPS)
    return h @ prototypes.T


def nearest_prototype(h: np.ndarray, prototypes: np.ndarray, similarity: str = "cosine") -> np.ndarray:
    return prototype_similarity(h, prototypes, similarity).argmax(axis=-1)


def _endpoint(h_star, j, prototypes, similarity, k_star, limit, tol, max_steps=60) -> float:
    """The last value between h*_j and ``limit`` for which k* is still the closest prototype.

    Binary search for the boundary; if k* is still closest at ``limit`` the range is cut there
    (with cosine similarity the region can extend to infinity; beyond ``limit`` no item lies anyway).
    """
    probe = h_star.copy()

    def keeps(value):
        probe[j] = value
        return nearest_prototype(probe, prototypes, similarity)[0] == k_star

    if keeps(limit):
        return float(limit)
    inside, outside = float(h_star[j]), float(limit)
    for _ in range(max_steps):
        if abs(outside - inside) <= tol:
            break
        middle = 0.5 * (inside + outside)
        if keeps(middle):
            inside = middle
        else:
            outside = middle
    return inside


def concept_range(h_star, j, prototypes, similarity="cosine", limits=(-1.0, 1.0), tol=1e-6):
    """(k*, a, b): k* stays the closest prototype to h* while h*_j moves within (a, b) (Sec. 2.4)."""
    h_star = np.asarray(h_star, dtype=np.float64)
    k_star = int(nearest_prototype(h_star, prototypes, similarity)[0])
    low, high = min(limits[0], h_star[j]), max(limits[1], h_star[j])
    a = _endpoint(h_star, j, prototypes, similarity, k_star, low, tol)
    b = _endpoint(h_star, j, prototypes, similarity, k_star, high, tol)
    return k_star, a, b


def equal_count_bounds(values: np.ndarray, steps: int, a: float, b: float) -> np.ndarray:
    """a = a_0 < ... < a_B = b such that each (a_{t-1}, a_t] holds about len(values)/B of ``values``.

    ``values`` are the h_j of the concept's items inside (a, b). Inner cut points lie midway
    between the last value of one equal-count group and the first of the next.
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if len(ordered) < steps:
        raise ValueError(f"only {len(ordered)} items of the concept lie in the range; cannot fill {steps} steps.")
    groups = np.array_split(ordered, steps)
    cuts = [0.5 * (left[-1] + right[0]) for left, right in zip(groups[:-1], groups[1:])]
    return np.asarray([a, *cuts, b])


def _cosine_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), EPS)


def beam_search(
    candidates: list[np.ndarray], reprs: np.ndarray, h_star: np.ndarray, j: int, tau: float, gamma: float, beam_size: int
) -> tuple[list[int], float]:
    """Maximise Eq. 12 choosing one index from each ``candidates[t]`` (rows of ``reprs``), in order t = 1..B.

    Beam search as in the paper: after step t keep the ``beam_size`` best partial sequences, each
    extended by every candidate of step t+1 at once (a beams x candidates score matrix).
    Returns (chosen indices, objective).
    """
    keep = np.arange(reprs.shape[1]) != j
    units = _cosine_rows(reprs[:, keep])
    star = _cosine_rows(h_star[keep][None, :])[0]
    beams = np.zeros((1, 0), dtype=np.int64)
    scores = np.zeros(1)
    for cand in candidates:
        cand = np.asarray(cand, dtype=np.int64)
        to_start = np.exp(units[cand] @ star / tau)  # (C,)
        pair = np.exp(units[beams.reshape(-1)] @ units[cand].T / tau)  # (beams * t, C)
        to_chosen = pair.reshape(beams.shape[0], beams.shape[1], len(cand)).sum(axis=1)  # (beams, C)
        total = scores[:, None] + to_start[None, :] + gamma * to_chosen
        flat = np.argsort(-total, axis=None, kind="stable")[:beam_size]
        rows, cols = np.unravel_index(flat, total.shape)
        beams = np.concatenate([beams[rows], cand[cols][:, None]], axis=1)
        scores = total[rows, cols]
    return beams[0].tolist(), float(scores[0])


@dataclass
class Traversal:
    """The result of one traversal; ``items`` are row indices of the representation matrix."""

    dimension: int
    concept: int
    range: tuple[float, float]
    bounds: list[float]
    items: list[int]
    values: list[float]  # h_{i_t, j}, increasing
    objective: float
    start_value: float
    extras: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def traverse(
    h_star,
    j: int,
    reprs: np.ndarray,
    concepts: np.ndarray,
    prototypes: np.ndarray,
    steps: int = 5,
    *,
    similarity: str = "cosine",
    tau: float = 0.1,
    gamma: float = 1.0,
    beam_size: int = 10,
    eligible: np.ndarray | None = None,
) -> Traversal:
    """Sec. 2.4's traversal of dimension ``j`` from ``h_star`` over items ``reprs`` (n, d).

    ``concepts``: each item's inferred concept; ``eligible``: optional bool mask of items that may
    be retrieved (e.g. items seen in training, never the padding row).
    """
    reprs = np.asarray(reprs, dtype=np.float64)
    h_star = np.asarray(h_star, dtype=np.float64)
    if not 0 <= j < reprs.shape[1]:
        raise ValueError(f"dimension {j} does not exist: representations have d = {reprs.shape[1]}.")
    if steps < 1:
        raise ValueError(f"steps = {steps}: need B >= 1.")
    # Search no further than the items themselves reach on dimension j (plus a margin).
    span = reprs[:, j].max() - reprs[:, j].min()
    limits = (reprs[:, j].min() - 0.5 * span, reprs[:, j].max() + 0.5 * span)
    k_star, a, b = concept_range(h_star, j, prototypes, similarity, limits)
    pool = np.asarray(concepts) == k_star
    if eligible is not None:
        pool &= np.asarray(eligible, dtype=bool)
    pool &= (reprs[:, j] > a) & (reprs[:, j] <= b)
    members = np.flatnonzero(pool)
    bounds = equal_count_bounds(reprs[members, j], steps, a, b)
    slot = np.clip(np.searchsorted(bounds, reprs[members, j], side="left") - 1, 0, steps - 1)
    candidates = [members[slot == t] for t in range(steps)]
    if any(len(c) == 0 for c in candidates):  # only when many items share one h_j value
        raise ValueError(f"a sub-range of dimension {j} holds no item (tied values); use fewer steps.")
    chosen, objective = beam_search(candidates, reprs, h_star, j, tau, gamma, beam_size)
    return Traversal(
        dimension=int(j),
        concept=k_star,
        range=(float(a), float(b)),
        bounds=bounds.tolist(),
        items=[int(i) for i in chosen],
        values=[float(reprs[i, j]) for i in chosen],
        objective=objective,
        start_value=float(h_star[j]),
    )


def spearman(x, y) -> float:
    """Spearman's rank correlation (no scipy import in the hot path; ties get average ranks)."""
    from scipy.stats import spearmanr

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


def circular_periods(specs) -> dict[str, float]:
    """{field: period} from specs "name" (an angle in radians, period 2 pi) or "name:period"."""
    periods = {}
    for spec in specs or []:
        name, _, period = str(spec).partition(":")
        try:
            value = float(period) if period else TURN
        except ValueError:
            value = float("nan")
        if not name or not math.isfinite(value) or value <= 0:
            raise ConfigError(
                f"circular factor '{spec}' is not 'name' or 'name:period' with a period > 0 "
                "(e.g. hue:360 for degrees, phase:1 for fractions of a turn; a bare name means radians)."
            )
        periods[name] = value
    return periods


def _angles(theta, period: float) -> np.ndarray:
    return np.asarray(theta, dtype=np.float64) * (TURN / period)


def _circle_basis(theta, period: float) -> np.ndarray:
    """Orthonormal columns spanning the centred (cos theta, sin theta) over the items, (n, <= 2)."""
    a = _angles(theta, period)
    x = np.column_stack([np.cos(a), np.sin(a)])
    x = x - x.mean(axis=0)
    u, singular, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, singular > 1e-9 * max(1.0, float(singular.max(initial=0.0)))]


def circular_linear_correlation(x, theta, period: float = TURN) -> float:
    """Mardia's circular-linear correlation of a linear x with an angle theta, in [0, 1].

    The multiple correlation of x with (cos theta, sin theta): 1 when x = a + b cos theta + c sin
    theta exactly (a dimension that holds the angle as a projection of the circle), about
    sqrt(2/n) for unrelated values. Computed as a least-squares fit, so angles that span no full
    plane (all equal, or two opposite values) do not divide by zero.
    """
    return float(circular_linear_columns(np.asarray(x, dtype=np.float64)[:, None], theta, period)[0])


def circular_linear_columns(reprs, theta, period: float = TURN) -> np.ndarray:
    """:func:`circular_linear_correlation` of every column of ``reprs`` (n, d) with theta, (d,)."""
    x = np.asarray(reprs, dtype=np.float64)
    if len(x) < 3:
        return np.zeros(x.shape[1])
    x = x - x.mean(axis=0)
    basis = _circle_basis(theta, period)
    explained = ((basis.T @ x) ** 2).sum(axis=0)
    total = (x**2).sum(axis=0)
    return np.sqrt(np.clip(explained / np.maximum(total, EPS), 0.0, 1.0)) * (total > EPS)


def wrapped_steps(theta, period: float = TURN) -> np.ndarray:
    """theta_{t+1} - theta_t taken the short way round the circle, in [-period/2, period/2)."""
    steps = np.diff(np.asarray(theta, dtype=np.float64))
    return (steps + period / 2) % period - period / 2


def circular_monotonicity(values, theta, period: float = TURN) -> float:
    """How steadily an angle turns one way along a walk ordered by ``values``, in [-1, 1].

    The steps between consecutive items (ordered by ``values``, the traversed coordinate) are
    taken the short way round; the measure is their sum over the sum of their sizes: +1 when every
    step turns counter-clockwise (increasing angle), -1 when every step turns clockwise, near 0 when
    the angle wanders back and forth (of the order of 1/sqrt(steps) for random angles). Crossing the
    wrap-around costs nothing, as it should for an angle.
    """
    values = np.asarray(values, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if values.shape != theta.shape:
        raise ValueError(f"{values.size} traversal values but {theta.size} angles: give one of each per step.")
    steps = wrapped_steps(theta[np.argsort(values, kind="stable")], period)
    size = np.abs(steps).sum()
    return float(steps.sum() / size) if size > EPS else 0.0


def circular_strictly_monotone(theta, period: float = TURN) -> bool:
    """Every step of the walk (in its order) turns the same way, and the walk turns less than once round."""
    steps = wrapped_steps(theta, period)
    return bool(len(steps)) and (bool(np.all(steps > 0)) or bool(np.all(steps < 0))) and abs(steps.sum()) < period


def factor_dimension(reprs: np.ndarray, factor: np.ndarray, period: float | None = None) -> tuple[int, float]:
    """The dimension j whose h_j follows a planted factor best: (j, its correlation).

    A linear factor (``period`` None): Spearman's rho of h_j with the factor, signed. A circular
    one: :func:`circular_linear_correlation` of h_j with the angle (in [0, 1], no sign).
    """
    from scipy.stats import rankdata

    if period is not None:
        r = circular_linear_columns(reprs, factor, period)
        j = int(r.argmax())
        return j, float(r[j])
    r = rankdata(factor)
    ranks = np.apply_along_axis(rankdata, 0, reprs)
    r = (r - r.mean()) / max(r.std(), EPS)
    ranks = (ranks - ranks.mean(0)) / np.maximum(ranks.std(0), EPS)
    rho = (ranks * r[:, None]).mean(0)
    j = int(np.abs(rho).argmax())
    return j, float(rho[j])


def _basis_with_first(direction: np.ndarray) -> np.ndarray:
    """An orthonormal (d, d) basis whose first column is the unit vector along ``direction``."""
    v = np.asarray(direction, dtype=np.float64)
    norm = np.linalg.norm(v)
    if not np.isfinite(norm) or norm < EPS:
        raise ValueError("the traversal direction must be a non-zero finite vector.")
    v = v / norm
    q, _ = np.linalg.qr(np.column_stack([v, np.eye(len(v))]))  # q[:, 0] = +-v, the rest spans v's complement
    q[:, 0] = v  # flipping one column's sign keeps the basis orthonormal
    return q


def traverse_direction(h_star, direction, reprs, concepts, prototypes, steps: int = 5, **kwargs) -> Traversal:
    """:func:`traverse` along the unit direction v = ``direction`` / ||direction|| instead of an axis.

    Representations, h* and prototypes are written in an orthonormal basis whose first axis is v
    and the traversal runs on that axis: cosine similarities and inner products do not change
    under a rotation, so the concept range, the sub-ranges and Eq. 12 (now on the part of h
    orthogonal to v) mean what they mean for a coordinate. ``values`` are the projections h_i . v
    and ``dimension`` is -1 (no single coordinate).
    """
    reprs = np.asarray(reprs, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64)
    if direction.shape != (reprs.shape[1],):
        raise ValueError(f"the direction has shape {direction.shape}; representations have d = {reprs.shape[1]}.")
    basis = _basis_with_first(direction)
    walk = traverse(np.asarray(h_star, dtype=np.float64) @ basis, 0, reprs @ basis, concepts,
                    np.asarray(prototypes, dtype=np.float64) @ basis, steps, **kwargs)
    walk.dimension = -1
    walk.extras["direction"] = basis[:, 0].tolist()
    return walk


def factor_direction(reprs: np.ndarray, factor: np.ndarray, ridge: float = 1e-2, folds: int = 5, seed: int = 0):
    """The unit direction v along which h . v ranks items most like a planted factor: (v, rho).

    Ridge regression of the factor's standardised ranks on the centred representations (penalty
    ``ridge`` x the mean eigenvalue of the covariance, so it does not depend on the scale of h).
    ``rho`` is the Spearman correlation of out-of-fold predictions with the factor (``folds``-fold
    cross-fitting), so a direction fitted to noise in many dimensions does not look good.
    """
    from scipy.stats import rankdata

    x = np.asarray(reprs, dtype=np.float64)
    y = rankdata(factor)
    y = (y - y.mean()) / max(y.std(), EPS)

    def fit(rows):
        xc = x[rows] - x[rows].mean(0)
        gram = xc.T @ xc
        penalty = ridge * max(np.trace(gram) / len(gram), EPS)
        return np.linalg.solve(gram + penalty * np.eye(len(gram)), xc.T @ (y[rows] - y[rows].mean()))

    coef = fit(np.arange(len(x)))
    order = np.random.default_rng(seed).permutation(len(x))
    predicted = np.empty(len(x))
    for held in np.array_split(order, min(folds, len(x))):
        kept = np.setdiff1d(order, held)
        predicted[held] = (x[held] - x[kept].mean(0)) @ fit(kept)  # same centring as the fit: folds pool fairly
    return coef / max(np.linalg.norm(coef), EPS), spearman(predicted, factor)
