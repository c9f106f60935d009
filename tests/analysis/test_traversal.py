"""Sec. 2.4's traversal on a small planted case whose answer is known (no training needed)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recbole_disentangle.analysis.traversal import (
    beam_search,
    concept_range,
    equal_count_bounds,
    factor_dimension,
    factor_direction,
    nearest_prototype,
    spearman,
    traverse,
    traverse_direction,
)
from recbole_disentangle.data.synthetic import generate

D, J_SIZE, J_COLOUR = 8, 5, 6


@pytest.fixture(scope="module")
def planted():
    """Items of the planted generator placed by hand: concept k -> prototype direction, factor 0 ->
    dimension 5 and factor 1 -> dimension 6 (h_i = m_k + 0.4 (f_i - 1/2) on those dimensions + noise)."""
    data = generate(n_concepts=3, items_per_concept=60, n_users=10, seed=7)
    rng = np.random.default_rng(0)
    prototypes = np.zeros((3, D))
    prototypes[np.arange(3), np.arange(3)] = 1.0
    h = prototypes[data.item_concept] + 0.02 * rng.standard_normal((len(data.item_concept), D))
    h[:, J_SIZE] = 0.4 * (data.item_factors[:, 0] - 0.5)
    h[:, J_COLOUR] = 0.4 * (data.item_factors[:, 1] - 0.5)
    return data, h, prototypes


def test_traversal_is_monotone_distinct_and_stays_in_the_concept(planted):
    data, h, prototypes = planted
    concepts = nearest_prototype(h, prototypes)
    assert np.array_equal(concepts, data.item_concept)  # the hand placement keeps every item's concept
    start = int(np.flatnonzero(data.item_concept == 1)[0])
    walk = traverse(h[start], J_SIZE, h, concepts, prototypes, steps=6, tau=0.1, gamma=0.5, beam_size=8)
    assert len(set(walk.items)) == 6
    assert all(data.item_concept[i] == 1 for i in walk.items) and walk.concept == 1
    assert np.all(np.diff(walk.values) > 0)
    # monotone in the planted factor itself, not only in h_j
    assert np.all(np.diff(data.item_factors[walk.items, 0]) > 0)
    # each item inside its own sub-range
    bounds = np.asarray(walk.bounds)
    assert all(bounds[t] < v <= bounds[t + 1] for t, v in enumerate(walk.values))
    # Eq. 12's first term keeps the other dimensions close to the start item: the second factor
    # varies less along the walk than over the concept
    assert np.ptp(data.item_factors[walk.items, 1]) < np.ptp(data.item_factors[data.item_concept == 1, 1])


def test_factor_dimension_finds_the_planted_dimension(planted):
    data, h, _ = planted
    members = data.item_concept == 2
    assert factor_dimension(h[members], data.item_factors[members, 0])[0] == J_SIZE
    j, rho = factor_dimension(h[members], data.item_factors[members, 1])
    assert j == J_COLOUR and rho == pytest.approx(1.0)


def test_binary_search_finds_where_the_nearest_prototype_changes():
    prototypes = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    h = np.array([1.0, 0.2])
    k, a, b = concept_range(h, 1, prototypes, "cosine", limits=(-5.0, 5.0), tol=1e-9)
    # with h_0 = 1, prototype 0 is closest while h_1 < 1 (beyond, prototype 1 is)
    assert k == 0 and b == pytest.approx(1.0, abs=1e-6)
    assert a == -5.0  # no other prototype ever wins on the negative side: cut at the limit
    for value, expected in ((b - 1e-4, 0), (b + 1e-4, 1)):
        assert nearest_prototype(np.array([1.0, value]), prototypes)[0] == expected


def test_equal_count_bounds_split_the_items_evenly():
    values = np.random.default_rng(0).random(100)
    bounds = equal_count_bounds(values, 4, 0.0, 1.0)
    counts = np.histogram(values, bins=bounds)[0]
    assert bounds[0] == 0.0 and bounds[-1] == 1.0 and counts.tolist() == [25, 25, 25, 25]
    with pytest.raises(ValueError, match="cannot fill"):
        equal_count_bounds(values[:3], 4, 0.0, 1.0)


def test_a_wide_beam_finds_the_exhaustive_optimum_of_eq_12():
    rng = np.random.default_rng(3)
    reprs = rng.standard_normal((12, 4))
    h_star, j, tau, gamma = reprs[0], 2, 0.5, 0.7
    candidates = [np.arange(0, 4), np.arange(4, 8), np.arange(8, 12)]

    def objective(seq):
        u = np.delete(reprs, j, axis=1)
        u = u / np.linalg.norm(u, axis=1, keepdims=True)
        s = np.delete(h_star, j) / np.linalg.norm(np.delete(h_star, j))
        first = sum(np.exp(u[i] @ s / tau) for i in seq)
        second = sum(np.exp(u[a] @ u[b] / tau) for a, b in itertools.combinations(seq, 2))
        return first + gamma * second

    best = max(itertools.product(*candidates), key=objective)
    chosen, score = beam_search(candidates, reprs, h_star, j, tau, gamma, beam_size=64)
    assert tuple(chosen) == best and score == pytest.approx(objective(best))
    greedy, greedy_score = beam_search(candidates, reprs, h_star, j, tau, gamma, beam_size=1)
    assert greedy_score <= score + 1e-12


def test_spearman_of_a_monotone_walk():
    assert spearman([1, 2, 3], [0.1, 0.5, 0.9]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [0.9, 0.5, 0.1]) == pytest.approx(-1.0)


def test_a_traversal_along_a_coordinate_direction_is_the_coordinate_traversal(planted):
    data, h, prototypes = planted
    concepts = nearest_prototype(h, prototypes)
    start = int(np.flatnonzero(data.item_concept == 0)[3])
    axis = traverse(h[start], J_SIZE, h, concepts, prototypes, steps=5, gamma=0.5)
    along = traverse_direction(h[start], 2.5 * np.eye(D)[J_SIZE], h, concepts, prototypes, steps=5, gamma=0.5)
    assert along.items == axis.items
    assert along.values == pytest.approx(axis.values) and along.range == pytest.approx(axis.range)
    assert along.dimension == -1 and along.extras["direction"] == pytest.approx(np.eye(D)[J_SIZE].tolist())


def test_a_factor_spread_over_many_dimensions_is_followed_along_its_direction(planted):
    """Rotate the hand-placed space by 45 degrees in the plane of the two factors: each coordinate
    then mixes size and colour equally, so no single dimension ranks the size well; the fitted
    direction recovers it and the traversal along it is monotone in the planted factor, with B
    distinct items of the start concept."""
    data, h, prototypes = planted
    rotation = np.eye(D)
    half = np.sqrt(0.5)
    rotation[np.ix_([J_SIZE, J_COLOUR], [J_SIZE, J_COLOUR])] = [[half, -half], [half, half]]
    h_rot, m_rot = h @ rotation, prototypes @ rotation
    concepts = nearest_prototype(h_rot, m_rot)
    assert np.array_equal(concepts, data.item_concept)  # a rotation keeps every similarity
    members = np.flatnonzero(data.item_concept == 1)
    size = data.item_factors[:, 0]
    _, single_rho = factor_dimension(h_rot[members], size[members])
    direction, rho = factor_direction(h_rot[members], size[members])
    assert abs(single_rho) < 0.85 and rho > 0.97
    assert abs(direction @ rotation[J_SIZE]) > 0.98  # the planted size axis, seen in the rotated space
    walk = traverse_direction(h_rot[members[0]], direction, h_rot, concepts, m_rot, steps=6, gamma=0.5, beam_size=8)
    assert len(set(walk.items)) == 6 and all(data.item_concept[i] == 1 for i in walk.items)
    assert np.all(np.diff(walk.values) > 0) and np.all(np.diff(size[walk.items]) > 0)


def test_a_direction_fitted_to_noise_does_not_look_good():
    rng = np.random.default_rng(5)
    reprs, factor = rng.standard_normal((100, 32)), rng.random(100)
    _, rho = factor_direction(reprs, factor)
    assert abs(rho) < 0.3  # out-of-fold: 32 free coefficients on 100 items cannot fit noise
    with pytest.raises(ValueError, match="non-zero"):
        traverse_direction(reprs[0], np.zeros(32), reprs, np.zeros(100, dtype=int), reprs[:2])


# ---- circular factors ------------------------------------------------------------------------
def _walk_round_the_circle(n=40, start=4.0, turn=0.9):
    """A traversal of n steps whose angle turns steadily by ``turn`` of a circle from ``start``,
    crossing the wrap-around at 2 pi."""
    values = np.linspace(-1.0, 1.0, n)
    theta = (start + turn * 2 * np.pi * np.arange(n) / n) % (2 * np.pi)
    return values, theta


def test_a_walk_round_the_circle_is_monotone_on_the_circle_but_not_on_the_line():
    from recbole_disentangle.analysis.traversal import circular_monotonicity, circular_strictly_monotone

    values, theta = _walk_round_the_circle()
    assert abs(spearman(values, theta)) < 0.6  # the wrap-around breaks the linear rank order
    assert circular_monotonicity(values, theta) == pytest.approx(1.0)
    assert circular_strictly_monotone(theta)
    assert circular_monotonicity(values, theta[::-1]) == pytest.approx(-1.0)  # turning the other way
    # the same walk in degrees, and in fractions of a turn, with their periods
    assert circular_monotonicity(values, np.degrees(theta), 360.0) == pytest.approx(1.0)
    assert circular_monotonicity(values, theta / (2 * np.pi), 1.0) == pytest.approx(1.0)
    # order comes from the traversed values, not from the order the items are listed in
    shuffle = np.random.default_rng(0).permutation(len(values))
    assert circular_monotonicity(values[shuffle], theta[shuffle]) == pytest.approx(1.0)


def test_random_angles_along_a_walk_score_low():
    from recbole_disentangle.analysis.traversal import circular_monotonicity, circular_strictly_monotone

    rng = np.random.default_rng(1)
    values = np.linspace(0.0, 1.0, 40)
    scores = [circular_monotonicity(values, rng.uniform(0, 2 * np.pi, 40)) for _ in range(50)]
    assert np.mean(np.abs(scores)) < 0.25 and max(np.abs(scores)) < 0.6
    assert not circular_strictly_monotone(rng.uniform(0, 2 * np.pi, 40))
    # a walk that goes more than once round is not "strictly monotone" on the circle
    assert not circular_strictly_monotone(np.arange(0, 9.0, 0.5))


def test_circular_linear_correlation_finds_the_dimension_holding_an_angle():
    from recbole_disentangle.analysis.traversal import circular_linear_correlation

    rng = np.random.default_rng(2)
    theta = rng.uniform(0, 2 * np.pi, 300)
    reprs = rng.standard_normal((300, 6))
    reprs[:, 4] = np.cos(theta - 1.0) + 0.05 * rng.standard_normal(300)  # the circle projected on h_4
    assert circular_linear_correlation(reprs[:, 4], theta) > 0.95
    # where the circle's wrap-around falls decides what a linear rank correlation sees; the
    # circular measure does not care
    phases = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    projected = [np.cos(theta - phase) + 0.05 * rng.standard_normal(300) for phase in phases]
    assert min(abs(spearman(x, theta)) for x in projected) < 0.1
    assert min(circular_linear_correlation(x, theta) for x in projected) > 0.95
    assert circular_linear_correlation(reprs[:, 0], theta) < 0.2  # noise
    j, r = factor_dimension(reprs, theta, period=2 * np.pi)
    assert j == 4 and r > 0.95
    # in degrees, with its period
    assert factor_dimension(reprs, np.degrees(theta), period=360.0) == (j, pytest.approx(r))
    # degenerate angles (all equal) carry nothing, and do not divide by zero
    assert circular_linear_correlation(reprs[:, 4], np.zeros(300)) == 0.0


def test_circular_factor_specs_are_read_with_their_period():
    from recbole_disentangle.analysis.traversal import circular_periods
    from recbole_disentangle.errors import ConfigError

    assert circular_periods(["phase", "hue:360", "turn:1"]) == {"phase": pytest.approx(2 * np.pi), "hue": 360.0, "turn": 1.0}
    assert circular_periods(None) == {}
    for bad in ("hue:0", "hue:degrees", ":360"):
        with pytest.raises(ConfigError, match="name:period"):
            circular_periods([bad])
