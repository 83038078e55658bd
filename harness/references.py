"""Reference rows: a selection method scored over several selection seeds, as one board row.

    ref = Reference.of("clip_score", {"captions": "label"}, baselines=config)
    ref.label                        # "clip_score · captions=label": every non-default param
    scored = score_reference(ds=ds, recipe=recipe, ref=ref, fraction=0.1, task="test1",
                             seeds=(0, 1, 2), baselines=config, store=store)
    scored.result                    # one EvalResult: per task, one entry per selection seed
    scored.result.manifest.selection # method, all params, seeds, each seed's subset sha256
    rows = merge_identical([a, b])   # byte-identical subsets: one entry, named for both
    rows = score_references(ds=ds, recipe=recipe, refs=[ref, ...], fractions=(0.05, 0.1),
                            baselines=config, store=store)   # every cell, merged
    created, posted = post_rows(client, rows, team="baselines")  # one post per label

A stochastic method's score moves with its selection seed (by ±0.1 on the demo at 10%), so
a reference row is the mean and std over selection seeds, each seed's value the mean over
the recipe's training seeds. Each selection seed carries its training seeds' per-example
outcomes, stacked (``ExampleOutcomes.stack``), so boards bootstrap reference rows exactly.
Each distinct subset is trained once (the results store keys scores by subset), so a method
that ignores the seed costs one evaluation however many seeds are asked for, and its row is
that one subset's evaluation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.metrics import seed_summary
from harness.runner import evaluate_subset
from harness.selection.api import select
from harness.selection.config import BaselinesConfig
from submissions.schemas import (
    EvalResult,
    ExampleOutcomes,
    SeedResult,
    SelectionRecord,
    TaskResult,
)

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from harness.specs import RecipeSpec
    from harness.store import ResultsStore
    from submissions.client import TdcClient

log = logging.getLogger(__name__)

SELECTION_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Reference:
    """A method with its parameters: ``params`` as asked, ``resolved`` with every default."""

    method: str
    params: Mapping[str, Any]
    resolved: Mapping[str, Any]
    label: str

    @classmethod
    def of(
        cls, method: str, params: Mapping[str, Any] | None, *, baselines: BaselinesConfig
    ) -> Reference:
        spec = baselines.method(method)
        resolved = spec.resolved_params(dict(params or {}))
        defaults = spec.resolved_params({})
        changed = {k: v for k, v in sorted(resolved.items()) if defaults.get(k) != v}
        label = " · ".join([method, ", ".join(f"{k}={v}" for k, v in changed.items())])
        return cls(method, dict(params or {}), resolved, label.removesuffix(" · "))


@dataclass(frozen=True)
class ScoredReference:
    """One reference on one (fraction, task or all tasks) cell."""

    label: str
    fraction: float
    task: str | None
    subsets: tuple[str, ...]  # per selection seed
    result: EvalResult


def score_reference(
    *,
    ds: Dataset,
    recipe: RecipeSpec,
    ref: Reference,
    fraction: float,
    task: str | None,
    seeds: Sequence[int] = SELECTION_SEEDS,
    baselines: BaselinesConfig,
    store: ResultsStore | None = None,
    weights_dir: Path | None = None,
) -> ScoredReference:
    """Select with each seed, score each distinct subset once, combine over the seeds
    (``weights_dir``: local checkpoints, for selectors and recipes that load one)."""
    from harness.validation import subset_sha256

    per_seed: list[EvalResult] = []
    scored: dict[str, EvalResult] = {}
    subsets = []
    for seed in seeds:
        out = select(ds=ds, method=ref.method, fraction=fraction, task=task, seed=seed,
                     params=ref.params, baselines=baselines, weights_dir=weights_dir)  # fmt: skip
        sha = subset_sha256(out.rows)
        if sha not in scored:
            scored[sha] = evaluate_subset(ds=ds, recipe=recipe, pool_rows=out.rows,
                                          subset_sha256=sha, fraction=fraction, task=task,
                                          weights_dir=weights_dir, store=store)  # fmt: skip
        subsets.append(sha)
        per_seed.append(scored[sha])
    record = SelectionRecord(method=ref.method, params=dict(ref.resolved), seeds=list(seeds),
                             subsets=subsets)  # fmt: skip
    log.info("%s f=%g %s: %d distinct subset(s) over %d seeds",
             ref.label, fraction, task or "all tasks", len(scored), len(seeds))  # fmt: skip
    return ScoredReference(ref.label, fraction, task, tuple(subsets), combine(per_seed, record))


def combine(per_seed: Sequence[EvalResult], record: SelectionRecord) -> EvalResult:
    """One result whose per-task entries are the selection seeds (each the mean over the
    recipe's training seeds, its outcomes those training seeds' stacked); mean and std over
    them. The subset identity is a digest of the seeds' subsets, so the same seeds and
    subsets always make the same row.

    When every seed chose the same subset (a deterministic method) the result is that
    subset's own evaluation (entries per training seed, each with its own outcomes), its
    identity the subset's sha256: one subset is one row.
    """
    first = per_seed[0]
    if len(set(record.subsets)) == 1:
        manifest = first.manifest.model_copy(update={"selection": record})
        return first.model_copy(update={"manifest": manifest})
    tasks = [
        _combine_task([r.tasks[i] for r in per_seed], record.seeds) for i in range(len(first.tasks))
    ]
    pairs = zip(record.seeds, record.subsets, strict=True)
    digest = hashlib.sha256(" ".join(f"{s}:{h}" for s, h in pairs).encode()).hexdigest()
    distinct = {r.manifest.subset_sha256: r for r in per_seed}.values()
    manifest = first.manifest.model_copy(
        update={
            "subset_sha256": digest,
            "wall_time_s": sum(r.manifest.wall_time_s for r in distinct),
            "reused_seeds": [],
            "selection": record,
        }
    )
    size = round(sum(r.subset_size for r in per_seed) / len(per_seed))
    return first.model_copy(update={"tasks": tasks, "manifest": manifest, "subset_size": size})


def _combine_task(results: Sequence[TaskResult], seeds: Sequence[int]) -> TaskResult:
    """Per selection seed: the mean over its training seeds, with their outcomes stacked
    (none when a training seed has none)."""
    entries = [SeedResult(seed=seed, metrics=dict(r.mean), query_metrics=r.query_mean,
                          outcomes=_stacked(r))
               for seed, r in zip(seeds, results, strict=True)]  # fmt: skip
    mean, std, query_mean = seed_summary(entries)
    query_size = results[0].query_size if query_mean is not None else None
    update = {"seeds": entries, "mean": mean, "std": std, "query_mean": query_mean,
              "query_size": query_size}  # fmt: skip
    return results[0].model_copy(update=update)


def _stacked(result: TaskResult) -> ExampleOutcomes | None:
    parts = [s.outcomes for s in result.seeds]
    if not parts or any(p is None for p in parts):
        return None
    return ExampleOutcomes.stack([p for p in parts if p is not None])


def score_references(
    *,
    ds: Dataset,
    recipe: RecipeSpec,
    refs: Sequence[Reference],
    fractions: Sequence[float],
    seeds: Sequence[int] = SELECTION_SEEDS,
    baselines: BaselinesConfig,
    store: ResultsStore | None = None,
    weights_dir: Path | None = None,
) -> list[ScoredReference]:
    """Every reference on every fraction (task-aware methods on every task), merged by
    :func:`merge_identical`."""
    rows = []
    for ref in refs:
        needs_task = baselines.method(ref.method).needs_query
        for fraction in fractions:
            for task in ds.spec.task_names() if needs_task else [None]:
                rows.append(score_reference(ds=ds, recipe=recipe, ref=ref, fraction=fraction,
                                            task=task, seeds=seeds, baselines=baselines,
                                            store=store, weights_dir=weights_dir))  # fmt: skip
    return merge_identical(rows)


def post_rows(client: TdcClient, rows: Sequence[ScoredReference], *, team: str) -> tuple[int, int]:
    """Post the rows as unranked baseline reference rows, one post per board label;
    (rows created, rows posted). Idempotent: a rerun creates none."""
    labels: dict[str, list[EvalResult]] = {}
    for r in rows:
        labels.setdefault(r.label, []).append(r.result)
    created = 0
    for label, results in labels.items():
        recorded = client.post_references(results, kind="baseline", team=team, name=label)
        created += recorded.created
    return created, len(rows)


def merge_identical(rows: Sequence[ScoredReference]) -> list[ScoredReference]:
    """The rows, relabelled where references chose byte-identical subsets (every seed's).

    A reference identical to an earlier one on every cell (fraction, task) is not a row of
    its own: its cells are dropped and the earlier reference is named for both
    (``random_filter = match_label``). One identical on some cells only keeps its rows,
    named for the other there (``match_label (= random_filter on test1, test4)``). An
    all-task row covers every task.
    """
    labels = list(dict.fromkeys(r.label for r in rows))
    cells = {label: [r for r in rows if r.label == label] for label in labels}
    names = {label: label for label in labels}
    kept: list[str] = []
    for label in labels:
        twin, same = _twin(cells[label], [(k, cells[k]) for k in kept])
        if twin is not None and len(same) == len(cells[label]):
            names[twin] = f"{names[twin]} = {label}"
            continue
        if twin is not None:
            tasks = ", ".join(sorted({r.task or "all tasks" for r in same}))
            names[label] = f"{label} (= {twin} on {tasks})"
        kept.append(label)
    return [replace(r, label=names[r.label]) for k in kept for r in cells[k]]


def _twin(
    mine: list[ScoredReference], earlier: list[tuple[str, list[ScoredReference]]]
) -> tuple[str | None, list[ScoredReference]]:
    """The earlier reference sharing the most of ``mine``'s cells' subsets, and those cells."""
    best: tuple[str | None, list[ScoredReference]] = (None, [])
    for label, theirs in earlier:
        same = [c for c in mine if any(_covers(t, c) for t in theirs)]
        if len(same) > len(best[1]):
            best = (label, same)
    return best


def _covers(a: ScoredReference, b: ScoredReference) -> bool:
    """``a`` scores ``b``'s cell with the same subsets."""
    return (a.fraction, a.subsets) == (b.fraction, b.subsets) and a.task in (None, b.task)
