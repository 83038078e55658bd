"""One script that checks the GPU paths and prints their throughput (< 8 minutes on an H100).

    .venv/bin/python -m benchmarks.gpu_check           # on a GPU node (CUDA required)
    .venv/bin/python -m benchmarks.gpu_check --cpu     # small sizes on the CPU (CI keeps it alive)

Reports, each section on its own (a failing section prints its error; the exit code is 1):

1. the device and the versions of CUDA, cuDNN, torch, torchvision, timm, open_clip, faiss;
2. ResNet-50 finetune images/s, model only (synthetic tensors on the device) and fed by the
   real loader from the decoded-image cache (synthetic 1920x1080 JPEGs), and their ratio;
3. the same for LoRA ViT-B/16;
4. open_clip ViT-B-32 image-embedding images/s;
5. faiss exact k-NN on GPU vs CPU (1M x 512 database on a GPU node; the GPU side needs the
   ``[gpu]`` extra, faiss-gpu);
6. YOLO: one epoch of the ``detection_yolo_demo`` recipe on ``demo_detection``.

Training steps use the recipes' settings on CUDA: bf16 autocast, ``channels_last``, pinned
memory, persistent prefetching workers (``SLURM_CPUS_PER_TASK`` less one). ``--cpu`` shrinks
every size (tiny timm models, small images, a 20k x 64 database) so the whole run takes about
a minute on two cores; its figures only say the code paths work.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Sizes:
    resnet: str
    vit: str
    vit_kwargs: dict[str, Any]
    image: int
    batch: int
    steps: int
    images: int  # synthetic JPEGs behind the loader
    jpeg: tuple[int, int]
    clip_batch: int
    faiss: tuple[int, int, int]  # database rows, dimension, queries
    yolo_rows: int


GPU = Sizes("resnet50", "vit_base_patch16_224", {}, 224, 128, 20, 2048, (1920, 1080), 256,
            (1_000_000, 512, 10_000), 1000)  # fmt: skip
CPU = Sizes("test_resnet", "test_vit", {"img_size": 32, "patch_size": 8}, 32, 8, 3, 48,
            (640, 360), 2, (20_000, 64, 200), 200)  # fmt: skip


def versions(device: str) -> str:
    import torch

    out = [f"device: {device}"]
    if device == "cuda":
        cudnn, bf16 = torch.backends.cudnn.version(), torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(0)
        out.append(f"  {name}, CUDA {torch.version.cuda}, cuDNN {cudnn}, bf16 {bf16}")
    for name in ("torch", "torchvision", "timm", "peft", "open_clip_torch", "faiss-cpu",
                 "faiss-gpu-cu12", "ultralytics", "pillow"):  # fmt: skip
        try:
            out.append(f"  {name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"  {name} not installed")
    return "\n".join(out)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def train_rate(model: Any, batches: Callable[[], Any], steps: int, device: str) -> float:
    """Images/s of Adam steps (bf16 autocast on CUDA) over ``steps`` batches after a warm-up."""
    import torch

    from harness.recipes.torch_env import amp_dtype, autocast, to_device

    dtype = amp_dtype(device=device, amp="auto")
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    it = batches()

    def step() -> int:
        x = to_device(next(it), device)
        with autocast(device=device, dtype=dtype):
            loss = model(x).float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(x)

    step()
    _sync(device)
    start, seen = time.perf_counter(), 0
    for _ in range(steps):
        seen += step()
    _sync(device)
    return seen / (time.perf_counter() - start)


def model_and_feeds(build: Callable[..., Any], params: Any, ds: Any, s: Sizes, device: str) -> str:
    """Model-only and loader-fed images/s of one recipe's network."""
    import torch

    from harness.datasets.image_cache import build_image_cache, cache_size_for
    from harness.recipes.images import ImageFiles, image_transforms, make_loader
    from harness.recipes.torch_env import prepare_model

    model, cfg = build(params, 10, Path("."))
    prepare_model(model, device)
    fixed = torch.randn(s.batch, 3, s.image, s.image)
    if device == "cuda":
        fixed = fixed.pin_memory()
    alone = train_rate(model, lambda: iter(lambda: fixed, None), s.steps, device)
    start = time.perf_counter()
    cache = build_image_cache(ds=ds, size=cache_size_for(s.image))
    built = time.perf_counter() - start
    tf = image_transforms(size=s.image, mean=cfg["mean"], std=cfg["std"], train=True,
                          augment="crop_flip")  # fmt: skip
    paths = [ds.image_root / f for f in ds.split("train")["filename"]]
    data = ImageFiles(paths=paths, targets=np.zeros(len(paths)), transform=tf, cache=cache)
    workers = "auto" if device == "cuda" else 0
    loader = make_loader(data, batch_size=s.batch, shuffle=True, seed=0, num_workers=workers,
                         device=device)  # fmt: skip

    def batches() -> Any:
        while True:
            yield from (x for x, _ in loader)

    fed = train_rate(model, batches, s.steps, device)
    return (f"model only {alone:8.1f} img/s | fed from the cache {fed:8.1f} img/s | "
            f"fed/model {fed / alone:.2f} (cache {cache.name} built in {built:.1f} s)")  # fmt: skip


def resnet(ds: Any, s: Sizes, device: str) -> str:
    from harness.recipes.backbones import build_timm
    from harness.recipes.params import FinetuneParams

    return model_and_feeds(build_timm, FinetuneParams(backbone=s.resnet, image_size=s.image),
                           ds, s, device)  # fmt: skip


def lora(ds: Any, s: Sizes, device: str) -> str:
    from harness.recipes.backbones import build_lora
    from harness.recipes.params import LoraParams

    params = LoraParams(backbone=s.vit, model_kwargs=s.vit_kwargs, image_size=s.image)
    return model_and_feeds(build_lora, params, ds, s, device)


def clip(ds: Any, s: Sizes, device: str) -> str:
    import open_clip
    import torch

    from harness.recipes.torch_env import amp_dtype, autocast

    model = open_clip.create_model("ViT-B-32", pretrained=None).to(device).eval()
    x = torch.randn(s.clip_batch, 3, 224, 224, device=device)
    dtype = amp_dtype(device=device, amp="auto")
    with torch.no_grad(), autocast(device=device, dtype=dtype):
        model.encode_image(x)
        _sync(device)
        start, n = time.perf_counter(), 3 if device == "cuda" else 1
        for _ in range(n * (10 if device == "cuda" else 1)):
            model.encode_image(x)
        _sync(device)
    steps = n * (10 if device == "cuda" else 1)
    return f"ViT-B-32 encode_image {steps * len(x) / (time.perf_counter() - start):8.1f} img/s"


def knn(ds: Any, s: Sizes, device: str) -> str:
    import faiss

    n, d, q = s.faiss
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, d), dtype=np.float32)
    queries = rng.standard_normal((q, d), dtype=np.float32)
    cpu_q = min(q, 1000)
    index = faiss.IndexFlatL2(d)
    index.add(base)
    start = time.perf_counter()
    _, want = index.search(queries[:cpu_q], 10)
    cpu_rate = cpu_q / (time.perf_counter() - start)
    line = f"{n:,} x {d} exact k=10: CPU {cpu_rate:10.1f} queries/s"
    if not hasattr(faiss, "StandardGpuResources"):
        return line + " | GPU: faiss without GPU support (install the [gpu] extra)"
    if faiss.get_num_gpus() == 0:
        return line + " | GPU: no GPU visible to faiss"
    gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    gpu.search(queries[:100], 10)
    start = time.perf_counter()
    _, got = gpu.search(queries, 10)
    gpu_rate = q / (time.perf_counter() - start)
    agree = float(np.mean(got[:cpu_q, 0] == want[:, 0]))
    speedup = gpu_rate / cpu_rate
    return line + f" | GPU {gpu_rate:10.1f} queries/s (x{speedup:.0f}, top-1 agree {agree:.3f})"


def yolo(ds: Any, s: Sizes, device: str) -> str:
    from harness.datasets.preparers import prepare_dataset
    from harness.runner import evaluate_subset
    from harness.settings import HarnessSettings
    from harness.specs import load_benchmark
    from harness.validation import subset_sha256

    with tempfile.TemporaryDirectory(prefix="tdc-gpu-check-") as tmp:
        settings = HarnessSettings(data_root=Path(tmp))
        specs = load_benchmark(settings.configs_dir)
        start = time.perf_counter()
        det = prepare_dataset(spec=specs.dataset("demo_detection"), settings=settings)
        prepared = time.perf_counter() - start
        recipe = specs.recipes["detection_yolo_demo"]
        recipe = recipe.model_copy(update={"params": {**recipe.params, "epochs": 1},
                                           "seeds": (0,)})  # fmt: skip
        rows = np.arange(min(s.yolo_rows, det.pool_size))
        start = time.perf_counter()
        result = evaluate_subset(ds=det, recipe=recipe, pool_rows=rows, fraction=1.0, task=None,
                                 subset_sha256=subset_sha256(rows))  # fmt: skip
        took = time.perf_counter() - start
    maps = ", ".join(f"{t.task} {t.mean.get('map50', float('nan')):.3f}" for t in result.tasks)
    return (f"demo_detection ({len(rows)} images, prepared in {prepared:.0f} s): one epoch + "
            f"evaluation {took:.1f} s on {result.manifest.device}; mAP50 {maps}")  # fmt: skip


SECTIONS: dict[str, Callable[[Any, Sizes, str], str]] = {
    "resnet50 finetune": resnet,
    "lora vit-b/16": lora,
    "open_clip embed": clip,
    "faiss k-NN": knn,
    "yolo epoch": yolo,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="small sizes on the CPU")
    ap.add_argument("--only", nargs="*", choices=sorted(SECTIONS), help="run these sections")
    args = ap.parse_args(argv)
    import torch

    from benchmarks.loader import make_dataset

    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for the small CPU check", file=sys.stderr)
        return 2
    device, s = ("cpu", CPU) if args.cpu else ("cuda", GPU)
    print(versions(device), flush=True)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="tdc-gpu-check-") as tmp:
        start = time.perf_counter()
        ds = make_dataset(Path(tmp), s.images, w=s.jpeg[0], h=s.jpeg[1])
        print(f"{s.images} synthetic {s.jpeg[0]}x{s.jpeg[1]} JPEGs in "
              f"{time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
        for name, fn in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            start = time.perf_counter()
            try:
                line = fn(ds, s, device)
            except Exception:  # report and go on: one broken path must not hide the others
                failed += 1
                line = "FAILED\n" + traceback.format_exc()
            print(f"{name:18s} [{time.perf_counter() - start:6.1f} s] {line}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
