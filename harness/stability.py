"""How stable the ranking of the reference methods is: Kendall tau under test resampling and
between training seeds, from the per-example outcomes of each method's evaluation.

    got = gather_outcomes(ds=ds, recipe=recipe, refs=refs, fraction=0.05, tasks=tasks,
                          baselines=baselines, store=ResultsStore(runs_dir))
    report = stability(got.outcomes, tasks=tasks, classes=..., higher_is_better=True)
    report.rows[-1].boot_median        # the dataset score (mean over tasks), last
    render_markdown(report, ...)       # the table `tdc-harness report stability` prints

A method's row is its subset for one selection seed (default 0; a task-aware method has one
subset per task, and each task reads its own subset's result), evaluated through the results
store as ``tdc-harness references`` does (harness.references), so nothing is retrained that
is stored. Scores stored before outcomes were kept are reused without them: such a method is
skipped and named (``--fresh`` retrains without the store).

Per task and for the dataset score (mean over tasks): the full-test ranking; Kendall's tau-b
between it and the ranking on each of ``resamples`` bootstrap resamples of the test examples
(seed-mean outcomes, so only test sampling varies; every method scores the same resample,
drawn from a fixed seed, the task name and the test size: the resamples the boards' intervals
are drawn from, ``submissions.significance``); and tau between the rankings of every pair of
training seeds (full test, so only training randomness varies; ``submissions.rank_stability``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from harness.references import Reference, score_reference
from submissions.detection_map import METRICS as MAP_METRICS
from submissions.detection_map import MapOutcomes
from submissions.outcomes import PER_CLASS, primary_matrix, uids_digest
from submissions.rank_stability import kendall_tau, seed_taus
from submissions.resampling import RESAMPLES, SEED
from submissions.significance import Outcomes, TaskStat, bootstrap, seed_scores

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from harness.selection.config import BaselinesConfig
    from harness.specs import RecipeSpec
    from harness.store import ResultsStore
    from submissions.schemas import TaskResult

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Gathered:
    """Per method label and task, a (seeds, examples) matrix (detection: ``MapOutcomes``);
    methods skipped and why."""

    outcomes: dict[str, dict[str, Array | MapOutcomes]]
    skipped: dict[str, str]


@dataclass(frozen=True)
class Row:
    """One task's (or the dataset score's) ranking and its stability."""

    name: str
    ranking: tuple[str, ...]  # best first, ties by label
    scores: Mapping[str, float]
    boot_median: float
    boot_lo: float
    boot_hi: float
    identical: float  # share of resamples ranking the methods exactly as the full test does
    seed_mean: float
    seed_min: float


@dataclass(frozen=True)
class Stability:
    methods: tuple[str, ...]
    rows: tuple[Row, ...]  # tasks, then the dataset score
    resamples: int
    seeds: int


def gather_outcomes(
    *,
    ds: Dataset,
    recipe: RecipeSpec,
    refs: Sequence[Reference],
    fraction: float,
    tasks: Sequence[str],
    baselines: BaselinesConfig,
    selection_seed: int = 0,
    store: ResultsStore | None = None,
    weights_dir: Path | None = None,
) -> Gathered:
    """Evaluate (or read from ``store``) each reference's subset and decode its outcomes of the
    dataset's primary metric on ``tasks``."""
    metric = ds.spec.primary_metric
    digests = {t: uids_digest(ds.uids(ds.spec.task(t).test)) for t in tasks}
    outcomes: dict[str, dict[str, Array | MapOutcomes]] = {}
    skipped: dict[str, str] = {}
    for ref in refs:
        per_task = baselines.method(ref.method).needs_query
        results: dict[str, TaskResult] = {}
        for scope in tasks if per_task else [None]:
            scored = score_reference(ds=ds, recipe=recipe, ref=ref, fraction=fraction,
                                     task=scope, seeds=(selection_seed,), baselines=baselines,
                                     store=store, weights_dir=weights_dir)  # fmt: skip
            results |= {r.task: r for r in scored.result.tasks if r.task in tasks}
        try:
            outcomes[ref.label] = {t: _matrix(results[t], metric, digests[t]) for t in tasks}
        except ValueError as err:
            skipped[ref.label] = str(err)
    return Gathered(outcomes, skipped)


def task_classes(ds: Dataset, tasks: Sequence[str]) -> dict[str, npt.ArrayLike | None]:
    """Each test example's class where the primary metric is a per-class mean (balanced
    accuracy), else None: the ``classes`` of :func:`stability`."""
    if ds.spec.primary_metric not in PER_CLASS:
        return dict.fromkeys(tasks)
    return {t: ds.split(ds.spec.task(t).test)["label"].to_numpy() for t in tasks}


def _matrix(result: TaskResult, metric: str, digest: str) -> Array | MapOutcomes:
    """The seeds' outcomes of ``metric``: (seeds, examples) values whose mean it is, or the
    detection matches mAP is recomputed from on each resample."""
    missing = [s.seed for s in result.seeds if s.outcomes is None]
    if missing:
        raise ValueError(f"{result.task}: seeds {missing} have no per-example outcomes "
                         "(stored before outcomes were kept; --fresh retrains)")  # fmt: skip
    outs = [s.outcomes for s in result.seeds if s.outcomes is not None]
    if any(o.uids_sha256 != digest for o in outs):
        raise ValueError(f"{result.task}: outcomes are not in the test split's UID order")
    if metric in MAP_METRICS:
        return MapOutcomes(tuple(tuple(o.decode_seeds()) for o in outs), metric)
    return primary_matrix(outs, metric)


def stability(
    outcomes: Mapping[str, Mapping[str, Outcomes]],
    *,
    tasks: Sequence[str],
    classes: Mapping[str, npt.ArrayLike | None] | None = None,
    higher_is_better: bool = True,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Stability:
    """The rows of the report from ``outcomes[method][task]`` (seeds, examples) matrices (or
    detection ``MapOutcomes``), every method with the same seeds; ``classes[task]`` (per
    example) makes that task's score the balanced mean over classes. Deterministic: methods
    are taken in sorted order."""
    methods = tuple(sorted(outcomes))
    if len(methods) < 2:
        raise ValueError(f"a ranking needs 2 methods or more, not {len(methods)}")
    stats = [TaskStat(t, None if classes is None else classes.get(t)) for t in tasks]
    missing = [(m, t) for m in methods for t in tasks if outcomes[m].get(t) is None]
    if missing:
        raise ValueError(f"no outcomes for (method, task) {missing}")
    # Test sampling only: the seed-mean outcomes resampled; seeds are compared separately.
    reps = bootstrap(outcomes, tasks=stats, resamples=resamples, seed=seed, seed_variation=False)
    per_seed = [np.stack([seed_scores(outcomes[m][s.name], s) for m in methods], axis=1)
                for s in stats]  # fmt: skip
    if len({p.shape[0] for p in per_seed}) != 1:
        raise ValueError("every method and task needs the same number of seeds")
    rows = [_row(t, methods, reps.task_point[t], reps.task[t], p, higher_is_better)
            for t, p in zip(tasks, per_seed, strict=True)]  # fmt: skip
    seeds = np.mean(per_seed, axis=0)
    rows.append(_row("dataset", methods, reps.score_point, reps.score, seeds, higher_is_better))
    return Stability(methods, tuple(rows), resamples, per_seed[0].shape[0])


def _row(
    name: str, methods: tuple[str, ...], full: Array, boot: Array, seeds: Array, up: bool
) -> Row:
    taus = kendall_tau(full, boot)
    i, j = np.triu_indices(full.size, k=1)
    same = np.all(np.sign(boot[:, i] - boot[:, j]) == np.sign(full[i] - full[j]), axis=1)
    between = seed_taus(seeds)
    between = between[~np.isnan(between)]
    sign = -1.0 if up else 1.0
    order = sorted(range(len(methods)), key=lambda k: (sign * full[k], methods[k]))
    taus = taus[~np.isnan(taus)]
    lo, med, hi = np.percentile(taus, [2.5, 50, 97.5]) if taus.size else (np.nan,) * 3
    return Row(
        name=name,
        ranking=tuple(methods[k] for k in order),
        scores={m: float(v) for m, v in zip(methods, full, strict=True)},
        boot_median=float(med),
        boot_lo=float(lo),
        boot_hi=float(hi),
        identical=float(same.mean()),
        seed_mean=float(np.mean(between)) if between.size else np.nan,
        seed_min=float(np.min(between)) if between.size else np.nan,
    )


GUIDE = (
    "How to read this: Kendall's \u03c4 compares two rankings of the same methods: \u03c4 = 1 is "
    "the same order, 0 no relation, \u22121 the reverse (tau-b: tied scores count as "
    "neither agreeing nor disagreeing). *Bootstrap \u03c4* compares the full-test ranking with "
    "the ranking on each of {resamples:,} resamples of the test examples (drawn with "
    "replacement; seed-mean outcomes): it measures how much the order owes to which test "
    "examples happened to be drawn (test-set sampling noise). *Identical* is the share of "
    "resamples that keep exactly the full-test order. *Seed \u03c4* compares the rankings "
    "of every pair of training seeds on the full test: it measures training noise{seed_note}. "
    "Values near 1 in both say the order of the methods is a property of the methods; a low "
    "median or a low seed \u03c4 says neighbours in the ranking are not reliably ordered."
)


def render_markdown(
    report: Stability, *, title: str, notes: Sequence[str] = (), level: int = 1, guide: bool = True
) -> str:
    """The report as Markdown: the stability table, the full-test rankings and (``guide``)
    the reading guide, under a heading of ``level``."""
    f = _fmt
    lines = [f"{'#' * level} {title}", "", *[f"{n}  " for n in notes], ""]
    lines += ["| ranking on | bootstrap \u03c4 median | 95% range | identical order "
              "| seed \u03c4 mean | seed \u03c4 min | best (full test) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for r in report.rows:
        best = f"{r.ranking[0]} ({r.scores[r.ranking[0]]:.3f})"
        boot = f"{f(r.boot_median)} | [{f(r.boot_lo)}, {f(r.boot_hi)}] | {r.identical:.1%}"
        lines.append(f"| {r.name} | {boot} | {f(r.seed_mean)} | {f(r.seed_min)} | {best} |")
    names = [r.name for r in report.rows]
    lines += ["", "Full-test scores (rank; =k: tied) of each method, by the dataset score:", "",
              "| method | " + " | ".join(names) + " |",
              "| --- |" + " ---: |" * len(names)]  # fmt: skip
    for m in report.rows[-1].ranking:
        cells = [f"{r.scores[m]:.3f} ({_rank(r, m)})" for r in report.rows]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, *(["", reading_guide(report)] if guide else []), ""])


def reading_guide(report: Stability) -> str:
    """One paragraph: what tau = 1 means, what each column measures."""
    seed_note = "" if report.seeds > 1 else " (n/a here: the recipe trains one seed)"
    return GUIDE.format(resamples=report.resamples, seed_note=seed_note)


def _rank(row: Row, method: str) -> str:
    """1 + the methods scoring better; "=k" when tied with the method ranked above."""
    first = next(k for k, m in enumerate(row.ranking) if row.scores[m] == row.scores[method])
    return str(first + 1) if row.ranking[first] == method else f"={first + 1}"


def _fmt(x: float) -> str:
    return "n/a" if np.isnan(x) else f"{x:.3f}"
