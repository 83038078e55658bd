"""Task-agnostic baselines: ``no_filter``, ``random_filter``, ``clip_score``.

out = selector("clip_score")(ctx, 430, rng=rng, captions="nolabel")
out.rows, out.metadata["natural_size"]
"""

from __future__ import annotations

import numpy as np

from harness.selection.context import CLIP_SCORE_KIND, Captions, SelectionContext
from harness.selection.faiss_ops import top_k
from harness.selection.registry import SELECTORS, SelectionOutput, output


@SELECTORS.register("no_filter")
def no_filter(ctx: SelectionContext, budget: int, *, rng: np.random.Generator) -> SelectionOutput:
    """The whole pool; under a smaller budget, an evenly spaced systematic sample of rows.

    Systematic sampling (every n/budget-th row in pool order) needs no seed and keeps the
    pool's composition, so "all the data" stays a fixed, seed-independent reference row.
    """
    del rng
    n = ctx.pool_size
    if budget >= n:
        return output(np.arange(n), note="whole pool")
    rows = (np.arange(budget, dtype=np.int64) * n) // budget
    return output(rows, natural_size=n, note="whole pool over budget: every (n/budget)-th row")


@SELECTORS.register("random_filter")
def random_filter(
    ctx: SelectionContext, budget: int, *, rng: np.random.Generator
) -> SelectionOutput:
    """A uniform sample of ``budget`` pool rows without replacement."""
    n = ctx.pool_size
    rows = rng.choice(n, size=min(budget, n), replace=False)
    return output(rows, natural_size=min(budget, n))


@SELECTORS.register("clip_score")
def clip_score(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    captions: Captions = "nolabel",
) -> SelectionOutput:
    """The ``budget`` pool rows with the highest image-caption similarity (CLIP score).

    ``captions="nolabel"`` (default) scores against label-free captions, so the filter never
    sees labels; ``"label"`` uses the captions that name the class.
    """
    del rng
    scores = np.asarray(ctx.pool(CLIP_SCORE_KIND[captions]), dtype=np.float32)
    return output(top_k(scores, budget), captions=captions)
