"""Sweep fixtures: the demo benchmark as the data root, a fresh runs directory per test.

def test_x(sweep_env): main(["sweep", str(sweep_env.write(EXPERIMENTS)), "--executor", "debug"])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.datasets import Dataset


@dataclass(frozen=True)
class SweepEnv:
    data_root: Path
    runs: Path
    tmp: Path

    def write(self, experiments: list[dict[str, object]], name: str = "experiments.yaml") -> Path:
        path = self.tmp / name
        path.write_text(yaml.safe_dump({"experiments": experiments}))
        return path


@pytest.fixture
def sweep_env(demo_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SweepEnv:
    """TDC_DATA_ROOT = the session's demo (read only), TDC_RUNS_DIR = this test's own."""
    data_root = demo_dataset.dir.root.parent
    monkeypatch.setenv("TDC_DATA_ROOT", str(data_root))
    monkeypatch.setenv("TDC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    return SweepEnv(data_root, tmp_path / "runs", tmp_path)
