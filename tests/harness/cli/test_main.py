"""tdc-harness's one error boundary: every user mistake exits 2 with a message."""

from __future__ import annotations

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
