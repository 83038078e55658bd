"""``tdc-harness evaluate-pending``: options, errors and --dry-run against the live server."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli.main import main
from harness.datasets import Dataset
from submissions.schemas import State
from tests.harness.dispatch.conftest import LiveServer


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, dispatch_configs: Path, tiny_dataset: Dataset,
        tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("TDC_CONFIGS_DIR", str(dispatch_configs))
    monkeypatch.setenv("TDC_DATA_ROOT", str(tiny_dataset.dir.root.parent))
    monkeypatch.setenv("TDC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("TDC_ORGANIZER_TOKEN", raising=False)


def test_token_is_required(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate-pending", "--executor", "debug"]) == 2
    assert "organizer token" in capsys.readouterr().err


def test_unknown_executor_suggests(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate-pending", "--executor", "lokal", "--token", "x"]) == 2
    assert "Did you mean 'local'" in capsys.readouterr().err


def test_dry_run_claims_nothing(
    env: None, live_server: LiveServer, tiny_dataset: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    uids = [str(u) for u in tiny_dataset.uids("train")[:30]]
    subs = [
        live_server.submit(uids, team="alpha"),
        live_server.submit(uids, team="beta"),
        live_server.submit(uids[:20], team="alpha"),
    ]
    token = live_server.organizer_token
    args = ["--server", live_server.base_url, "--token", token, "--executor", "slurm"]
    code = main(["evaluate-pending", *args, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "would claim 3 submission(s): 2 unique evaluation(s)" in out
    assert "slurm array tiny/linear_probe: 2 unique item(s) in 1 task(s)" in out
    assert f"submission(s) {subs[1].id}, {subs[0].id}" in out or (
        f"submission(s) {subs[0].id}, {subs[1].id}" in out
    )
    assert all(live_server.detail(s.id).state == State.queued for s in subs)


def test_nothing_queued(
    env: None, live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate-pending", "--server", live_server.base_url, "--executor", "debug"]
    assert main([*args, "--token", live_server.organizer_token, "--dry-run"]) == 0
    assert "nothing queued" in capsys.readouterr().out
    assert main([*args, "--token", live_server.organizer_token]) == 0
    assert "claimed 0 (0 unique)" in capsys.readouterr().out
