"""Image loading for training: our decoded-image cache vs the research-style loop, on the CPU.

    .venv/bin/python -m benchmarks.loader [--images 300] [--epoch-images 2000] [--size 224]

Makes synthetic 1920x1080 camera-trap-like JPEGs (smooth scenes plus sensor noise, quality
90, ~0.3-0.5 MB each, as iWildCam's) in a temporary dataset, then prints side by side:

1. images/s on one core through the full training transform at ``--size`` px (random resized
   crop + flip + to tensor + normalise): the research-style loop (PIL open, full decode,
   crop and resize every epoch) vs ours from the cache, for both cache codecs (raw uint8
   pixels, re-encoded JPEG), with the ratio (target >= 10x); plus each cache's build time and
   size per 1,000 images;
2. one epoch of the tiny CPU finetune recipe (``full_finetune_resnet50``'s kind, code path and
   held-out split with a tiny timm model) over ``--epoch-images`` such images, end to end,
   with and without the cache (target >= 3x);
3. the loader's resident memory after each of three epochs from the cache (must stay flat).

Wall-clock figures on a shared machine also measure the neighbours: run it alone if you can.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DISTINCT = 24  # distinct synthetic scenes; the rest are byte copies under other names


def scene(seed: int, w: int = 1920, h: int = 1080) -> Any:
    """A smooth outdoor-like scene with per-pixel noise, so JPEG sizes are realistic."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / w
    chans = []
    for _ in range(3):
        a, b, c = rng.uniform(-3, 3, 3)
        v = 0.45 + 0.25 * np.sin(a * xx + b * yy + c)
        for _ in range(4):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.56), rng.uniform(0.02, 0.1)
            v += 0.3 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r**2)
        chans.append(v)
    arr = np.stack(chans, -1) * 255 + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_dataset(root: Path, n: int, *, w: int = 1920, h: int = 1080) -> Any:
    """A prepared classification dataset: ``n`` pool images (``w`` x ``h`` JPEGs), 20 query
    and 100 test images."""
    import io

    import pandas as pd

    from harness.datasets import Dataset, DatasetDir
    from harness.datasets.writer import write_splits
    from harness.specs import DatasetSpec, TaskSpec

    images = root / "bench" / "images"
    images.mkdir(parents=True)
    blobs = []
    for s in range(DISTINCT):
        buf = io.BytesIO()
        scene(s, w, h).save(buf, format="JPEG", quality=90)
        blobs.append(buf.getvalue())

    def rows(prefix: str, count: int) -> pd.DataFrame:
        uids = [f"{prefix}{i:06d}" for i in range(count)]
        for i, u in enumerate(uids):
            (images / f"{u}.jpg").write_bytes(blobs[i % DISTINCT])
        labels = np.arange(count) % 4
        return pd.DataFrame({"uid": uids, "label": labels, "filename": [f"{u}.jpg" for u in uids]})

    spec = DatasetSpec(
        name="bench", task_type="classification", version="1", description="loader benchmark",
        path="bench", tasks=(TaskSpec(name="test1", query="val1", test="test1"),),
        fractions=(1.0,), default_recipe="full_finetune_resnet50", primary_metric="accuracy",
    )  # fmt: skip
    splits = {"train": rows("p", n), "val1": rows("q", 20), "test1": rows("t", 100)}
    write_splits(DatasetDir(root / "bench"), splits, dataset_version="1")
    return Dataset.open(spec, data_root=root)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rate(fn: Callable[[int], Any], n: int) -> float:
    """Images per second of ``fn(i)`` over ``i < n`` (one process, one thread)."""
    fn(0)
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def throughput(ds: Any, n: int, size: int) -> dict[str, Any]:
    import torch
    from PIL import Image
    from torchvision import transforms as T

    from harness.datasets.image_cache import build_image_cache, cache_size_for
    from harness.recipes.images import ImageFiles, image_transforms

    torch.set_num_threads(1)
    mean = std = [0.5, 0.5, 0.5]
    paths = [ds.image_root / f for f in ds.split("train")["filename"].iloc[:n]]
    research = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(mean, std)])  # fmt: skip

    def research_item(i: int) -> Any:  # the research loop: open, decode, crop, resize
        return research(Image.open(paths[i]).convert("RGB"))

    out: dict[str, Any] = {"research-style (PIL every epoch)": rate(research_item, n)}
    tf = image_transforms(size=size, mean=mean, std=std, train=True, augment="crop_flip")
    for codec in ("raw", "jpeg"):
        start = time.perf_counter()
        cache = build_image_cache(ds=ds, size=cache_size_for(size), codec=codec, force=True)
        build = time.perf_counter() - start
        meta = __import__("json").loads((cache.root / "manifest.json").read_text())
        files = ImageFiles(paths=paths, targets=np.zeros(n), transform=tf, cache=cache)
        out[f"ours, cache {codec}"] = rate(files.__getitem__, n)
        per_k = 1000 / meta["count"]
        out[f"build {codec}"] = (build * per_k, meta["bytes"] * per_k / 1e6)
    return out


def epoch_seconds(ds: Any, *, cache: bool, image_size: int) -> float:
    """Wall time of one training epoch of the tiny finetune recipe (plus its evaluation)."""
    from harness.runner import evaluate_subset
    from harness.settings import default_configs_dir
    from harness.specs import load_benchmark
    from harness.validation import subset_sha256

    recipe = load_benchmark(default_configs_dir()).recipes["full_finetune_resnet50"]
    params = {**recipe.params, "backbone": "test_resnet", "weights": None, "epochs": 1,
              "image_size": image_size, "num_workers": 0, "batch_size": 64,
              "image_cache": "auto" if cache else "off"}  # fmt: skip
    recipe = recipe.model_copy(update={"params": params, "seeds": (0,)})
    rows = np.arange(ds.pool_size)
    start = time.perf_counter()
    result = evaluate_subset(ds=ds, recipe=recipe, pool_rows=rows, fraction=1.0, task=None,
                             subset_sha256=subset_sha256(rows))  # fmt: skip
    assert (result.manifest.image_cache is not None) == cache
    return time.perf_counter() - start


def rss_over_epochs(ds: Any, size: int, epochs: int = 3) -> list[float]:
    from harness.datasets.image_cache import cache_size_for, find_image_cache
    from harness.recipes.images import ImageFiles, image_transforms, make_loader

    cache = find_image_cache(ds, min_size=cache_size_for(size))
    tf = image_transforms(size=size, mean=[0.5] * 3, std=[0.5] * 3, train=True,
                          augment="crop_flip")  # fmt: skip
    paths = [ds.image_root / f for f in ds.split("train")["filename"]]
    data = ImageFiles(paths=paths, targets=np.zeros(len(paths)), transform=tf, cache=cache)
    loader = make_loader(data, batch_size=64, shuffle=True, seed=0, num_workers=0)
    out = []
    for _ in range(epochs):
        for _batch in loader:
            pass
        out.append(rss_mb())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300, help="images for the per-core rates")
    ap.add_argument("--epoch-images", type=int, default=2000, help="pool size of the epoch run")
    ap.add_argument("--size", type=int, default=224, help="training input size")
    ap.add_argument("--epoch-size", type=int, default=64, help="tiny recipe's input size")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tdc-loader-") as tmp:
        t0 = time.perf_counter()
        ds = make_dataset(Path(tmp), max(args.images, args.epoch_images))
        print(f"made {ds.pool_size + 120:,} synthetic 1920x1080 JPEGs in "
              f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
        res = throughput(ds, args.images, args.size)
        base = res["research-style (PIL every epoch)"]
        print(
            f"\n1. images/s per core, training transform at {args.size} px ({args.images} images)"
        )
        for name, v in res.items():
            if not name.startswith("build"):
                print(f"   {name:34s} {v:8.1f} img/s   x{v / base:5.1f}")
        for codec in ("raw", "jpeg"):
            secs, mb = res[f"build {codec}"]
            print(f"   cache build ({codec:4s}, all CPUs): {secs:6.1f} s and {mb:7.1f} MB "
                  "per 1,000 images")  # fmt: skip
        # The recipe's own cache: its evaluation size, default (raw) codec.
        from harness.datasets.image_cache import build_image_cache, cache_size_for

        t0 = time.perf_counter()
        build_image_cache(ds=ds, size=cache_size_for(args.epoch_size))
        built = time.perf_counter() - t0
        without = epoch_seconds(ds, cache=False, image_size=args.epoch_size)
        with_cache = epoch_seconds(ds, cache=True, image_size=args.epoch_size)
        print(f"\n2. one epoch of the tiny finetune recipe, {ds.pool_size:,} images at "
              f"{args.epoch_size} px, end to end (train + held-out + 100 test images)")  # fmt: skip
        print(f"   originals {without:7.1f} s | cache {with_cache:7.1f} s | "
              f"x{without / with_cache:.1f} (cache built once in {built:.1f} s)")  # fmt: skip
        rss = rss_over_epochs(ds, args.size)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        epochs = ", ".join(f"{r:.0f}" for r in rss)
        print(
            f"\n3. loader RSS after epochs 1..{len(rss)} (MB): {epochs}; process peak {peak:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
