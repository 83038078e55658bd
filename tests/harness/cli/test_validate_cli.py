"""``tdc-harness validate``: exit codes, the human summary and the JSON report."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.cli import main as cli
from harness.datasets import Dataset
from harness.settings import default_configs_dir
from submissions.subset_file import write_subset_file


@pytest.fixture
def env(tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Configs naming the tiny dataset, and the data root it lives under."""
    configs = tmp_path / "configs"
    configs.mkdir()
    shutil.copy(default_configs_dir() / "recipes.yaml", configs / "recipes.yaml")
    spec = tiny_dataset.spec.model_dump(mode="json", exclude={"name"})
    (configs / "datasets.yaml").write_text(yaml.safe_dump({"datasets": {"tiny": spec}}))
    monkeypatch.setenv("TDC_CONFIGS_DIR", str(configs))
    monkeypatch.setenv("TDC_DATA_ROOT", str(tiny_dataset.dir.root.parent))
    # Other command groups may still be in the making: load the ones that exist.
    present = tuple(m for m in cli.COMMAND_MODULES if importlib.util.find_spec(m))
    monkeypatch.setattr(cli, "COMMAND_MODULES", present)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["validate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_valid_subset_prints_budget_classes_and_exits_0(
    env: Path, tiny_dataset: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_subset_file(env / "ok.npy", tiny_dataset.uids("train")[:30])
    code, out, _ = run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.1")
    assert code == 0
    assert "size 30 vs budget 30 = floor(0.1 x 300 pool UIDs): within budget" in out
    assert "class" in out and "% of pool" in out
    assert "sha256 " in out and out.rstrip().endswith("VALID: this subset can be submitted")


def test_invalid_subset_lists_every_problem_and_exits_2(
    env: Path, tiny_dataset: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    uids = np.append(tiny_dataset.uids("train")[:40], ["ghost", tiny_dataset.uids("test1")[0]])
    path = write_subset_file(env / "bad.npy", uids)
    code, out, _ = run(capsys, str(path), "-d", "tiny", "-f", "0.1", "--task", "test7")
    assert code == 2
    assert "INVALID: 4 problem(s)" in out and "OVER BUDGET" in out
    for needle in ("[unknown_task]", "Did you mean", "[unknown_uid]", "e.g. ghost", "[test_leak]"):
        assert needle in out
    assert "[over_budget] 42 UIDs exceed the budget of 30" in out and "keep at most 30" in out


def test_json_report_is_one_object(
    env: Path, tiny_dataset: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_subset_file(env / "dup.npy", np.repeat(tiny_dataset.uids("train")[:5], 2))
    code, out, _ = run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.25", "--json")
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False and report["budget"] == 75 and report["size"] == 10
    assert [p["code"] for p in report["problems"]] == ["duplicate_uid"]
    assert report["problems"][0]["count"] == 5 and "pool_rows" not in report


def test_unreadable_file_and_unknown_dataset(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = env / "sub.npy"
    path.write_bytes(b"\x80\x04\x95 pickled")
    code, out, _ = run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.1")
    assert code == 2 and "[pickle]" in out and "never loaded" in out
    code, _, err = run(capsys, str(path), "--dataset", "tinyy", "--fraction", "0.1")
    assert code == 2 and "unknown dataset 'tinyy'" in err and "'tiny'" in err
