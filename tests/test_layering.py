"""The dependency direction of DESIGN.md holds: ``submissions <- harness <- server -> leaderboard``.

Every import in the package sources is checked (module level, inside functions, under
``TYPE_CHECKING``, and ``importlib.import_module("...")`` with a literal name): the harness
talks to the server over HTTP only, never by importing it.
"""

from __future__ import annotations

import ast
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
        "    from server.services.pages import PageService\n"
        "    importlib.import_module('server.cli')\n"
        "    __import__('leaderboard.export')\n"
        "from . import sibling\n"
    )
    tops = [top for _, top in sorted(imported_packages(source))]
    assert tops == ["server", "typing", "leaderboard", "server", "server", "leaderboard"]
