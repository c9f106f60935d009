"""A model's hyper-parameters, declared once: what each means, its kind, and the rule it must obey.

A model lists them as ``hyperparameters`` (a tuple of :class:`Hyperparameter`, see
:class:`~recbole_disentangle.model.base.ModelHooks`); from that one declaration

* ``check_config`` checks every value against its rule (:func:`check_hyperparameters`), raising
  ``<model>: '<key>' = <value> is invalid: <rule>.``; rules that relate two keys stay in the
  model's own ``check_config``, after these;
* the class docstring gets a "Hyper-parameters" section (:func:`docstring_section`, added by
  ``ModelHooks.__init_subclass__``);
* the model's YAML (``properties/model/<Model>.yaml``) must say the same: every declared key has
  a default there whose comment begins with ``(<kind>) <doc>`` (what follows may say why the
  default is what it is), and every model key of the YAML is declared (:func:`yaml_mismatches`,
  run over every model by ``tests/model/test_hyperparameters.py``).

The defaults themselves live only in the YAML, where Config layers them.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from recbole_disentangle.errors import ConfigError


@dataclass(frozen=True)
class Hyperparameter:
    """One hyper-parameter of a model.

    ``kind``: its type as the YAML comment writes it (``int``, ``float``, ``str``, ``bool``,
    ``list of int``, ...). ``doc``: what it means, the start of its YAML comment after the kind.
    ``valid``: a test of the value (None: checked elsewhere, by the model's ``check_config``),
    ``rule``: what the error message says after "is invalid: " when the test fails.
    ``depends_on``: other keys whose values the test also reads, passed after the value
    (``valid(value, *others)``) and filled into ``rule``'s ``{key}`` fields; their own rules
    should come first in the declaration.
    """

    name: str
    kind: str
    doc: str
    valid: Callable[..., bool] | None = None
    rule: str = ""
    depends_on: tuple[str, ...] = ()


# ---- tests of a value -------------------------------------------------------------------------
def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(at_least: int) -> Callable[[object], bool]:
    """An int (not a bool) >= ``at_least``."""
    return lambda value: is_int(value) and value >= at_least


def number(*, above=None, at_least=None, below=None, at_most=None, bools: bool = False,
           nan: bool = False) -> Callable[[object], bool]:
    """An int or float within the given bounds. ``bools``: True and False pass as 1 and 0;
    ``nan``: NaN passes (both as the checks these declarations replaced had it, key by key)."""

    def valid(value) -> bool:
        if isinstance(value, bool) and not bools:
            return False
        if not isinstance(value, (int, float)):
            return False
        if math.isnan(value):
            return nan
        return ((above is None or value > above) and (at_least is None or value >= at_least)
                and (below is None or value < below) and (at_most is None or value <= at_most))

    return valid


def one_of(choices: Iterable) -> Callable[[object], bool]:
    choices = tuple(choices)
    return lambda value: value in choices


def boolean(value) -> bool:
    return isinstance(value, bool)


def int_list(at_least: int) -> Callable[[object], bool]:
    """A list of ints >= ``at_least``; ~ (None) reads as the empty list."""
    return lambda value: isinstance(value or [], list) and all(is_int(v) and v >= at_least for v in value or [])


# ---- uses of the declaration ------------------------------------------------------------------
def check_hyperparameters(config, hyperparameters: Iterable[Hyperparameter]) -> None:
    """Each declared value against its rule, in declaration order: a ConfigError for the first that fails."""
    for parameter in hyperparameters:
        if parameter.valid is None:
            continue
        others = [config[key] for key in parameter.depends_on]
        if not parameter.valid(config[parameter.name], *others):
            rule = parameter.rule.format(**dict(zip(parameter.depends_on, others))) if others else parameter.rule
            raise ConfigError(f"{config['model']}: '{parameter.name}' = {config[parameter.name]!r} is invalid: {rule}.")


def docstring_section(hyperparameters: Iterable[Hyperparameter], width: int = 96) -> str:
    """The "Hyper-parameters" section of a model's docstring: one entry per declared key."""
    lines = ["Hyper-parameters (``properties/model/<Model>.yaml`` gives each default):", ""]
    for parameter in hyperparameters:
        entry = f"``{parameter.name}`` ({parameter.kind}): {parameter.doc}"
        lines += textwrap.wrap(entry, width, subsequent_indent="    ")
    return "\n".join(lines)


_KEY_LINE = re.compile(r"^([A-Za-z_]\w*):[^#]*?(?:#\s?(.*))?$")
_CONTINUATION = re.compile(r"^\s+#\s*(.*)$")


def yaml_comments(path: str | Path) -> dict[str, str]:
    """Top-level key -> its comment (continuation lines of indented ``#`` joined) in a YAML file."""
    comments: dict[str, str] = {}
    key = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = _KEY_LINE.match(line)
        if match:
            key = match.group(1)
            comments[key] = (match.group(2) or "").strip()
            continue
        continuation = _CONTINUATION.match(line)
        if key is not None and continuation and comments[key]:
            comments[key] += " " + continuation.group(1).strip()
        else:
            key = None
    return comments


def yaml_mismatches(hyperparameters: Iterable[Hyperparameter], yaml_files: Iterable[str | Path],
                    general_keys: Iterable[str] = ()) -> list[str]:
    """Where the YAML files (a model's, parents first) and the declaration disagree, one sentence each.

    Every declared key needs a default in one of the files whose comment (the last file's that sets
    it) begins with ``(<kind>) <doc>``; every key of the files but ``general_keys`` (RecBole's
    training and evaluation settings, which a model's YAML may also set) needs a declaration.
    """
    comments: dict[str, tuple[str, Path]] = {}
    for file in yaml_files:
        comments.update({key: (text, Path(file)) for key, text in yaml_comments(file).items()})
    declared = {parameter.name: parameter for parameter in hyperparameters}
    problems = []
    for name, parameter in declared.items():
        if name not in comments:
            problems.append(f"'{name}' is declared but no YAML file gives it a default.")
            continue
        text, file = comments[name]
        expected = f"({parameter.kind}) {parameter.doc}"
        if not text.startswith(expected):
            problems.append(f"'{name}' in {file.name}: its comment should begin with {expected!r}, it reads {text!r}.")
    general = set(general_keys)
    for name, (_, file) in comments.items():
        if name not in declared and name not in general:
            problems.append(f"'{name}' in {file.name} is not declared in the model's hyperparameters.")
    return problems


__all__ = ["Hyperparameter", "boolean", "check_hyperparameters", "docstring_section", "int_list", "integer",
           "is_int", "number", "one_of", "yaml_comments", "yaml_mismatches"]
