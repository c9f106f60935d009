"""The package's structural rules (issue 16), checked by reading its source with ``ast``.

- no module over 400 lines;
- no function (its whole ``def``, docstring included) over 80 lines;
- no first-party import inside a function, except where the imported module needs an optional
  extra and is loaded lazily so that the rest of the package imports without it (ALLOWED_LAZY);
- no import circle among the package's modules at module level.

Nothing here imports the package: the rules hold for the files as written, whatever is installed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "recbole_disentangle"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# (module, function, imported module) -> why the import waits until the function runs. Only an
# optional extra justifies it: the modules below import one at their top, and the caller must
# still import (and mostly work) without that extra installed.
# (matplotlib, torchvision and sentence-transformers are imported lazily inside the modules that
# use them, figures.py and data/features/extract.py, so no first-party import has to wait for them.)
ALLOWED_LAZY = {
    ("recbole_disentangle.cli", "run_sweep_command", "recbole_disentangle.tuning"):
        "tuning imports ray (the 'tune' extra) when it is imported (tuning/ray_compat.py); only "
        "--tune / --resume_sweep need it: plain runs and --help work without ray (test_tuning.py)",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def _tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"), filename=str(MODULES[name]))


def _imported_modules(node: ast.Import | ast.ImportFrom, importer: str) -> dict[str, bool]:
    """First-party modules an import statement in module ``importer`` runs: {module: explicit}.

    Explicit: the statement needs that module's contents (``import a.b``, ``from a.b import name``);
    not explicit: a package it only passes through (``a`` for both, and ``a.b`` in
    ``from a.b import submodule``), which is initialised first but whose names are not read.
    """
    if isinstance(node, ast.Import):
        targets = {alias.name: True for alias in node.names}
    else:
        if node.level:
            # Relative: resolved against the importer's package (the module itself for __init__).
            base = importer.split(".") if importer in PACKAGES else importer.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        # ``from package import name`` runs the submodule ``name`` when there is one.
        submodules = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in MODULES]
        targets = {source: len(submodules) < len(node.names), **{name: True for name in submodules}}
    found: dict[str, bool] = {}
    for target, explicit in targets.items():
        if target != PACKAGE and not target.startswith(PACKAGE + "."):
            continue
        # Importing a.b.c runs a, a.b and a.b.c: every prefix that is one of ours counts.
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in MODULES:
                found[prefix] = found.get(prefix, False) or (explicit and prefix == target)
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported (not in a def, class body included)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)  # the TYPE_CHECKING branch never runs
        else:
            stack.extend(ast.iter_child_nodes(node))


def _functions(tree: ast.Module):
    """(qualified name, node) for every function and method, nested ones included."""
    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child
                yield from walk(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)
    yield from walk(tree, "")


def test_the_scan_sees_the_package():
    assert len(MODULES) > 30
    assert "recbole_disentangle.quick_start" in MODULES and "recbole_disentangle.model" in PACKAGES


def test_no_module_over_400_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concern): {long}"


def test_no_function_over_80_lines():
    long = {}
    for name in MODULES:
        for qualname, node in _functions(_tree(name)):
            # The whole def, from its 'def' line to its last line (decorators not counted).
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                long[f"{name}:{qualname}"] = n
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split into named steps): {long}"


def _lazy_first_party_imports():
    for name in MODULES:
        for qualname, node in _functions(_tree(name)):
            # Only the function's own statements: a nested def is reported under its own name.
            stack = list(node.body)
            while stack:
                child = stack.pop()
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in _imported_modules(child, name):
                        yield name, qualname, target, child.lineno
                stack.extend(ast.iter_child_nodes(child))


def test_no_first_party_import_inside_a_function():
    found = {(module, function, target): line
             for module, function, target, line in _lazy_first_party_imports()
             if target != PACKAGE}  # the empty root package, run first by any of the others
    wrong = sorted(f"{module}:{line} ({function}) imports {target}"
                   for (module, function, target), line in found.items()
                   if (module, function, target) not in ALLOWED_LAZY)
    assert not wrong, ("first-party imports inside functions (import at module level; only a "
                       "module that needs an optional extra may wait, listed in ALLOWED_LAZY): "
                       + "; ".join(wrong))
    stale = sorted(set(ALLOWED_LAZY) - set(found))
    assert not stale, f"ALLOWED_LAZY names imports that are no longer there: {stale}"


def _import_graph() -> dict[str, set[str]]:
    graph = {}
    for name in MODULES:
        # A module's own packages are initialised before it runs: passing through them to a
        # sibling submodule closes no circle, but reading their names (``from own_package import
        # X`` while own_package imports this module) does.
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {target for node in _module_level_imports(_tree(name))
                       for target, explicit in _imported_modules(node, name).items()
                       if target != name and (explicit or target not in own_packages)}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def test_no_import_circle_at_module_level():
    cycles = _cycles(_import_graph())
    assert not cycles, f"module-level import circles among package modules: {cycles}"


def test_the_import_reader_resolves_relative_and_package_imports():
    def imports(source, importer):
        return _imported_modules(ast.parse(source).body[0], importer)

    convert = "recbole_disentangle.data.convert"
    assert imports("from .atomic import OutputExists", convert) == {
        PACKAGE: False, "recbole_disentangle.data": False, convert: False, f"{convert}.atomic": True}
    assert imports("from . import atomic", f"{convert}.amazon") == {
        PACKAGE: False, "recbole_disentangle.data": False, convert: False, f"{convert}.atomic": True}
    assert imports("from recbole_disentangle.data.convert import CONVERTERS", f"{convert}.amazon")[convert] is True
    assert imports("import numpy", convert) == {}


@pytest.mark.parametrize("graph, circle", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_circle_finder_finds_circles(graph, circle):
    assert _cycles(graph) == circle
