"""Light modules stay light: specs, validation and the CLI's --help never import torch."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

LIGHT = ["submissions", "harness.specs", "harness.settings", "harness.datasets",
         "harness.datasets.preparers", "harness.datasets.status", "harness.embed"]  # fmt: skip
if importlib.util.find_spec("harness.validation") is not None:
    LIGHT.append("harness.validation")
HEAVY = ("torch", "open_clip", "timm", "peft", "faiss", "ultralytics", "sklearn")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    modules: list[str] = json.loads(out.strip().splitlines()[-1])
    return [m for m in modules if m.split(".")[0] in HEAVY]


@pytest.mark.parametrize("module", LIGHT)
def test_light_module_imports_no_heavy_library(module: str) -> None:
    assert _loaded_after(f"import {module}") == []


def test_cli_help_imports_no_heavy_library() -> None:
    code = (
        "import contextlib, io\n"
        "from harness.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as buf:\n"
        "    rc = main(['--help'])\n"
        "assert rc == 0 and 'prepare' in buf.getvalue() and 'datasets' in buf.getvalue(), rc"
    )
    assert _loaded_after(code) == []


def test_the_probe_sees_heavy_imports() -> None:
    """Guard: the probe does report a heavy import, so the checks above can fail."""
    assert "sklearn" in [m.split(".")[0] for m in _loaded_after("import sklearn")]
