"""Running a baseline on a prepared dataset and writing the subset file.

    ds = Dataset.open(specs.dataset("demo"), data_root=settings.data_root)
    out = select(ds=ds, method="image_alignment", fraction=0.1, task="test1", seed=0)
    out.rows, out.uids, out.metadata          # sorted pool rows, their UIDs, what happened
    write_selection(out, Path("sub.npy"))     # a file that passes validation by construction

``select`` computes the budget from the dataset spec, resolves parameters (call > YAML >
defaults), runs the selector with ``np.random.default_rng(seed)`` and checks the result:
sorted, unique, inside the pool, at most the budget. Same inputs, same rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.selection.config import BaselinesConfig, load_baselines
from harness.selection.context import ProgressFn, SelectionContext
from harness.selection.registry import SelectionOutput, selector
from submissions.errors import ConfigError

if TYPE_CHECKING:
    from harness.datasets import Dataset

log = logging.getLogger(__name__)


class SelectionBug(RuntimeError):
    """A selector broke the output contract (a bug in the method, not the user's fault)."""


def select(
    *,
    ds: Dataset,
    method: str,
    fraction: float,
    task: str | None,
    seed: int,
    params: Mapping[str, Any] | None = None,
    baselines: BaselinesConfig | None = None,
    progress: ProgressFn | None = None,
    weights_dir: Path | None = None,
) -> SelectionOutput:
    """Run baseline ``method`` on ``ds`` for ``fraction`` of the pool and ``task`` (or none).

    ``baselines`` defaults to the shipped ``configs/baselines.yaml`` (commands pass the one of
    ``TDC_CONFIGS_DIR``); ``weights_dir`` is where relative checkpoint names resolve."""
    from harness.settings import default_configs_dir

    config = baselines or load_baselines(default_configs_dir())
    spec = config.method(method)
    resolved = spec.resolved_params(params)
    if spec.needs_query and task is None:
        raise ConfigError(
            f"selection method {method!r} needs a task's query set; pass a task "
            f"(one of {', '.join(ds.spec.task_names())})"
        )
    budget = ds.spec.budget(fraction, pool_size=ds.pool_size)
    ctx = SelectionContext.from_dataset(ds, task=task, progress=progress, weights_dir=weights_dir)
    started = time.perf_counter()
    out = run_selector(ctx, method, budget, seed=seed, params=resolved)
    if out.size == 0:
        raise ConfigError(
            f"selection method {method!r} selected no rows ({out.metadata.get('note', '')}); "
            "a subset needs at least one: change its parameters"
        )
    uids = ds.uids(ds.spec.pool)[out.rows]
    used = ds.set_record()
    return SelectionOutput(
        rows=out.rows,
        uids=uids,
        metadata={
            **out.metadata,
            "method": method,
            "dataset": ds.spec.name,
            "fraction": fraction,
            "task": task,
            "seed": seed,
            "budget": budget,
            "size": out.size,
            "params": resolved,
            "embeddings": {"set": used[0], "fingerprint": used[1]} if used else None,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


def run_selector(
    ctx: SelectionContext, method: str, budget: int, *, seed: int, params: Mapping[str, Any]
) -> SelectionOutput:
    """Call the selector and enforce the output contract (used by ``select`` and benchmarks)."""
    from harness.selection.faiss_ops import single_thread_if_small

    with single_thread_if_small(ctx.pool_size):
        out = selector(method)(ctx, budget, rng=np.random.default_rng(seed), **params)
    check_output(out, pool_size=ctx.pool_size, budget=budget, method=method)
    log.info("%s: %d of budget %d (%s)", method, out.size, budget, out.metadata.get("note", ""))
    return out


def check_output(out: SelectionOutput, *, pool_size: int, budget: int, method: str) -> None:
    rows = out.rows
    problems = []
    if rows.dtype != np.int64 or rows.ndim != 1:
        problems.append(f"rows must be 1-D int64, got {rows.dtype} {rows.shape}")
    elif len(rows):
        if np.any(np.diff(rows) <= 0):
            problems.append("rows are not sorted and unique")
        if rows[0] < 0 or rows[-1] >= pool_size:
            problems.append(f"rows outside [0, {pool_size})")
    if len(rows) > budget:
        problems.append(f"{len(rows)} rows exceed the budget {budget}")
    if "natural_size" not in out.metadata:
        problems.append("metadata lacks natural_size")
    if problems:
        raise SelectionBug(f"selection method {method!r}: {'; '.join(problems)}")


def write_selection(out: SelectionOutput, path: Path) -> Path:
    """Write the selected pool UIDs as a subset file (the submission contract); returns path."""
    from submissions.subset_file import write_subset_file

    if out.uids is None:
        raise ValueError("write_selection needs an output of select() (it carries the UIDs)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_subset_file(path, np.asarray(out.uids, dtype=np.str_))
