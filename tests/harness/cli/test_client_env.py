"""The harness's server commands read the server and the organizer token through
``ClientSettings`` (TDC_SERVER, TDC_ORGANIZER_TOKEN, TDC_TOKEN), the flags winning."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli.main import main
from harness.settings import HarnessSettings

DEAD = "http://127.0.0.1:9"  # discard port: nothing answers


@pytest.fixture(autouse=True)
def no_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TDC_SERVER", "TDC_TOKEN", "TDC_ORGANIZER_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def test_evaluate_pending_reads_token_and_server_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate-pending", "--executor", "debug", "--dry-run"]
    assert main(args) == 2
    assert "an organizer token is needed: --token or TDC_ORGANIZER_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("TDC_ORGANIZER_TOKEN", "tdc_org")
    monkeypatch.setenv("TDC_SERVER", DEAD)
    assert main(args) == 2  # past the token check, to the server named by TDC_SERVER
    assert f"error: cannot reach {DEAD}" in capsys.readouterr().err
    assert main([*args, "--server", "http://127.0.0.1:7"]) == 2
    assert "cannot reach http://127.0.0.1:7" in capsys.readouterr().err


@pytest.mark.parametrize("var", ["TDC_ORGANIZER_TOKEN", "TDC_TOKEN", None])
def test_report_leaderboard_organizer_needs_a_token(
    var: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:  # fmt: skip
    if var is not None:
        monkeypatch.setenv(var, "tdc_x")
    code = main(["report", "leaderboard", "--out", str(tmp_path), "--organizer", "--server", DEAD])
    err = capsys.readouterr().err
    assert code == 2
    if var is None:
        assert "--organizer needs an organizer token" in err
    else:
        assert f"cannot reach {DEAD}" in err


def test_the_demo_port_is_a_harness_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """TDC_PORT: one field, read by `tdc-server serve` (server Settings extends it) and the demo."""
    monkeypatch.delenv("TDC_PORT", raising=False)
    assert HarnessSettings().port == 8000
    monkeypatch.setenv("TDC_PORT", "8765")
    assert HarnessSettings().port == 8765
