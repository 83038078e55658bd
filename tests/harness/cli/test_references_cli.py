"""``tdc-harness references`` on the demo benchmark: rows, labels, JSON, and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.cli.references import parse_method
from harness.datasets import Dataset
from harness.settings import default_configs_dir
from submissions.errors import ConfigError


@pytest.fixture
def demo_env(demo_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TDC_CONFIGS_DIR", str(default_configs_dir()))
    monkeypatch.setenv("TDC_DATA_ROOT", str(demo_dataset.dir.root.parent))
    monkeypatch.setenv("TDC_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def test_rows_for_each_method_seed_averaged_and_merged(
    demo_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = demo_env / "refs.json"
    argv = ["references", "-d", "demo", "-f", "0.05", "-m", "random_filter",
            "-m", "clip_score:captions=label", "-m", "match_label", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "random_filter | f=0.05 all tasks | 3 subset(s)" in printed
    assert "clip_score · captions=label | f=0.05 all tasks | 1 subset(s)" in printed
    rows = json.loads(out.read_text())
    labels = {r["label"] for r in rows}
    assert labels == {"random_filter", "clip_score · captions=label",
                      "match_label (= random_filter on test1, test4)"}  # fmt: skip
    (random,) = [r["result"] for r in rows if r["label"] == "random_filter"]
    assert random["manifest"]["selection"]["seeds"] == [0, 1, 2]
    assert [s["seed"] for s in random["tasks"][0]["seeds"]] == [0, 1, 2]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-m", "random_filtr"], "random_filter"),  # did you mean
        (["-m", "tsds:alpha"], "KEY=VALUE"),
        (["-m", "tsds:alhpa=0.3"], "alhpa"),
        (["-m", "random_filter", "-f", "0.3"], "fraction"),
        (["-m", "random_filter", "--seeds", "a"], "--seeds"),
        (["-m", "random_filter", "--post"], "organizer token"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    demo_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    needle: str,
) -> None:
    monkeypatch.delenv("TDC_ORGANIZER_TOKEN", raising=False)
    assert main(["references", "-d", "demo", *argv]) == 2
    assert needle in capsys.readouterr().err


def test_method_specs_parse() -> None:
    assert parse_method("tsds:alpha=0.3,C=2") == ("tsds", {"alpha": 0.3, "C": 2})
    assert parse_method("random_filter") == ("random_filter", {})
    with pytest.raises(ConfigError):
        parse_method(":alpha=1")
