"""Search-space files (``properties/tune/<Model>.yaml``): parsing, and Ray's ``param_space``.

A space file maps a hyper-parameter to one of:

* a Ray-style distribution, a mapping of one key: ``{choice: [a, b]}``, ``{grid: [a, b]}``,
  ``{uniform: [low, high]}``, ``{quniform: [low, high, q]}``, ``{loguniform: [low, high]}``
  (bounds are the values themselves), ``{qloguniform: [low, high, q]}``,
  ``{randint: [low, high]}`` (high excluded, as in Ray), ``{qrandint: [low, high, q]}`` (high
  included, as in Ray);
* a RecBole-style line (RecBole's ``hyper.test``): ``"choice [a, b]"``, ``"uniform low, high"``,
  ``"quniform low, high, q"``, ``"loguniform low, high"``, where, as in RecBole/Hyperopt, the
  loguniform bounds are natural-log exponents (``loguniform -8, 0`` = e^-8 .. 1);
* a stack of hidden layers, ``{layers: DIST, units: DIST}``: ``layers`` layers of ``units``
  units each (the papers' "0..3 hidden layers of 50..700 units"), given to the model as a list;
* anything else: a fixed value for every trial.

Parsing needs no ray; only :meth:`Dist.to_ray` imports it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from recbole_disentangle.config import load_yaml_file, properties_dir
from recbole_disentangle.errors import ConfigError

# (number of arguments, Ray's function name) of each distribution a space file may name.
DISTRIBUTIONS = {
    "choice": (None, "choice"),
    "grid": (None, "grid_search"),
    "uniform": (2, "uniform"),
    "quniform": (3, "quniform"),
    "loguniform": (2, "loguniform"),
    "qloguniform": (3, "qloguniform"),
    "randint": (2, "randint"),
    "qrandint": (3, "qrandint"),
}
HIDDEN_LAYER_KEYS = {"layers", "units"}


@dataclass
class Dist:
    """One distribution of a space file, before it becomes Ray's object (so it stays plain)."""

    kind: str
    args: list

    def to_ray(self, grid_choices: bool = False):
        from ray import tune

        kind = "grid" if (grid_choices and self.kind == "choice") else self.kind
        fn = getattr(tune, DISTRIBUTIONS[kind][1])
        return fn(list(self.args)) if DISTRIBUTIONS[kind][0] is None else fn(*self.args)


def _parse_dist(key: str, value, where: str):
    """``value`` of ``key`` as a Dist, a hidden-layer stack {layers: Dist, units: Dist}, or None (fixed)."""
    if isinstance(value, str):
        head, _, rest = value.strip().partition(" ")
        if head in ("choice", "uniform", "quniform", "loguniform") and rest.strip():
            return _parse_recbole_line(key, head, rest, where)
        return None
    if not isinstance(value, dict) or not value:
        return None
    if set(value) == HIDDEN_LAYER_KEYS:
        stack = {}
        for part in ("layers", "units"):
            dist = _parse_dist(f"{key}.{part}", value[part], where)
            if not isinstance(dist, Dist):
                raise ConfigError(
                    f"{where}: '{key}.{part}' must be a distribution such as {{randint: [0, 4]}}, not {value[part]!r}."
                )
            stack[part] = dist
        return stack
    if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        return None  # a fixed mapping (eval_args, say)
    kind, args = next(iter(value.items()))
    n_args = DISTRIBUTIONS[kind][0]
    if not isinstance(args, list) or not args or (n_args is not None and len(args) != n_args):
        shape = "[value, value, ...]" if n_args is None else "[" + ", ".join(["low", "high", "q"][:n_args]) + "]"
        raise ConfigError(f"{where}: '{key}: {{{kind}: {args!r}}}' needs a list {shape}.")
    if n_args is not None:
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ConfigError(f"{where}: '{key}: {{{kind}: {args}}}' needs numbers.")
        if args[0] >= args[1]:
            raise ConfigError(f"{where}: '{key}: {{{kind}: {args}}}' needs low < high.")
        if kind in ("loguniform", "qloguniform") and args[0] <= 0:
            raise ConfigError(
                f"{where}: '{key}: {{{kind}: {args}}}' needs low > 0 (the bounds are values, not exponents; "
                f"RecBole's line form 'loguniform -8, 0' takes exponents)."
            )
        if kind in ("randint", "qrandint") and not all(isinstance(a, int) for a in args):
            raise ConfigError(f"{where}: '{key}: {{{kind}: {args}}}' needs integers.")
    return Dist(kind, list(args))


def _parse_recbole_line(key: str, head: str, rest: str, where: str) -> Dist:
    """RecBole's ``hyper.test`` forms; ``loguniform a, b`` samples exp(uniform(a, b)) as Hyperopt does."""
    try:
        if head == "choice":
            values = yaml.safe_load(rest)
            if not isinstance(values, list) or not values:
                raise ValueError
            return Dist("choice", values)
        numbers = [float(x) for x in rest.split(",")]
        if len(numbers) != (3 if head == "quniform" else 2) or numbers[0] >= numbers[1]:
            raise ValueError
    except (ValueError, yaml.YAMLError):
        form = {"choice": "choice [a, b]", "quniform": "quniform low, high, q"}.get(head, f"{head} low, high")
        raise ConfigError(f"{where}: '{key}: {head} {rest}' is not of the form '{form}'.") from None
    if head == "loguniform":
        return Dist("loguniform", [math.exp(numbers[0]), math.exp(numbers[1])])
    return Dist(head, numbers)


def read_space(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(searched, fixed)`` from a space file: searched maps a key to a Dist or a hidden-layer stack."""
    path = Path(path)
    content = load_yaml_file(path)
    if not content:
        raise ConfigError(f"The search space '{path}' is empty: give at least one hyper-parameter to search.")
    searched, fixed = {}, {}
    for key, value in content.items():
        dist = _parse_dist(key, value, str(path))
        (searched if dist is not None else fixed)[key] = value if dist is None else dist
    if not searched:
        raise ConfigError(
            f"The search space '{path}' holds only fixed values; give distributions such as "
            f"learning_rate: {{loguniform: [1.0e-4, 1.0e-2]}}."
        )
    return searched, fixed


def find_space(model: str) -> Path | None:
    """The space shipped for ``model`` in ``properties/tune/``, if any."""
    shipped = properties_dir() / "tune" / f"{model}.yaml"
    return shipped if shipped.is_file() else None


def ray_param_space(searched: dict, fixed: dict, search_alg: str) -> dict:
    """Ray's ``param_space``; ``grid`` turns every ``choice`` into a grid, TPE refuses grids."""
    grid_choices = search_alg == "grid"
    space = dict(fixed)
    for key, dist in searched.items():
        if isinstance(dist, dict):
            space[key] = {part: d.to_ray(grid_choices) for part, d in dist.items()}
        else:
            if search_alg in ("tpe", "optuna", "hyperopt") and dist.kind == "grid":
                raise ConfigError(
                    f"'{key}' is a grid, which TPE cannot search: use {{choice: {dist.args}}} or --search_alg=grid."
                )
            space[key] = dist.to_ray(grid_choices)
    return space


def trial_settings(params: dict, nested_base: dict | None = None) -> dict:
    """A trial's sampled values as model settings.

    A hidden-layer stack becomes its list of sizes; ``outer.inner`` (``train_neg_sample_args.sample_num``)
    sets one entry of a mapping setting, whose other entries come from ``nested_base[outer]``.
    """
    settings = {}
    for key, value in params.items():
        if isinstance(value, dict) and set(value) == HIDDEN_LAYER_KEYS:
            value = [int(value["units"])] * int(value["layers"])
        elif hasattr(value, "item"):  # numpy scalars from the searchers
            value = value.item()
        if "." in key and nested_base is not None:
            outer, inner = key.split(".", 1)
            settings.setdefault(outer, dict(nested_base.get(outer) or {}))[inner] = value
        else:
            settings[key] = value
    return settings


def _grid_size(param_space: dict) -> int:
    size = 1
    for value in param_space.values():
        if isinstance(value, dict) and set(value) == {"grid_search"}:
            size *= len(value["grid_search"])
        elif isinstance(value, dict):
            size *= _grid_size(value)
    return size
