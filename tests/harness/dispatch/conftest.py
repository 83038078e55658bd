"""Dispatch fixtures: a real single-node SLURM for the session, and a configs dir for ``tiny``.

    @pytest.mark.slurm
    def test_x(slurm): ...        # SLURM_CONF points at the session's own cluster

In CI (CI=true) a SLURM that cannot start fails the run; elsewhere those tests skip with the
reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.datasets import Dataset
from harness.settings import default_configs_dir
from tests.infra.slurm_cluster import SlurmCluster, SlurmUnavailable

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def _slurm_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster | str]:
    try:
        cluster = SlurmCluster.start(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as err:
        yield str(err)
        return
    try:
        with cluster.activated():
            yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm(_slurm_session: SlurmCluster | str) -> SlurmCluster:
    """The session's SLURM cluster (started once, stopped by PID file at the end)."""
    if isinstance(_slurm_session, str):
        if IN_CI:
            pytest.fail(f"SLURM unavailable: {_slurm_session} (required in CI)")
        pytest.skip(f"SLURM unavailable: {_slurm_session}")
    return _slurm_session


@pytest.fixture(scope="session")
def dispatch_configs(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configs dir with the tiny dataset, the repository's recipes and executor presets."""
    out = tmp_path_factory.mktemp("dispatch-configs")
    spec = tiny_dataset.spec.model_dump(mode="json", exclude={"name"})
    (out / "datasets.yaml").write_text(yaml.safe_dump({"datasets": {"tiny": spec}}))
    for name in ("recipes.yaml", "executors.yaml"):
        shutil.copy(default_configs_dir() / name, out / name)
    return out
