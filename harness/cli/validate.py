"""``tdc-harness validate``: check a subset file against a dataset before submitting it.

    tdc-harness validate sub.npy --dataset demo --fraction 0.1 [--task test1] [--json]

Prints the size against the budget, the per-class counts against the pool and every problem
with what to do about it; exits 0 when the subset is valid and 2 when it is not. ``--json``
prints the same report as one JSON object (harness.validation.ValidationReport).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from harness.cli import common
from harness.cli.main import app

if TYPE_CHECKING:  # harness.validation pulls numpy: imported when the command runs
    from harness.validation import ValidationReport

INVALID_EXIT = 2


@app.command("validate")
def validate_command(
    file: Path = typer.Argument(..., help="the subset .npy file", show_default=False),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name (datasets.yaml)"),
    fraction: float = typer.Option(..., "--fraction", "-f", help="budget fraction of the pool"),
    task: str | None = typer.Option(None, "--task", "-t", help="one task; omit for all tasks"),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object"),
    max_bytes: int | None = typer.Option(
        None, "--max-bytes", help="file size cap (default: the server's upload cap)"
    ),
) -> None:
    """Validate a subset file: every rule, every problem at once (exit 2 when invalid)."""
    from harness.datasets import Dataset
    from harness.validation import validate_file
    from submissions.subset_file import DEFAULT_MAX_BYTES

    settings = common.settings()
    spec = common.specs(settings).dataset(dataset)
    ds = Dataset.open(spec, data_root=settings.data_root)
    cap = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    report = validate_file(file, ds=ds, fraction=fraction, task=task, max_bytes=cap)
    typer.echo(report.model_dump_json() if as_json else render(report, file=file))
    if not report.ok:
        raise typer.Exit(INVALID_EXIT)


def render(report: ValidationReport, *, file: Path) -> str:
    """The human summary: header, budget line, task line, class table, problems, verdict."""
    lines = [_header(report, file), _budget_line(report), _task_line(report)]
    lines += _class_table(report)
    if report.sha256:
        lines.append(f"sha256 {report.sha256}")
    if report.ok:
        lines.append("VALID: this subset can be submitted")
        return "\n".join(lines)
    lines.append(f"INVALID: {len(report.problems)} problem(s), fix all of them:")
    for p in report.problems:
        lines.append(f"  x [{p.code}] {p.message}")
        if p.sample:
            rest = (p.count or 0) - len(p.sample)
            more = f" (+{rest:,} more)" if rest > 0 else ""
            lines.append(f"      e.g. {', '.join(p.sample)}{more}")
    return "\n".join(lines)


def _header(report: ValidationReport, file: Path) -> str:
    what = f"{report.kind} UIDs, {report.nbytes:,} bytes" if report.kind else "unreadable"
    return f"{report.dataset}: {file} ({what})"


def _budget_line(report: ValidationReport) -> str:
    if report.budget is None:
        return f"fraction {report.fraction:g} is not allowed: no budget; size {report.size:,}"
    verdict = "within budget" if report.size <= report.budget else "OVER BUDGET"
    return (
        f"size {report.size:,} vs budget {report.budget:,} = floor({report.fraction:g} x "
        f"{report.pool_size:,} pool UIDs): {verdict}"
    )


def _task_line(report: ValidationReport) -> str:
    return f"task {report.task}" if report.task else "task: none (scored on every task)"


def _class_table(report: ValidationReport) -> list[str]:
    if not report.pool_class_counts:
        return []
    width = max(len("class"), *(len(c) for c in report.pool_class_counts))
    out = [f"{'class':<{width}}  {'subset':>9}  {'pool':>9}  {'% of pool':>9}"]
    for label, pool in report.pool_class_counts.items():
        n = report.class_counts.get(label, 0)
        share = f"{100 * n / pool:.1f}%" if pool else "-"
        out.append(f"{label:<{width}}  {n:>9,}  {pool:>9,}  {share:>9}")
    return out
