"""tdc-harness's one error boundary: every user mistake exits 2 with a message."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from harness.cli.main import main


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "--bogus"],
        ["validate", "x.npy", "--dataset", "demo", "--fraction", "abc"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "Error" in capsys.readouterr().err


def test_tdc_error_exits_2_with_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "show", "demoo"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'demoo'" in err and "Did you mean 'demo'" in err


def test_third_party_info_logs_only_with_verbose() -> None:
    """faiss's loader logs 'Loading faiss...' at INFO on import: hidden unless --verbose."""
    script = (
        "import logging, sys\n"
        "from harness.cli.main import configure_logging\n"
        "configure_logging(verbose=sys.argv[1] == 'v')\n"
        "import faiss\n"
        "logging.getLogger('harness.x').info('ours')\n"
    )
    for flag, shown in (("q", False), ("v", True)):
        out = subprocess.run([sys.executable, "-c", script, flag], capture_output=True, text=True)
        assert "INFO harness.x: ours" in out.stderr
        assert ("INFO faiss" in out.stderr) is shown, out.stderr
    assert main(["--verbose", "datasets", "show", "demo", "--json"]) == 0
    assert logging.getLogger().level == logging.INFO
    assert main(["datasets", "show", "demo", "--json"]) == 0
    assert logging.getLogger().level == logging.WARNING
