"""``report results``: the research table from the results store, variants chosen on query sets.

    frame = results_frame(Path("runs"), sweep="demo")        # one row per (training, task, seed)
    table = summarize(frame, specs=specs, select_on="query")  # one row per cell
    write_report(table, frame, out=Path("report/"), specs=specs, select_on="query")

A *cell* is (dataset, method, base recipe, fraction, task). When a cell holds several
variants (a method's parameter grid, recipe variants such as ``lr``), the one with the best
mean **query-split** score is reported, with its test score: nothing is chosen by looking at
a test split. ``select_on="test"`` picks by test score instead, and every output says so:
it is for analysis only. Means and sample standard deviations are over every seed (selection
seeds x training seeds). Outputs: ``results.csv`` (long), ``results.md`` and
``results.html`` (method x task/fraction, best per column in bold) and figures with
matplotlib: score vs fraction per task, and method bars per fraction.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.specs import BenchmarkSpecs
from harness.store import ResultsStore
from harness.sweep.records import Records, SelectionRecord
from submissions.errors import DataNotFound

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SelectOn = Literal["query", "test"]
CELL = ["dataset", "method", "base_recipe", "fraction", "task"]
# Okabe & Ito's colour-blind-safe palette (black last).
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]  # lines that coincide stay visible


def results_frame(runs_dir: Path, *, sweep: str | None = None) -> pd.DataFrame:
    """Every stored score of every finished training (of ``sweep``), with its context."""
    import pandas as pd

    records = Records(runs_dir)
    if sweep is not None:
        keys = records.experiment(sweep)
        if keys is None:
            names = ", ".join(records.experiments()) or "none yet"
            raise DataNotFound(f"no sweep named {sweep!r} has run here (sweeps: {names})")
        wanted = set(keys)
        paths = {k: p for k, p in records.training_paths().items() if k in wanted}
    else:
        paths = records.training_paths()
    rows: list[dict[str, Any]] = []
    selections: dict[str, SelectionRecord | None] = {}
    for path in paths.values():
        rec = json.loads(path.read_text())
        if rec["status"] != "ok":
            continue
        sel = selections.setdefault(rec["selection"], records.selection(rec["selection"]))
        if sel is None:
            continue
        context = {
            "dataset": sel.dataset,
            "method": sel.method,
            "params": _canon(sel.params),
            "fraction": sel.fraction,
            "selection_seed": sel.seed,
            "recipe": rec["recipe"],
            "base_recipe": rec["base_recipe"],
            "variant": _canon(rec["variant"]),
        }
        for task, by_seed in rec["scores"].items():
            rows += [
                {**context, "task": task, "train_seed": int(seed), "digest": digest}
                for seed, digest in by_seed.items()
            ]
    if not rows:
        return pd.DataFrame()
    scores = ResultsStore(runs_dir).table()
    metrics = [c for c in scores.columns if c.startswith(("test.", "query."))]
    joined = pd.DataFrame(rows).merge(scores[["digest", *metrics]], on="digest", how="inner")
    return joined.drop(columns="digest")


def _canon(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def summarize(frame: pd.DataFrame, *, specs: BenchmarkSpecs, select_on: SelectOn) -> pd.DataFrame:
    """One row per cell: the chosen variant's test mean / std, its query mean, the best mark."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame()
    out = []
    for dataset, part in frame.groupby("dataset"):
        spec = specs.dataset(str(dataset))
        m, up = spec.primary_metric, spec.higher_is_better
        if f"query.{m}" not in part:  # reid: no query-split score
            part = part.assign(**{f"query.{m}": float("nan")})
        stats = (
            part.groupby([*CELL, "params", "recipe"], dropna=False)
            .agg(
                test_mean=(f"test.{m}", "mean"),
                test_std=(f"test.{m}", "std"),
                query_mean=(f"query.{m}", "mean"),
                n=(f"test.{m}", "size"),
            )
            .reset_index()
        )
        key = f"{select_on}_mean"
        stats["_rank"] = stats[key] if up else -stats[key]
        stats["candidates"] = stats.groupby(CELL)["recipe"].transform("size")
        chosen = stats.sort_values(
            [*CELL, "_rank", "params", "recipe"], ascending=[True] * 5 + [False, True, True]
        )
        chosen = chosen.groupby(CELL, as_index=False).head(1)
        col = ["dataset", "base_recipe", "fraction", "task"]
        best = chosen.groupby(col)["test_mean"].transform("max" if up else "min")
        chosen = chosen.assign(metric=m, best=chosen["test_mean"] == best)
        out.append(chosen.drop(columns="_rank"))
    return pd.concat(out, ignore_index=True).sort_values(CELL, ignore_index=True)


def cell_text(row: Any) -> str:
    std = "" if row.n < 2 or row.test_std != row.test_std else f" ± {row.test_std:.3f}"
    return f"{row.test_mean:.3f}{std}"


def pivot(table: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """Per (dataset, base recipe): methods x "task @ fraction" cells of text."""
    out = {}
    for (dataset, recipe), part in table.groupby(["dataset", "base_recipe"]):
        part = part.assign(
            cell=[cell_text(r) for r in part.itertuples()],
            column=[f"{r.task} @ {r.fraction:g}" for r in part.itertuples()],
        )
        grid = part.pivot(index="method", columns="column", values="cell")
        out[(str(dataset), str(recipe))] = grid.fillna("-")
    return out


def selection_note(select_on: SelectOn) -> str:
    if select_on == "test":
        return (
            "Variants chosen by TEST score: for analysis only, never a result to report "
            "(this looks at the test split)."
        )
    return "Where a cell has several variants, the one with the best query-split score is shown."


def write_report(
    table: pd.DataFrame, frame: pd.DataFrame, *, out: Path, select_on: SelectOn
) -> list[Path]:
    """results.csv, results.md, results.html and the figures; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    if table.empty:
        raise DataNotFound("no finished training in the results store: run a sweep first")
    written = [out / "results.csv"]
    table.to_csv(written[0], index=False)
    figures = write_figures(table, out=out)
    grids = pivot(table)
    written.append(_write_markdown(grids, table, out / "results.md", select_on))
    written.append(_write_html(grids, table, figures, out / "results.html", select_on))
    return written + figures


def _bold_best(grid: pd.DataFrame, table: pd.DataFrame, key: tuple[str, str], md: bool) -> Any:
    marked = grid.copy()
    for r in table[(table["dataset"] == key[0]) & (table["base_recipe"] == key[1])].itertuples():
        if r.best:
            col = f"{r.task} @ {r.fraction:g}"
            marked.loc[r.method, col] = (
                f"**{marked.loc[r.method, col]}**"
                if md
                else f"<strong>{html.escape(marked.loc[r.method, col])}</strong>"
            )
    return marked


def _write_markdown(grids: dict[Any, Any], table: pd.DataFrame, path: Path, sel: SelectOn) -> Path:
    lines = ["# Results", "", selection_note(sel), ""]
    for key, grid in grids.items():
        metric = table[table["dataset"] == key[0]]["metric"].iloc[0]
        lines += [f"## {key[0]}, {key[1]} ({metric}, mean ± std over seeds; best in bold)", ""]
        lines.append(markdown_table(_bold_best(grid, table, key, md=True)))
        lines.append("")
    chosen = table[table["candidates"] > 1]
    if len(chosen):
        picked = chosen[[*CELL, "params", "recipe", "candidates"]].set_index("method")
        lines += ["## Chosen variants", "", markdown_table(picked), ""]
    path.write_text("\n".join(lines))
    return path


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (its index as the first column)."""
    head = [str(frame.index.name or ""), *map(str, frame.columns)]
    rows = [[str(i), *map(str, r)] for i, r in zip(frame.index, frame.to_numpy(), strict=True)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _write_html(
    grids: dict[Any, Any], table: pd.DataFrame, figures: list[Path], path: Path, sel: SelectOn
) -> Path:
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Results</title>",
        "<style>body{font-family:sans-serif;max-width:72rem;margin:auto}"
        "td,th{padding:.2rem .6rem;text-align:right}</style>",
        f"<h1>Results</h1><p>{html.escape(selection_note(sel))}</p>",
    ]
    for key, grid in grids.items():
        escaped = _bold_best(grid.map(html.escape), table, key, md=False)
        parts.append(f"<h2>{html.escape(key[0])}, {html.escape(key[1])}</h2>")
        parts.append(escaped.to_html(escape=False))
    parts += [f"<img src='{html.escape(p.name)}' alt='{html.escape(p.stem)}'>" for p in figures]
    path.write_text("\n".join(parts))
    return path


def write_figures(table: pd.DataFrame, *, out: Path) -> list[Path]:
    """Score vs fraction per task, and method bars per fraction, per (dataset, recipe)."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    for (dataset, recipe), part in table.groupby(["dataset", "base_recipe"]):
        metric = str(part["metric"].iloc[0])
        written.append(_lines(part, out / f"fraction-{dataset}-{recipe}.png", metric))
        written.append(_bars(part, out / f"methods-{dataset}-{recipe}.png", metric))
    return written


def _colours(methods: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(methods))}


def _save(fig: Any, path: Path, colours: dict[str, str]) -> Path:
    """One legend for every method (right of the panels), then write and close."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=m) for m, c in colours.items()]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _lines(part: pd.DataFrame, path: Path, metric: str) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    tasks = sorted(part["task"].unique())
    colours = _colours(list(part["method"].unique()))
    fig, axes = plt.subplots(
        1, len(tasks), figsize=(4 * len(tasks), 3.4), squeeze=False, sharey=True
    )
    for ax, task in zip(axes[0], tasks, strict=True):
        for method, rows in part[part["task"] == task].groupby("method"):
            rows = rows.sort_values("fraction")
            ax.errorbar(
                rows["fraction"],
                rows["test_mean"],
                yerr=rows["test_std"].fillna(0),
                label=method,
                color=colours[str(method)],
                marker=MARKERS[sorted(colours).index(str(method)) % len(MARKERS)],
                markerfacecolor="none",
                capsize=3,
            )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(
            sorted(part["fraction"].unique()), [f"{f:g}" for f in sorted(part["fraction"].unique())]
        )
        ax.set_title(task)
        ax.set_xlabel("fraction of the pool")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test {metric}")
    return _save(fig, path, colours)


def _bars(part: pd.DataFrame, path: Path, metric: str) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    fractions = sorted(part["fraction"].unique())
    tasks = sorted(part["task"].unique())
    methods = sorted(part["method"].unique())
    colours = _colours(methods)
    fig, axes = plt.subplots(
        1, len(fractions), figsize=(4.5 * len(fractions), 3.4), squeeze=False, sharey=True
    )
    width = 0.8 / len(methods)
    for ax, fraction in zip(axes[0], fractions, strict=True):
        here = part[part["fraction"] == fraction]
        for i, method in enumerate(methods):
            rows = here[here["method"] == method].set_index("task").reindex(tasks)
            ax.bar(
                np.arange(len(tasks)) + i * width,
                rows["test_mean"],
                width,
                yerr=rows["test_std"].fillna(0),
                label=method,
                color=colours[method],
                capsize=2,
            )
        ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks)
        ax.set_title(f"fraction {fraction:g}")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"test {metric}")
    return _save(fig, path, colours)
