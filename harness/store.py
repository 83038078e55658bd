"""The one results store: every score kept once, under the key of what determines it.

    store = ResultsStore(Path("runs"))
    key = ScoreKey(dataset_manifest=ds.manifest_hash(), embedding="5c0e1a...", subset=sha,
                   task="test1", recipe_hash=recipe.config_hash(), seed=0)
    store.get(key)                   # StoredScore or None
    store.put(StoredScore(key=key, ...))
    store.save_subset(sha, uids); store.subset_path(sha)      # subsets by sha256

A score is determined by the prepared dataset (its manifest hash), the embedding set the
recipe reads (its fingerprint; ``-`` for recipes that read none), the subset (sha256 of its
sorted pool rows), the task, the recipe (its config hash: a named variant has its own) and
the training seed. Whoever evaluates (``tdc-harness evaluate``, a sweep, the server's
worker) looks here first and trains only what is missing, so nothing is trained twice.

Layout under the runs directory::

    results/<k[:2]>/<k>.json     one StoredScore per key (written atomically; the truth)
    subsets/<sha256>.npy         canonical subsets (sorted pool UIDs), by sha256
    results.parquet              the flat table of every score, refreshed from the JSON files
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from harness.recipes.registry import get_kind
from submissions.schemas import ExampleOutcomes, Manifest

if TYPE_CHECKING:
    import pandas as pd

    from harness.datasets import Dataset
    from harness.specs import RecipeSpec

log = logging.getLogger(__name__)

NO_EMBEDDING = "-"
NO_IMAGE_CACHE = "-"


class ScoreKey(BaseModel):
    """What determines one score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_manifest: str
    embedding: str = NO_EMBEDDING
    subset: str = Field(description="sha256 of the subset's sorted pool rows")
    task: str
    recipe_hash: str
    seed: int
    # The decoded-image cache the recipe reads (its key), or NO_IMAGE_CACHE for the original
    # files: the two differ by resize error, so a score from one is never reused for the other.
    image_cache: str = NO_IMAGE_CACHE

    @property
    def digest(self) -> str:
        # Without a cache, the digest of the fields before image_cache: scores stored before
        # the cache existed keep their keys.
        values = self.model_dump(
            exclude={"image_cache"} if self.image_cache == NO_IMAGE_CACHE else None
        )
        blob = "|".join(str(v) for v in values.values())
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ScoreKeys:
    """The keys of one evaluation (dataset preparation, embedding set, subset, recipe)."""

    dataset_manifest: str
    embedding: str
    subset: str
    recipe_hash: str
    image_cache: str = NO_IMAGE_CACHE

    @classmethod
    def of(
        cls,
        ds: Dataset,
        recipe: RecipeSpec,
        subset_sha256: str,
        *,
        fingerprint: str | None = None,
        recipe_hash: str | None = None,
    ) -> ScoreKeys:
        """Keys for ``recipe`` on ``ds``; the set's fingerprint and the recipe's hash are
        computed unless given (a planner asks for thousands)."""
        embedding = NO_EMBEDDING
        if get_kind(recipe.kind).uses_embeddings:
            embedding = fingerprint or ds.set_fingerprint() or "unknown"
        return cls(
            ds.manifest_hash(),
            embedding,
            subset_sha256,
            recipe_hash or recipe.config_hash(),
            planned_image_cache(ds, recipe),
        )

    def key(self, task: str, seed: int) -> ScoreKey:
        return ScoreKey(
            dataset_manifest=self.dataset_manifest,
            embedding=self.embedding,
            subset=self.subset,
            task=task,
            recipe_hash=self.recipe_hash,
            seed=seed,
            image_cache=self.image_cache,
        )


def planned_image_cache(ds: Dataset, recipe: RecipeSpec) -> str:
    """The key of the image cache ``recipe`` will read on ``ds`` (as ``recipe_cache`` picks
    it: an existing one, or with ``build`` the one it will build), or NO_IMAGE_CACHE."""
    from harness.datasets.image_cache import CacheKey, cache_size_for, find_image_cache

    params = get_kind(recipe.kind).params.model_validate(recipe.params)
    mode = getattr(params, "image_cache", "off")
    if mode == "off":
        return NO_IMAGE_CACHE
    need = cache_size_for(int(params.image_size))  # type: ignore[attr-defined]
    found = find_image_cache(ds, min_size=need)
    if found is not None:
        return found.key.name
    return CacheKey(need, "raw", ds.manifest_hash()).name if mode == "build" else NO_IMAGE_CACHE


class StoredScore(BaseModel):
    """One training seed's scores on one task: the test split and the task's query split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: ScoreKey
    dataset: str
    recipe: str
    test_size: int
    metrics: dict[str, float]
    per_class: dict[str, float] = Field(default_factory=dict)
    query_size: int | None = None
    query_metrics: dict[str, float] | None = None
    # Every test example's outcome; None in scores stored before outcomes were kept.
    outcomes: ExampleOutcomes | None = None
    manifest: Manifest
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ResultsStore:
    """Score records and subsets under one runs directory (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: ScoreKey) -> Path:
        d = key.digest
        return self.root / "results" / d[:2] / f"{d}.json"

    def has(self, key: ScoreKey) -> bool:
        return self.path(key).is_file()

    def get(self, key: ScoreKey) -> StoredScore | None:
        try:
            return StoredScore.model_validate_json(self.path(key).read_text())
        except FileNotFoundError:
            return None
        except ValueError as err:  # a torn or foreign file: recompute rather than trust it
            log.warning("ignoring unreadable score %s: %s", self.path(key), err)
            return None

    def put(self, score: StoredScore) -> None:
        _write_atomic(self.path(score.key), score.model_dump_json())

    def subset_path(self, sha: str) -> Path:
        return self.root / "subsets" / f"{sha}.npy"

    def save_subset(self, sha: str, uids: npt.NDArray[Any]) -> Path:
        """The subset's sorted UIDs as a plain ``<U`` .npy, once per sha256."""
        path = self.subset_path(sha)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
            np.save(tmp, np.sort(np.asarray(uids, dtype=np.str_)), allow_pickle=False)
            os.replace(tmp, path)
        return path

    def iter_scores(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(digest, raw record) of every stored score."""
        base = self.root / "results"
        if not base.is_dir():
            return
        for shard in sorted(base.iterdir()):
            for path in sorted(shard.glob("*.json")):
                yield path.stem, json.loads(path.read_text())

    def table(self) -> pd.DataFrame:
        """Every score as one row (key fields, test and query metrics); cached in parquet.

        The parquet file is refreshed from the JSON records it lacks, so a store of 10,000
        scores is read from JSON once and from one file after that.
        """
        import pandas as pd

        cache = self.root / "results.parquet"
        old = pd.read_parquet(cache) if cache.is_file() else pd.DataFrame({"digest": []})
        known = set(old["digest"])
        fresh = [flatten(d, rec) for d, rec in self.iter_scores() if d not in known]
        if not fresh:
            return old
        table = pd.concat([old, pd.DataFrame(fresh)], ignore_index=True) if len(old) else \
            pd.DataFrame(fresh)  # fmt: skip
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, cache)
        return table


def flatten(digest: str, rec: dict[str, Any]) -> dict[str, Any]:
    """A record as one table row: key fields, ``test.<metric>`` and ``query.<metric>``."""
    row = {"digest": digest, **rec["key"], "dataset": rec["dataset"], "recipe": rec["recipe"],
           "test_size": rec["test_size"], "query_size": rec.get("query_size")}  # fmt: skip
    row |= {f"test.{k}": v for k, v in rec["metrics"].items()}
    row |= {f"query.{k}": v for k, v in (rec.get("query_metrics") or {}).items()}
    return row
