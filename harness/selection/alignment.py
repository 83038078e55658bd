"""Alignment to the query set: ``image_alignment``, ``text_alignment``.

Score every pool row by its cosine similarity to the query embeddings and keep the top
``budget`` rows (ties to the lower row id). ``aggregate="mean"`` (default, the research's
summed/mean similarity) is one matrix-vector product per chunk of the pool;
``aggregate="max"`` scores by the nearest query point (a FAISS search), which favours
covering every mode of a multi-modal query set.

    out = selector("image_alignment")(ctx, 430, rng=rng)
    out = selector("text_alignment")(ctx, 430, rng=rng, captions="label")
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from harness.selection import faiss_ops
from harness.selection.context import TEXT_KIND, Captions, SelectionContext
from harness.selection.registry import SELECTORS, SelectionOutput, output

Aggregate = Literal["mean", "max"]
_SCORERS = {"mean": faiss_ops.mean_cosine, "max": faiss_ops.max_cosine}


def _align(ctx: SelectionContext, kind: str, budget: int, aggregate: Aggregate) -> SelectionOutput:
    x, q = ctx.features(kind)
    scores = _SCORERS[aggregate](x, q, progress=ctx.progress)
    rows = faiss_ops.top_k(scores, budget)
    cut = float(scores[rows].min()) if len(rows) else float("nan")
    return output(rows, aggregate=aggregate, min_score=cut)


@SELECTORS.register("image_alignment")
def image_alignment(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    aggregate: Aggregate = "mean",
) -> SelectionOutput:
    """The ``budget`` pool images most similar to the query images."""
    del rng
    return _align(ctx, "image", budget, aggregate)


@SELECTORS.register("text_alignment")
def text_alignment(
    ctx: SelectionContext,
    budget: int,
    *,
    rng: np.random.Generator,
    aggregate: Aggregate = "mean",
    captions: Captions = "nolabel",
) -> SelectionOutput:
    """The ``budget`` pool captions most similar to the query captions."""
    del rng
    return _align(ctx, TEXT_KIND[captions], budget, aggregate).with_metadata(captions=captions)
