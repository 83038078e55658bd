"""Optional experiment tracking with wandb (``--wandb PROJECT`` on ``sweep`` and ``evaluate``).

    track_result(project="tdc-demo", name="tsds/linear_probe/0.1/test1",
                 config={"method": "tsds", ...}, result=eval_result, run_dir=Path("runs"))

One wandb run per evaluation: its configuration and every task's mean test and query
scores. wandb is an optional extra (``pip install 'task-datacomp[track]'``); without
``--wandb`` nothing imports it. ``WANDB_MODE=offline`` keeps runs on disk (the tests do).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from submissions.errors import ConfigError
from submissions.schemas import EvalResult


def require_wandb() -> None:
    """Fail before any work when --wandb is asked for without the package."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ConfigError("--wandb needs wandb: pip install 'task-datacomp[track]'") from None


def track_result(
    *, project: str, name: str, config: dict[str, Any], result: EvalResult, run_dir: Path
) -> None:
    import wandb

    run_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=project, name=name, config=config, dir=str(run_dir), reinit="finish_previous"
    )
    metrics: dict[str, float] = {}
    for t in result.tasks:
        metrics |= {f"{t.task}/test/{k}": v for k, v in t.mean.items()}
        metrics |= {f"{t.task}/query/{k}": v for k, v in (t.query_mean or {}).items()}
    run.log(metrics)
    run.summary.update(metrics)
    run.finish()
