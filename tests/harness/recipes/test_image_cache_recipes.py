"""Recipes read the decoded-image cache: same batches up to resize error, manifest records it.

The tiny datasets' images (16 px) are smaller than the cache size of a 16-px recipe (19 px), so
their cache holds the same pixels: a recipe trained from it gives exactly the scores it gets
from the files. The agreement test uses larger JPEGs, where the cache is really shrunk.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from harness.datasets import Dataset
from harness.datasets.image_cache import build_image_cache, cache_size_for, find_image_cache
from harness.recipes.images import ImageFiles, image_transforms, make_loader, recipe_cache
from harness.runner import evaluate_subset
from harness.specs import RecipeSpec
from harness.validation import subset_sha256
from submissions.schemas import EvalResult

Recipes = Callable[[str], RecipeSpec]
ROWS = np.r_[0:270:5, 270:300:2]
SIZE = 64  # recipe input size of the agreement test
# Largest per-batch mean |difference| of normalised tensors (std 0.5: 1.0 = half the range)
# between a batch from the cache and from the originals: resize error only.
TOLERANCE = 0.03


def copy_dataset(ds: Dataset, root: Path) -> Dataset:
    shutil.copytree(ds.dir.root, root / ds.spec.path)
    return Dataset.open(ds.spec, data_root=root)


def run(ds: Dataset, recipe: RecipeSpec, rows: np.ndarray = ROWS) -> EvalResult:
    return evaluate_subset(
        ds=ds, recipe=recipe, pool_rows=rows, subset_sha256=subset_sha256(np.sort(rows)),
        fraction=0.25, task=None,
    )  # fmt: skip


def scores(result: EvalResult) -> list[Any]:
    return [json.loads(t.model_dump_json()) for t in result.tasks]


def with_params(recipe: RecipeSpec, **params: Any) -> RecipeSpec:
    return recipe.model_copy(update={"params": {**recipe.params, **params}})


def smooth_jpeg(path: Path, seed: int, w: int = 384, h: int = 216) -> None:
    """A camera-like image: gradients and a few blobs (no pixel noise), as JPEG bytes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    chans = []
    for _ in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        v = 0.5 + 0.3 * np.sin(3 * a * xx + 4 * b * yy + c)
        for _ in range(3):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.6), rng.uniform(0.05, 0.2)
            v += 0.2 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r**2)
        chans.append(np.clip(v, 0, 1))
    img = Image.fromarray((np.stack(chans, -1) * 255).astype(np.uint8))
    img.save(path, format="JPEG", quality=92)  # the name may say .png: PIL reads the content


@pytest.fixture
def big_images(tiny_dataset: Dataset, tmp_path: Path) -> Dataset:
    """The tiny dataset with its first 16 pool images replaced by 384x216 JPEGs."""
    ds = copy_dataset(tiny_dataset, tmp_path)
    for i, name in enumerate(ds.split("train")["filename"].iloc[:16]):
        smooth_jpeg(ds.image_root / name, i)
    return ds


@pytest.mark.parametrize("train", [True, False])
def test_first_batches_from_cache_and_originals_agree(big_images: Dataset, train: bool) -> None:
    ds = big_images
    cache = build_image_cache(ds=ds, size=cache_size_for(SIZE), workers=0)
    paths = [ds.image_root / f for f in ds.split("train")["filename"].iloc[:16]]
    tf = image_transforms(size=SIZE, mean=[0.5] * 3, std=[0.5] * 3, train=train,
                          augment="crop_flip")  # fmt: skip
    batches = []
    for c in (None, cache):
        data = ImageFiles(paths=paths, targets=np.arange(16), transform=tf, cache=c)
        torch.manual_seed(7)  # no workers: the transforms draw from the global generator
        loader = make_loader(data, batch_size=8, shuffle=True, seed=3, num_workers=0)
        batches.append([(x, t) for x, t in loader])
    for (xa, ta), (xb, tb) in zip(*batches, strict=True):
        assert torch.equal(ta, tb) and xa.shape == xb.shape == (8, 3, SIZE, SIZE)
        per_image = (xa - xb).abs().mean(dim=(1, 2, 3))
        assert per_image.max() < TOLERANCE, per_image  # same crops and flips
    # A different crop of the same image differs by far more than the tolerance.
    xa = batches[0][0][0]
    assert (xa[0] - xa[1]).abs().mean() > 5 * TOLERANCE


@pytest.mark.parametrize(
    "name", ["full_finetune_resnet50", "lora_finetune_vit", "regression_resnet50"]
)
def test_image_recipes_give_the_same_scores_with_and_without_the_cache(
    name: str, tiny_dataset: Dataset, regression_dataset: Dataset, tiny_recipe: Recipes,
    tmp_path: Path,
) -> None:  # fmt: skip
    source = regression_dataset if name.startswith("regression") else tiny_dataset
    ds = copy_dataset(source, tmp_path)
    recipe = tiny_recipe(name)
    without = run(ds, recipe)
    assert without.manifest.image_cache is None
    built = run(copy_dataset(source, tmp_path / "b"), with_params(recipe, image_cache="build"))
    cached = run(ds, recipe)  # auto: none here yet
    assert cached.manifest.image_cache is None
    cache = build_image_cache(ds=ds, size=cache_size_for(16), workers=0)
    ds = Dataset.open(ds.spec, data_root=tmp_path)
    cached = run(ds, recipe)
    assert cached.manifest.image_cache == cache.name == built.manifest.image_cache
    assert scores(cached) == scores(without) == scores(built)
    off = run(Dataset.open(ds.spec, data_root=tmp_path), with_params(recipe, image_cache="off"))
    assert off.manifest.image_cache is None and scores(off) == scores(without)


def test_fixmatch_reads_labeled_and_unlabeled_images_from_the_cache(
    tiny_dataset: Dataset, shipped_recipes: dict[str, RecipeSpec], tmp_path: Path
) -> None:
    ds = copy_dataset(tiny_dataset, tmp_path)
    recipe = with_params(shipped_recipes["fixmatch_demo"], epochs=2, image_size=16)
    without = run(ds, recipe)
    cache = build_image_cache(ds=ds, size=cache_size_for(16), workers=0)
    cached = run(Dataset.open(ds.spec, data_root=tmp_path), recipe)
    assert without.manifest.image_cache is None and cached.manifest.image_cache == cache.name
    assert scores(cached) == scores(without)


@pytest.mark.slow
def test_reid_reads_the_cache(
    demo_reid_dataset: Dataset, shipped_recipes: dict[str, RecipeSpec], tmp_path: Path
) -> None:
    ds = copy_dataset(demo_reid_dataset, tmp_path)
    recipe = shipped_recipes[ds.spec.default_recipe]
    recipe = with_params(recipe, epochs=1).model_copy(update={"seeds": (0,)})
    rows = np.sort(np.random.default_rng(0).choice(ds.pool_size, 64, replace=False))
    size = cache_size_for(recipe.params["image_size"])
    without = run(ds, recipe, rows)
    cache = build_image_cache(ds=ds, size=size, workers=0)
    ds = Dataset.open(ds.spec, data_root=tmp_path)
    cached = run(ds, recipe, rows)
    assert without.manifest.image_cache is None and cached.manifest.image_cache == cache.name
    side = min(Image.open(ds.image_root / ds.split(ds.spec.pool)["filename"].iloc[0]).size)
    if side <= size:  # the demo's images are small: the cache holds them unchanged
        assert scores(cached) == scores(without)


def test_recipe_cache_modes(tiny_dataset: Dataset, tmp_path: Path) -> None:
    ds = copy_dataset(tiny_dataset, tmp_path)
    assert recipe_cache(ds, image_size=16, mode="auto") is None and ds.image_cache_used is None
    built = recipe_cache(ds, image_size=16, mode="build")
    assert built is not None and built == find_image_cache(ds, min_size=19)
    assert ds.image_cache_used == built.name
    assert recipe_cache(ds, image_size=32, mode="auto") is None  # 19 px < 37 px needed
    assert recipe_cache(ds, image_size=16, mode="off") is None


def test_a_score_from_the_cache_is_never_reused_without_it(
    tiny_dataset: Dataset, tiny_recipe: Recipes, tmp_path: Path
) -> None:
    """The results store keys a score by the image cache it was trained from (the two differ
    by resize error); keys without a cache are those of scores stored before caches existed."""
    from harness.store import NO_IMAGE_CACHE, ResultsStore, ScoreKey, ScoreKeys

    ds = copy_dataset(tiny_dataset, tmp_path)
    recipe = tiny_recipe("full_finetune_resnet50")
    sha = subset_sha256(np.sort(ROWS))
    before = ScoreKeys.of(ds, recipe, sha)
    assert before.image_cache == NO_IMAGE_CACHE
    old = ScoreKey(**{k: v for k, v in before.key("test1", 0).model_dump().items()
                      if k != "image_cache"})  # fmt: skip
    assert old.digest == before.key("test1", 0).digest  # earlier stores keep their keys
    build = ScoreKeys.of(ds, with_params(recipe, image_cache="build"), sha)
    cache = build_image_cache(ds=ds, size=cache_size_for(16), workers=0)
    ds = Dataset.open(ds.spec, data_root=tmp_path)
    after = ScoreKeys.of(ds, recipe, sha)
    assert after.image_cache == cache.name == build.image_cache  # "build" names it ahead
    assert after.key("test1", 0).digest != before.key("test1", 0).digest
    store = ResultsStore(tmp_path / "results")
    result = evaluate_subset(ds=ds, recipe=recipe, pool_rows=ROWS, subset_sha256=sha,
                             fraction=0.25, task=None, store=store)  # fmt: skip
    assert result.manifest.image_cache == cache.name
    assert store.has(after.key("test1", 0)) and not store.has(before.key("test1", 0))
