"""Executors: where evaluation jobs run (SLURM, a local process pool, or in-process), via submitit.

    presets = load_executor_presets(settings.configs_dir)     # configs/executors.yaml
    spec = executor_spec("slurm", configs_dir=settings.configs_dir, overrides={"partition": "gpu"})
    jobs = launch([chunk_a, chunk_b], spec, fn=run_work_items)  # one SLURM job array
    spec.chunks(10)                                            # how 10 work items are packed

All submitit glue lives here; the rest of the dispatcher sees ``submitit.Job`` objects only.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.registry import unknown
from harness.specs import format_validation, read_yaml
from submissions.errors import ConfigError

if TYPE_CHECKING:
    import submitit

log = logging.getLogger(__name__)

Cluster = Literal["slurm", "local", "debug"]
SbatchValue = str | int | float | bool
T = TypeVar("T")
R = TypeVar("R")


class ExecutorSpec(BaseModel):
    """Where and how array tasks run. ``timeout_min`` bounds one array task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    cluster: Cluster = "local"
    partition: str | None = None
    timeout_min: int = Field(60, gt=0)
    mem_gb: float = Field(4, gt=0)
    cpus_per_task: int = Field(1, gt=0)
    gpus_per_node: int = Field(0, ge=0)
    array_parallelism: int = Field(16, gt=0)
    items_per_task: int = Field(1, gt=0, description="work items run in sequence in one task")
    extra_sbatch: dict[str, SbatchValue] = Field(default_factory=dict)
    setup: tuple[str, ...] = Field((), description="shell lines run before the job (SLURM)")
    log_dir: Path = Path("dispatch/logs")
    python: str | None = Field(None, description="interpreter of the jobs; default: this one")

    def chunks(self, n: int) -> list[range]:
        """Split ``n`` work items into array tasks (contiguous index ranges).

        SLURM bounds concurrency itself (``%array_parallelism``), so tasks hold
        ``items_per_task`` items each. Local processes have no scheduler: at most
        ``array_parallelism`` tasks are made so that no more run at once.
        """
        if n <= 0:
            return []
        n_tasks = math.ceil(n / self.items_per_task)
        if self.cluster != "slurm":
            n_tasks = min(n_tasks, self.array_parallelism)
        size = math.ceil(n / n_tasks)
        return [range(i, min(i + size, n)) for i in range(0, n, size)]

    def resolve_log_dir(self, runs_dir: Path) -> ExecutorSpec:
        """The same spec with a relative ``log_dir`` placed under ``runs_dir``."""
        if self.log_dir.is_absolute():
            return self
        return self.model_copy(update={"log_dir": runs_dir / self.log_dir})


def load_executor_presets(configs_dir: Path) -> dict[str, ExecutorSpec]:
    """Every preset of ``configs_dir/executors.yaml``, validated."""
    path = configs_dir / "executors.yaml"
    raw = read_yaml(path)
    if not isinstance(raw, Mapping) or set(raw) != {"executors"}:
        raise ConfigError(f"{path}: expected one top-level key 'executors'")
    out: dict[str, ExecutorSpec] = {}
    for name, body in (raw["executors"] or {}).items():
        try:
            out[name] = ExecutorSpec.model_validate({"name": name, **(body or {})})
        except ValidationError as err:
            raise ConfigError(
                format_validation(path, f"executors.{name}", err, ExecutorSpec)
            ) from None
    return out


def executor_spec(
    name: str, *, configs_dir: Path, overrides: Mapping[str, Any] | None = None
) -> ExecutorSpec:
    """The preset ``name`` with ``overrides`` (CLI > YAML > defaults) applied and validated."""
    presets = load_executor_presets(configs_dir)
    if name not in presets:
        raise unknown("executor preset", name, presets)
    merged = {**presets[name].model_dump(), **{k: v for k, v in (overrides or {}).items()}}
    try:
        return ExecutorSpec.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(format_validation(Path("<overrides>"), name, err, ExecutorSpec)) from None


def make_executor(spec: ExecutorSpec, *, name: str = "tdc-eval") -> submitit.AutoExecutor:
    """A submitit executor configured from ``spec`` (jobs run this interpreter by default)."""
    import submitit

    python = spec.python or sys.executable
    spec.log_dir.mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(
        folder=spec.log_dir / "%j",
        cluster=spec.cluster,
        slurm_python=python,  # the project must be importable in the job: same venv
        local_python=python,
    )
    params: dict[str, Any] = {"timeout_min": spec.timeout_min, "name": name}
    if spec.cluster != "debug":
        params |= {"cpus_per_task": spec.cpus_per_task, "gpus_per_node": spec.gpus_per_node}
    if spec.cluster == "slurm":
        params |= {
            "mem_gb": spec.mem_gb,
            "slurm_array_parallelism": spec.array_parallelism,
            "slurm_additional_parameters": dict(spec.extra_sbatch),
            "slurm_setup": list(spec.setup),
        }
        if spec.partition:
            params["slurm_partition"] = spec.partition
    executor.update_parameters(**params)
    return executor


def launch(
    items: Sequence[T],
    spec: ExecutorSpec,
    *,
    fn: Callable[[T], R],
    array: bool = True,
    name: str = "tdc-eval",
) -> list[submitit.Job[R]]:
    """Submit ``fn(item)`` for every item; one job array when ``array`` (one sbatch call).

    ``array=False`` submits one job per item (one sbatch each): the slow path, kept for the
    benchmark that measures what arrays save.
    """
    if not items:
        return []
    executor = make_executor(spec, name=name)
    if not array:
        return [executor.submit(fn, item) for item in items]
    with executor.batch():
        jobs = [executor.submit(fn, item) for item in items]
    log.info("launched %d %s task(s): %s", len(jobs), spec.cluster, _id_summary(jobs))
    return jobs


def _id_summary(jobs: Sequence[submitit.Job[Any]]) -> str:
    ids = [str(j.job_id) for j in jobs]
    return ", ".join(ids) if len(ids) <= 4 else f"{ids[0]} .. {ids[-1]}"
