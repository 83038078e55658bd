"""Executors (presets, packing, submitit launch) and job reconciliation, on real SLURM too."""

from __future__ import annotations

import math
import operator
import os
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.dispatch.executors import ExecutorSpec, executor_spec, launch, load_executor_presets
from harness.dispatch.reconcile import JobRef, JobState, Reconciler, squeue_states
from harness.settings import default_configs_dir
from submissions.errors import ConfigError, UnknownName
from tests.infra.slurm_cluster import SlurmCluster


def test_shipped_presets_validate() -> None:
    presets = load_executor_presets(default_configs_dir())
    assert {"slurm", "local", "debug"} <= set(presets)
    assert presets["slurm"].cluster == "slurm" and presets["slurm"].partition == "debug"
    assert all(p.name == name for name, p in presets.items())


def test_unknown_preset_suggests(tmp_path: Path) -> None:
    with pytest.raises(UnknownName, match="Did you mean 'slurm'"):
        executor_spec("slurn", configs_dir=default_configs_dir())


def test_overrides_win_and_are_validated() -> None:
    spec = executor_spec(
        "slurm", configs_dir=default_configs_dir(), overrides={"partition": "gpu", "mem_gb": 8}
    )
    assert (spec.partition, spec.mem_gb, spec.cluster) == ("gpu", 8, "slurm")
    with pytest.raises(ConfigError, match="timeout_min"):
        executor_spec("slurm", configs_dir=default_configs_dir(), overrides={"timeout_min": 0})


def test_typo_in_yaml_lists_valid_keys(tmp_path: Path) -> None:
    (tmp_path / "executors.yaml").write_text("executors:\n  x: {cluster: slurm, partiton: a}\n")
    with pytest.raises(ConfigError, match=r"partiton.*valid keys: .*partition"):
        load_executor_presets(tmp_path)


@given(
    n=st.integers(0, 300),
    per=st.integers(1, 20),
    par=st.integers(1, 50),
    cluster=st.sampled_from(["slurm", "local", "debug"]),
)
def test_chunks_cover_every_item_once(n: int, per: int, par: int, cluster: str) -> None:
    spec = ExecutorSpec(cluster=cluster, items_per_task=per, array_parallelism=par)  # type: ignore[arg-type]
    chunks = spec.chunks(n)
    assert [i for c in chunks for i in c] == list(range(n))
    if n:
        if cluster == "slurm":
            assert max(len(c) for c in chunks) <= per  # balanced, never over the size
            assert len(chunks) == math.ceil(n / per)
        else:  # no scheduler: never more processes than the parallelism
            assert len(chunks) <= par
            assert len(chunks) <= math.ceil(n / per)


def test_launch_debug_runs_in_process(tmp_path: Path) -> None:
    spec = ExecutorSpec(cluster="debug", log_dir=tmp_path)
    jobs = launch([3, 4], spec, fn=operator.neg)
    assert [j.result() for j in jobs] == [-3, -4]


def test_launch_local_runs_subprocesses(tmp_path: Path) -> None:
    spec = ExecutorSpec(cluster="local", log_dir=tmp_path, timeout_min=2)
    jobs = launch([2, 5], spec, fn=math.factorial)
    assert [j.result() for j in jobs] == [2, 120]
    assert len({j.job_id for j in jobs}) == 2


@pytest.mark.slurm
def test_slurm_array_is_one_sbatch(slurm: SlurmCluster, tmp_path: Path) -> None:
    spec = ExecutorSpec(cluster="slurm", partition="debug", log_dir=tmp_path, mem_gb=0.5)
    marks = [tmp_path / f"m{i}" for i in range(3)]
    jobs = launch(marks, spec, fn=Path.touch)
    mains = {j.job_id.split("_")[0] for j in jobs}
    assert len(mains) == 1 and sorted(j.job_id.split("_")[1] for j in jobs) == ["0", "1", "2"]
    refs = [JobRef(j.job_id, "slurm", (m,)) for j, m in zip(jobs, marks, strict=True)]
    rec = Reconciler(grace_s=30)
    _wait(lambda: all(s.state == JobState.done for s in rec.poll(refs)), 60)
    assert all(m.exists() for m in marks)

    single = launch(marks[:2], spec, fn=Path.touch, array=False)
    assert len({j.job_id for j in single}) == 2 and all("_" not in j.job_id for j in single)


@pytest.mark.slurm
def test_scancel_is_lost_with_reason(slurm: SlurmCluster, tmp_path: Path) -> None:
    spec = ExecutorSpec(cluster="slurm", partition="debug", log_dir=tmp_path, mem_gb=0.5)
    [job] = launch([600], spec, fn=time.sleep)
    ref = JobRef(job.job_id, "slurm", (tmp_path / "never",))
    rec = Reconciler(grace_s=0)
    _wait(lambda: rec.poll([ref])[0].state == JobState.running, 60)
    subprocess.run(["scancel", job.job_id], check=True)
    _wait(lambda: rec.poll([ref])[0].state == JobState.lost, 30)
    status = rec.poll([ref])[0]
    assert status.slurm_state == "CANCELLED" and "cancelled" in status.reason


@pytest.mark.slurm
def test_vanished_job_is_lost_after_grace(slurm: SlurmCluster, tmp_path: Path) -> None:
    ref = JobRef("987654_0", "slurm", (tmp_path / "never",))
    now = [0.0]
    rec = Reconciler(grace_s=10, clock=lambda: now[0])
    assert squeue_states(["987654_0"]) == {}
    assert rec.poll([ref])[0].state == JobState.running  # within grace: maybe a slow disk
    now[0] = 11
    status = rec.poll([ref])[0]
    assert status.state == JobState.lost and "vanished" in status.reason
    (tmp_path / "never").touch()  # the outcome turned up after all: done, never lost
    assert rec.poll([ref])[0].state == JobState.done


def test_local_job_without_process_is_lost(tmp_path: Path) -> None:
    ref = JobRef("123", "local", (tmp_path / "never",), job=None)
    assert Reconciler().poll([ref])[0].state == JobState.lost


def _wait(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_sacct_explains_jobs_squeue_forgot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With accounting (slurmdbd), a purged job's final state comes from sacct. The real
    single-node cluster has no slurmdbd, so stand-in squeue/sacct commands play a site that
    has one: squeue no longer lists the job, sacct knows it ran out of memory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    purged = "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"
    (bin_dir / "squeue").write_text(f"#!/bin/sh\n{purged}\n")
    (bin_dir / "sacct").write_text("#!/bin/sh\nprintf '77_0|OUT_OF_MEMORY\\n77_1|COMPLETED\\n'\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    done = tmp_path / "done"
    done.touch()
    refs = [JobRef("77_0", "slurm", (tmp_path / "never",)), JobRef("77_1", "slurm", (done,))]
    oom, ok = Reconciler(grace_s=0).poll(refs)
    assert oom.state == JobState.lost and oom.slurm_state == "OUT_OF_MEMORY"
    assert "ran out of memory" in oom.reason
    assert ok.state == JobState.done
