"""The dependency direction of DESIGN.md holds: ``submissions <- harness <- server -> leaderboard``.

Every import in the package sources is checked (module level, inside functions, under
``TYPE_CHECKING``, and ``importlib.import_module("...")`` with a literal name): the harness
talks to the server over HTTP only, never by importing it. Within a package listed in
:data:`ACYCLIC` the modules import each other without a cycle, counting the same kinds of
import (a cycle through an import inside a function is still a cycle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "submissions": {"harness", "server", "leaderboard"},
    "harness": {"server", "leaderboard"},
    "leaderboard": {"harness", "server"},
}


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value.split(".")[0]))
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__")


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, top in imported_packages(path.read_text(encoding="utf-8")):
            if top in FORBIDDEN[package]:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_lower_layers(package: str) -> None:
    assert (ROOT / package / "__init__.py").exists()
    assert violations(package) == []


def test_the_checker_sees_every_kind_of_import() -> None:
    """Guard: each form the rule forbids is reported, so the test above can fail."""
    source = (
        "import server.app\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from leaderboard import render\n"
        "def f():\n"
        "    from server.services.page_data import PageService\n"
        "    importlib.import_module('server.cli')\n"
        "    __import__('leaderboard.export')\n"
        "from . import sibling\n"
    )
    tops = [top for _, top in sorted(imported_packages(source))]
    assert tops == ["server", "typing", "leaderboard", "server", "server", "leaderboard"]


# Packages whose modules form an acyclic import graph.
ACYCLIC = ("harness/recipes",)


def imported_modules(source: str, *, module: str) -> Iterator[str]:
    """Every module name an import in ``source`` (the text of ``module``) may load: for
    ``from a.b import c`` both ``a.b`` and ``a.b.c``, since ``c`` may be a submodule."""
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value


def import_graph(package: str) -> dict[str, set[str]]:
    """Module name -> the modules of the same package it imports (``__init__`` is the package)."""
    paths = {}
    for path in sorted((ROOT / package).glob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in paths.items():
        as_module = f"{name}.__init__" if path.name == "__init__.py" else name
        found = imported_modules(path.read_text(encoding="utf-8"), module=as_module)
        graph[name] = {m for m in found if m in paths and m != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles (``[a, b, ..., a]``) closed by the back edges of a depth-first search: at
    least one whenever the graph has a cycle, none when it has not."""
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    return cycles


@pytest.mark.parametrize("package", ACYCLIC)
def test_package_modules_import_each_other_without_a_cycle(package: str) -> None:
    cycles = [" -> ".join(c) for c in import_cycles(import_graph(package))]
    assert cycles == []


def test_the_cycle_finder_sees_function_level_and_relative_imports() -> None:
    """Guard: a cycle closed by imports inside a function, under ``TYPE_CHECKING``, relative or
    of the ``from package import module`` form is reported, so the test above can fail."""
    sources = {
        "pkg.a": "from pkg.b import X\n",
        "pkg.b": "def f():\n    from . import c\n",
        "pkg.c": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.a import Y\n",
    }
    graph = {
        name: set(imported_modules(src, module=name)) & set(sources)
        for name, src in sources.items()
    }
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    graph["pkg.c"] = set()
    assert import_cycles(graph) == []
