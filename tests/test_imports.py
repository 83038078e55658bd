"""Light modules stay light: specs, validation and the CLI's --help never import torch."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

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


# ``tdc-harness --help`` imports every command module: none may pull the scientific stack or
# the settings machinery at import time (they load inside the commands).
HELP_FREE = ("numpy", "pandas", "torch", "pydantic_settings")


def _top_level_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return {m.split(".")[0] for m in json.loads(out.strip().splitlines()[-1])}


@pytest.mark.parametrize(
    "argv", [["--help"], ["validate", "--help"], ["report", "leaderboard", "--help"]]
)
def test_cli_help_imports_no_numpy_pandas_or_settings(argv: list[str]) -> None:
    code = (
        "import contextlib, io\n"
        "from harness.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as buf:\n"
        f"    rc = main({argv!r})\n"
        "assert rc == 0 and 'Usage' in buf.getvalue(), (rc, buf.getvalue())"
    )
    assert sorted(_top_level_after(code) & set(HELP_FREE)) == []


def test_help_probe_sees_numpy() -> None:
    """Guard: the probe reports numpy when a command module's import does pull it in."""
    assert "numpy" in _top_level_after("import harness.validation")


def test_console_script_help_lists_every_command_group() -> None:
    script = Path(sys.executable).with_name("tdc-harness")
    assert script.exists(), f"{script}: install the package (pip install -e .)"
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("datasets", "validate", "evaluate-pending", "report"):
        assert command in done.stdout
