"""Bringing a research dataset in: import, embeddings import and embedding throughput.

    .venv/bin/python benchmarks/prepare.py                    # all three parts, full size
    .venv/bin/python benchmarks/prepare.py --part a --pool 20000
    .venv/bin/python benchmarks/prepare.py --part c --images 32

(a) ``prepare iWildCam --research-config`` on a synthetic research layout made here: a
    130k-row pool and 4 x (500 query + 1,600 test) rows in the research file names and
    columns (float labels, NaN for 1% of the pool), one (empty) image file per row under a
    separate image root, every one checked. Ours runs in a fresh process: wall time and its
    peak RSS. Peer: what the research code does to read the same splits (``pd.read_csv`` and
    ``dropna`` per split, as its iWildCamDataset), which checks nothing and writes nothing.
    Targets: < 60 s, peak RSS < 2 GB.
(b) ``embed --import --format research`` of 130k x 512 fp16 features (``*_image_label_embed
    .npz``, every split), matched by UID. Peer: the research probe's own read (``np.load`` and
    ``features[mask]``). Target: < 30 s.
(c) Embedding throughput of the full-size open_clip ViT-B-32 (random weights; speed does not
    depend on them) on synthetic 1920x1080 JPEGs, images/s on this machine's CPU: ours
    (JPEG draft decoding, loader) against the research loop (PIL decode + preprocess one
    image at a time in the main process, then the model), and the model alone on tensors.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

TASKS = 4
FILES = {"train": "train.csv"} | {
    f"{kind}{k}": f"{kind}{(k + 1) // 2 * 2 - 1}_{'id' if k % 2 else 'ood'}.csv"
    for k in range(1, TASKS + 1) for kind in ("val", "test")
}  # fmt: skip  # task 1 <- val1_id / test1_id, task 2 <- val1_ood / test1_ood, ...


def write_layout(root: Path, *, pool: int, query: int, test: int) -> Path:
    """The research disk for iWildCam at this size; returns its datasets.yaml."""
    rng = np.random.default_rng(0)
    csvs, images = root / "new_splits", root / "iwildcam_v2.0/train"
    csvs.mkdir(parents=True)
    names = np.array(["zebra", "impala", "elephant", "empty"])
    for split, file in FILES.items():
        n = pool if split == "train" else (query if split.startswith("val") else test)
        prefix = split if split == "train" else file.removesuffix(".csv")
        ids = rng.integers(0, len(names), n)
        label = ids.astype(float)
        if split == "train":
            label[rng.random(n) < 0.01] = np.nan
        df = pd.DataFrame({"uid": [f"{prefix}_{i}" for i in range(n)], "label": label,
                           "category_id": ids * 7, "category_name": names[ids],
                           "filename": [f"{i % 300:03d}/{prefix}_{i}.jpg" for i in range(n)],
                           "date": "2013-06-05"})  # fmt: skip
        df.to_csv(csvs / file, index=False)
        for sub in {f.split("/")[0] for f in df["filename"]}:
            (images / sub).mkdir(parents=True, exist_ok=True)
        for name in df["filename"]:
            (images / name).touch()
    config = root / "datasets.yaml"
    entry = {"csv_root_path": f"{csvs}/", "img_root_path": f"{images}/",
             "training_task": "classification", "FILEPATHS": FILES}  # fmt: skip
    config.write_text(yaml.safe_dump({"iWildCam": entry}))
    return config


CHILD = """
import json, resource, sys, time
from pathlib import Path
from harness.datasets.preparers import prepare_dataset
from harness.settings import HarnessSettings
from harness.specs import load_benchmark
settings = HarnessSettings(data_root=Path(sys.argv[1]))
spec = load_benchmark(settings.configs_dir).dataset("iWildCam")
t = time.perf_counter()
ds = prepare_dataset(spec=spec, settings=settings, research_config=Path(sys.argv[2]))
took = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": took, "peak_rss_mb": rss, "pool": ds.pool_size}))
"""


def research_read(config: Path) -> float:
    """The research code's read of every split: read_csv + dropna, as iWildCamDataset does."""
    entry = yaml.safe_load(config.read_text())["iWildCam"]
    t = time.perf_counter()
    for file in entry["FILEPATHS"].values():
        df = pd.read_csv(entry["csv_root_path"] + file)
        df = df.dropna(subset=["label"]).reset_index()
    return time.perf_counter() - t


def part_a(work: Path, pool: int) -> dict[str, Any]:
    t = time.perf_counter()
    config = write_layout(work / "research", pool=pool, query=500, test=1600)
    made = time.perf_counter() - t
    out = subprocess.run([sys.executable, "-c", CHILD, str(work / "data"), str(config)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    ours = json.loads(out.stdout.strip().splitlines()[-1])
    peer = research_read(config)
    print(f"(a) research layout import, pool {pool:,} + {TASKS} x (500 + 1,600) rows "
          f"(layout written in {made:.1f} s)")  # fmt: skip
    print(
        f"    ours : {ours['seconds']:6.2f} s, peak RSS {ours['peak_rss_mb']:.0f} MB "
        f"(checks every image, writes parquet + manifest; pool kept {ours['pool']:,})"
    )
    print(f"    peer : {peer:6.2f} s research read_csv + dropna (checks and writes nothing)")
    print(
        f"    ratio: ours / peer = {ours['seconds'] / peer:.1f}x; targets < 60 s, < 2048 MB: "
        f"{'met' if ours['seconds'] < 60 and ours['peak_rss_mb'] < 2048 else 'MISSED'}"
    )
    return {"config": config, **ours}


def part_b(work: Path, dim: int) -> None:
    from harness.datasets import Dataset
    from harness.embed import import_research_set
    from harness.settings import HarnessSettings
    from harness.specs import load_benchmark

    settings = HarnessSettings(data_root=work / "data")
    ds = Dataset.open(load_benchmark(settings.configs_dir).dataset("iWildCam"),
                      data_root=settings.data_root)  # fmt: skip
    src = work / "embeddings"
    src.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    entry = yaml.safe_load((work / "research/datasets.yaml").read_text())["iWildCam"]
    for split, file in entry["FILEPATHS"].items():
        uids = pd.read_csv(entry["csv_root_path"] + file, usecols=["uid"])["uid"].to_numpy(str)
        x = rng.normal(size=(len(uids), dim)).astype(np.float16)
        np.savez(src / f"{split}_image_label_embed.npz", features=x, labels=np.zeros(len(uids)),
                 uids=uids)  # fmt: skip
    t = time.perf_counter()
    import_research_set(ds=ds, source=src, set_name="research")
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for split in entry["FILEPATHS"]:
        embed = np.load(src / f"{split}_image_label_embed.npz")
        mask = np.arange(len(embed["uids"]))
        _ = embed["features"][mask], embed["labels"][mask]
    peer = time.perf_counter() - t
    print(f"(b) embeddings import, {ds.pool_size:,} pool rows x {dim} (npz, every split)")
    print(f"    ours : {ours:6.2f} s (matched by UID, written as float32 + unit copy, manifest)")
    print(f"    peer : {peer:6.2f} s research np.load + features[mask] (no UID check)")
    print(f"    ratio: ours / peer = {ours / peer:.1f}x; target < 30 s: "
          f"{'met' if ours < 30 else 'MISSED'}")  # fmt: skip


def jpegs(root: Path, n: int) -> list[Path]:
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(2)
    base = Image.fromarray((rng.random((1080, 1920, 3)) * 255).astype(np.uint8))
    base = base.filter(ImageFilter.GaussianBlur(3))  # camera-like, compresses as photos do
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        buf = io.BytesIO()
        base.rotate(i % 7).save(buf, "JPEG", quality=90)
        (path := root / f"{i:05d}.jpg").write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def part_c(work: Path, n: int, batch: int) -> None:
    import open_clip
    import torch

    from harness.embed.chunks import loader_workers
    from harness.recipes.images import ImageFiles

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    model.eval()
    paths = jpegs(work / "jpegs", n)

    def run(batches: Any) -> float:
        t = time.perf_counter()
        with torch.no_grad():
            for x in batches:
                model.encode_image(x)
        return n / (time.perf_counter() - t)

    def research() -> Any:  # PIL open + preprocess one image at a time, in this process
        from PIL import Image

        for s in range(0, n, batch):
            yield torch.stack(
                [preprocess(Image.open(p).convert("RGB")) for p in paths[s : s + batch]]
            )

    def ours() -> Any:
        data = ImageFiles(paths=paths, targets=np.zeros(n), transform=preprocess, draft=224)
        loader = torch.utils.data.DataLoader(data, batch_size=batch,
                                             num_workers=loader_workers("cpu", None))  # fmt: skip
        for x, _ in loader:
            yield x

    tensors = [torch.randn(min(batch, n - s), 3, 224, 224) for s in range(0, n, batch)]
    run(tensors[:1])  # warm-up
    model_only, peer, mine = run(tensors), run(research()), run(ours())
    print(f"(c) open_clip ViT-B-32 (full size) on {n} 1920x1080 JPEGs, CPU "
          f"({torch.get_num_threads()} threads), batch {batch}")  # fmt: skip
    print(f"    ours : {mine:6.1f} images/s (JPEG draft decode + loader)")
    print(f"    peer : {peer:6.1f} images/s research loop (full PIL decode, one by one)")
    print(f"    model: {model_only:6.1f} images/s on tensors (no data loading)")
    print(f"    ratio: ours / peer = {mine / peer:.2f}x; fed / model-only: ours "
          f"{mine / model_only:.2f}, peer {peer / model_only:.2f}")  # fmt: skip
    cuda = torch.cuda.is_available()
    print(f"    GPU: {'present' if cuda else 'none on this machine: GPU figures not measured'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["a", "b", "c", "all"], default="all")
    ap.add_argument("--pool", type=int, default=130_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    os.environ.setdefault(
        "TDC_CONFIGS_DIR", str(Path(__file__).resolve().parent.parent / "configs")
    )
    with tempfile.TemporaryDirectory(prefix="tdc-prepare-") as tmp:
        work = Path(tmp)
        if args.part in ("a", "b", "all"):
            part_a(work, args.pool)
        if args.part in ("b", "all"):
            part_b(work, args.dim)
        if args.part in ("c", "all"):
            part_c(work, args.images, args.batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(peak RSS of this process: {peak:.0f} MB)")


if __name__ == "__main__":
    main()
