"""The comparisons of ``research_parity``: ours against the research re-implementations.

    p = Parity(ds, recipe, fraction=0.1)
    for case in CASES:
        outcome = case.compare(p, "test1")     # subsets, Jaccard, ok, note, chance level
    jaccard(a, b)

One :class:`Case` per (method, variant); see ``research_parity``'s docstring for what each
comparison measures and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from benchmarks import research_style as rs

if TYPE_CHECKING:
    from harness.datasets import Dataset
    from harness.selection.context import SelectionContext
    from harness.selection.registry import SelectionOutput
    from harness.specs import RecipeSpec

Rows = npt.NDArray[np.int64]
P_TOLERANCE = 1e-6  # the bar for TSDS probabilities
JACCARD_BAR = 0.9  # the bar for the research-deterministic methods
# Random methods: ours with selection seeds 0..DRAWS-1, the research's draws with other seeds
# (one seed on both sides correlates the draws: numpy generators share the bit stream), and
# Jaccard and accuracy averaged over the draws (one draw's accuracy varies by +-0.07).
DRAWS = 5
RESEARCH_SEED = 1000
CHANCE_SEED = 2000


def jaccard(a: Rows, b: Rows) -> float:
    sa, sb = set(np.asarray(a).tolist()), set(np.asarray(b).tolist())
    return len(sa & sb) / max(1, len(sa | sb))


def expected_jaccard(sizes_a: Rows, sizes_b: Rows, groups: Rows) -> float:
    """Jaccard expected of two independent uniform draws of ``sizes_a`` and ``sizes_b``
    distinct rows from groups of ``groups`` rows (one group: random_filter)."""
    meet = float(np.sum(sizes_a * sizes_b / groups))
    return meet / (float(sizes_a.sum() + sizes_b.sum()) - meet)


@dataclass(frozen=True)
class Outcome:
    """One task's comparison: the two subsets, their Jaccard, whether it is faithful."""

    ours: tuple[Rows, ...]  # one subset, or one per selection seed (random methods)
    research: tuple[Rows, ...]  # distinct rows, at equal budget where the research ranks
    jaccard: float  # mean over the draws
    ok: bool
    note: str
    chance: float | None = None

    def jaccard_cell(self) -> str:
        return f"{self.jaccard:.2f}" + (f" (c{self.chance:.2f})" if self.chance is not None else "")


@dataclass
class Parity:
    """The demo dataset and what every comparison needs, loaded once."""

    ds: Dataset
    recipe: RecipeSpec
    fraction: float
    _ours: dict[tuple[Any, ...], SelectionOutput] = field(default_factory=dict)
    _accuracy: dict[tuple[str, str], float] = field(default_factory=dict)
    research_cache: dict[tuple[Any, ...], Rows] = field(default_factory=dict)
    _contexts: dict[str | None, SelectionContext] = field(default_factory=dict)

    @cached_property
    def budget(self) -> int:
        return self.ds.spec.budget(self.fraction, pool_size=self.ds.pool_size)

    def context(self, task: str | None) -> SelectionContext:
        """What a selector sees for ``task`` (labels from the split, the rest embeddings)."""
        from harness.selection.context import SelectionContext

        if task not in self._contexts:
            self._contexts[task] = SelectionContext.from_dataset(self.ds, task=task)
        return self._contexts[task]

    def pool(self, kind: str) -> npt.NDArray[Any]:
        return np.asarray(self.context(None).pool(kind))

    def query(self, task: str, kind: str) -> npt.NDArray[Any]:
        return np.asarray(self.context(task).query(kind))

    def ours(self, method: str, task: str, seed: int = 0, **params: Any) -> SelectionOutput:
        from harness.selection.api import select

        key = (method, task, seed, tuple(sorted(params.items())))
        if key not in self._ours:
            self._ours[key] = select(
                ds=self.ds,
                method=method,
                fraction=self.fraction,
                task=task,
                seed=seed,
                params=params,
            )
        return self._ours[key]

    def accuracy(self, rows: Rows, task: str) -> float:
        """Test accuracy of the default recipe trained on the distinct ``rows``."""
        from harness.runner import evaluate_subset
        from harness.validation import subset_sha256

        rows = np.unique(rows)
        sha = subset_sha256(rows)
        if (sha, task) not in self._accuracy:
            result = evaluate_subset(
                ds=self.ds,
                recipe=self.recipe,
                pool_rows=rows,
                subset_sha256=sha,
                fraction=self.fraction,
                task=task,
            )
            self._accuracy[sha, task] = float(result.tasks[0].mean["accuracy"])
        return self._accuracy[sha, task]

    def mean_accuracy(self, subsets: tuple[Rows, ...], task: str) -> float:
        return float(np.mean([self.accuracy(rows, task) for rows in subsets]))


Compare = Callable[[Parity, str], Outcome]


@dataclass(frozen=True)
class Case:
    method: str
    variant: str
    compare: Compare
    faithful: str  # the verdict when every task's outcome is ok
    cause: str  # why they differ when one is not


# --- ranked methods: the research's threshold ranking cut at our budget ------------------


def ranked(p: Parity, ours: Rows, research_full: Rows, research_cut: Rows) -> Outcome:
    j = jaccard(ours, research_cut)
    note = f"research keeps {len(research_full)} (>= threshold), cut at {p.budget}"
    return Outcome((ours,), (research_cut,), j, j >= JACCARD_BAR, note)


def clip_score(captions: str) -> Compare:
    def compare(p: Parity, task: str) -> Outcome:
        scores = p.pool("clip_score")  # the research's captions name the class
        full = rs.clip_score(scores, p.fraction)
        cut = rs.clip_score(scores, p.fraction, budget=p.budget)
        return ranked(p, p.ours("clip_score", task, captions=captions).rows, full, cut)

    return compare


def align(method: str, params: dict[str, Any] | None = None) -> Compare:
    """image_alignment or text_alignment with our ``params``; the research's on ``image`` or
    ``text`` (its captions name the class)."""
    research = rs.image_alignment if method == "image_alignment" else rs.text_alignment
    kind = "image" if method == "image_alignment" else "text"

    def compare(p: Parity, task: str) -> Outcome:
        x, q = p.pool(kind), p.query(task, kind)
        full = research(x, q, p.fraction)
        cut = research(x, q, p.fraction, budget=p.budget)
        return ranked(p, p.ours(method, task, **(params or {})).rows, full, cut)

    return compare


# --- budget-free methods: the research's whole set -------------------------------------------


def whole_set(p: Parity, out: SelectionOutput, research: Rows) -> Outcome:
    inside = np.isin(out.rows, research).mean() if len(out.rows) else 1.0
    j = jaccard(out.rows, research)
    note = (
        f"research keeps {len(research)} (no budget); ours {len(out.rows)} "
        f"(natural {out.metadata['natural_size']}), {inside:.0%} of ours in the research set"
    )
    return Outcome((out.rows,), (research,), j, j >= JACCARD_BAR, note)


def cluster(method: str, aligned: bool, params: dict[str, Any] | None = None) -> Compare:
    """A cluster method with our ``params`` against the research's; ``aligned``: its k-means
    with our k and seed (otherwise its own k=1000, seed 0). The research's image_clip is its
    image_based (it ignores the CLIP cut, see research_style), so both share one k-means."""
    research = rs.text_based if method == "text_based" else rs.image_based
    kind = "text" if method == "text_based" else "image"

    def compare(p: Parity, task: str) -> Outcome:
        out = p.ours(method, task, **(params or {}))
        k, seed = (
            (out.metadata["n_clusters"], out.metadata["kmeans_seed"]) if aligned else (1000, 0)
        )
        key = (kind, task, k, seed)  # one k-means per key (~1 s at k=1000)
        if key not in p.research_cache:
            x, q = p.pool(kind), p.query(task, kind)
            p.research_cache[key] = research(x, q, k=k, seed=seed)
        return whole_set(p, out, p.research_cache[key])

    return compare


def image_clip_2024(p: Parity, task: str) -> Outcome:
    x, q = p.pool("image"), p.query(task, "image")
    research = rs.image_clip_2024(x, q, p.pool("clip_score"), p.fraction)
    out = p.ours("image_clip", task, captions="label", clip_keep=p.fraction)
    return whole_set(p, out, research)


def match_label(p: Parity, task: str) -> Outcome:
    out = p.ours("match_label", task)
    research = rs.match_label(p.pool("label"), p.query(task, "label"))
    inside = bool(np.isin(out.rows, research).all())
    outcome = whole_set(p, out, research)
    full = len(out.rows) == min(p.budget, len(research))
    return Outcome(outcome.ours, outcome.research, outcome.jaccard, inside and full, outcome.note)


# --- random methods: Jaccard beside its chance level ---------------------------------------


def random_filter(p: Parity, task: str) -> Outcome:
    ours = tuple(p.ours("random_filter", task, seed=s).rows for s in range(DRAWS))
    research = rs.random_filter(p.ds.pool_size, p.fraction)  # random_state=42: one subset
    n = np.array([p.ds.pool_size])
    chance = expected_jaccard(np.array([len(ours[0])]), np.array([len(research)]), n)
    same_size = all(len(o) == len(research) for o in ours)
    note = f"research: DataFrame.sample(frac, random_state=42), {len(research)} rows"
    j = float(np.mean([jaccard(o, research) for o in ours]))
    return Outcome(ours, (research,), j, same_size, note, chance)


def class_counts(y: npt.NDArray[Any], rows: Rows, classes: npt.NDArray[Any]) -> Rows:
    return np.array([np.count_nonzero(y[rows] == c) for c in classes], dtype=np.int64)


def match_dist(p: Parity, task: str) -> Outcome:
    y, yq = p.pool("label"), p.query(task, "label")
    ours = tuple(p.ours("match_dist", task, seed=s).rows for s in range(DRAWS))
    seeds = range(RESEARCH_SEED, RESEARCH_SEED + DRAWS)
    draws = [rs.match_dist(y, yq, p.fraction, rng=np.random.default_rng(s)) for s in seeds]
    research = tuple(rs.distinct(d) for d in draws)
    classes = np.unique(y[draws[0]])
    drawn, ours_counts = class_counts(y, draws[0], classes), class_counts(y, ours[0], classes)
    sizes = class_counts(y, np.arange(len(y)), classes)
    chance = expected_jaccard(ours_counts, class_counts(y, research[0], classes), sizes)
    same = all(np.array_equal(class_counts(y, o, classes), drawn) for o in ours)
    note = (
        f"per-class draws ours {ours_counts.tolist()} vs research {drawn.tolist()} "
        f"(with replacement: {np.mean([len(r) for r in research]):.0f} distinct of {len(draws[0])})"
    )
    j = float(np.mean([jaccard(o, r) for o, r in zip(ours, research, strict=True)]))
    return Outcome(ours, research, j, same and len(ours[0]) == len(draws[0]), note, chance)


def our_tsds_probabilities(p: Parity, task: str) -> npt.NDArray[np.float64]:
    """Our TSDS probabilities with the YAML's parameters on the exact path."""
    from harness.selection import load_baselines
    from harness.selection.tsds import probabilities_for
    from harness.settings import HarnessSettings

    params = load_baselines(HarnessSettings().configs_dir).method("tsds").resolved_params()
    x, q = p.context(task).features("image")
    exact = {"exact_limit": max(int(params["exact_limit"]), p.ds.pool_size)}
    return probabilities_for(x, q, params | exact, ctx=p.context(task))[0]


def draws(p: npt.NDArray[np.float64], budget: int, first_seed: int) -> tuple[Rows, ...]:
    """The research's with-replacement draw of ``budget`` rows, DRAWS times (distinct rows)."""
    seeds = range(first_seed, first_seed + DRAWS)
    return tuple(rs.distinct(rs.tsds_draw(p, budget, rng=np.random.default_rng(s))) for s in seeds)


def tsds(ivf: bool) -> Compare:
    """TSDS: probabilities ours vs the research's (exact searches, or its IVF ones)."""

    def compare(p: Parity, task: str) -> Outcome:
        x, q = p.pool("image"), p.query(task, "image")
        p_research = rs.research_tsds(x, q) if ivf else rs.tsds_probabilities(x, q)
        p_ours = our_tsds_probabilities(p, task)
        ours = tuple(p.ours("tsds", task, seed=s).rows for s in range(DRAWS))
        research = draws(p_research, p.budget, RESEARCH_SEED)
        same_p = draws(p_ours, p.budget, CHANCE_SEED)  # the research's draw, from our p
        chance = float(np.mean([jaccard(o, r) for o, r in zip(ours, same_p, strict=True)]))
        j = float(np.mean([jaccard(o, r) for o, r in zip(ours, research, strict=True)]))
        gap = np.abs(p_ours - p_research)
        note = (
            f"max|dp| {gap.max():.1e}, L1 {gap.sum():.1e}; support ours "
            f"{np.count_nonzero(p_ours)} / research {np.count_nonzero(p_research)}; research "
            f"draws {np.mean([len(r) for r in research]):.0f} distinct of {p.budget} "
            "(its config: 100)"
        )
        return Outcome(ours, research, j, bool(gap.max() <= P_TOLERANCE), note, chance)

    return compare


# verdicts, causes and parameters, named so that each case fits a line
OK, SAME, SCORES, KM = "faithful", "faithful (same k-means)", "scores differ", "k-means differ"
NOLABEL = "label-free captions (research: captions name the class)"
CAPPED = "k=1000 capped at pool//39 and another seed"
BOTH = f"{NOLABEL}; {CAPPED}"
IVF = "research's IVF searches (nlist sqrt(n)/2, nprobe 10) are approximate"
TSDS_OK = "faithful (p within 1e-6)"
LABEL = {"captions": "label"}

CASES = (
    Case("random_filter", "default", random_filter, "faithful (uniform draws)", "sizes differ"),
    Case("clip_score", "default (nolabel)", clip_score("nolabel"), OK, NOLABEL),
    Case("clip_score", "captions=label", clip_score("label"), OK, SCORES),
    Case("image_alignment", "default", align("image_alignment"), OK, SCORES),
    Case("text_alignment", "default (nolabel)", align("text_alignment"), OK, NOLABEL),
    Case("text_alignment", "captions=label", align("text_alignment", LABEL), OK, SCORES),
    Case("image_based", "default vs k=1000,seed 0", cluster("image_based", False), OK, CAPPED),
    Case("image_based", "default vs our k,seed", cluster("image_based", True), SAME, KM),
    Case("text_based", "nolabel vs k=1000,seed 0", cluster("text_based", False), OK, BOTH),
    Case("text_based", "label vs k=1000,seed 0", cluster("text_based", False, LABEL), OK, CAPPED),
    Case("text_based", "label vs our k,seed", cluster("text_based", True, LABEL), SAME, KM),
    Case("image_clip", "default vs k=1000,seed 0", cluster("image_clip", False), OK, CAPPED),
    Case(
        "image_clip",
        "default vs our k,seed",
        cluster("image_clip", True),
        SAME,
        "our CLIP cut binds; the research has none",
    ),
    Case(
        "image_clip",
        "label,clip_keep=f vs 2024",
        image_clip_2024,
        OK,
        "the 2024 research pairs CLIP-kept uids with other rows' clusters",
    ),
    Case(
        "match_label",
        "default",
        match_label,
        "faithful (sample of research set)",
        "rows outside the research set",
    ),
    Case(
        "match_dist", "default", match_dist, "faithful (same class counts)", "class counts differ"
    ),
    Case("tsds", "default vs exact", tsds(ivf=False), TSDS_OK, "probabilities differ"),
    Case("tsds", "default vs research IVF", tsds(ivf=True), TSDS_OK, IVF),
)
