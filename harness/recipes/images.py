"""Images of a split table as a torch dataset, with the standard transforms.

    tf = image_transforms(size=224, mean=cfg_mean, std=cfg_std, train=True, augment="crop_flip")
    cache = recipe_cache(ds, image_size=224, mode="auto")   # the decoded-image cache, or None
    data = ImageFiles(paths=[ds.image_root / f for f in table["filename"]], targets=y,
                      transform=tf, cache=cache)
    loader = make_loader(data, batch_size=64, shuffle=True, seed=0, num_workers=4, device="cpu")

Training transforms: RandomResizedCrop (scale 0.35-1, as timm's default for small data is too
aggressive at tiny sizes) and optional horizontal flip. Evaluation: resize the short side to
``size / 0.875`` then centre crop, the ImageNet convention. Loaders are seeded, so shuffling
and augmentation are reproducible for a given number of workers.

From the cache (:mod:`harness.datasets.image_cache`) the same transforms apply to the shrunk
image: the crop is drawn on the original's size (the same random numbers as from the file)
and cut from the cached pixels scaled to it, so a batch from the cache equals the batch from
the originals up to resize error. Reading the originals is unchanged, bit for bit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from harness.datasets.image_cache import (
    EVAL_CROP,
    SOURCE_SIZE,
    ImageCache,
    build_image_cache,
    cache_size_for,
    find_image_cache,
    node_cpus,
)
from harness.recipes.params import Augment
from submissions.errors import DataNotFound

if TYPE_CHECKING:
    from PIL import Image

    from harness.datasets import Dataset as TdcDataset

__all__ = ["EVAL_CROP", "ImageFiles", "image_transforms", "make_loader", "recipe_cache"]

CacheMode = Literal["auto", "build", "off"]
PREFETCH = 4  # batches each worker keeps ready


def image_transforms(
    *, size: int, mean: Sequence[float], std: Sequence[float], train: bool, augment: Augment
) -> Any:
    if train and augment != "none":
        steps: list[Any] = [SourceRandomResizedCrop(size, scale=(0.35, 1.0), antialias=True)]
        if augment == "crop_flip":
            steps.append(T.RandomHorizontalFlip())
    else:
        steps = [SourceResize(round(size / EVAL_CROP), antialias=True), T.CenterCrop(size)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


def _source(img: Any) -> tuple[int, int] | None:
    """(width, height) of the original when ``img`` came from the cache, else None."""
    info = getattr(img, "info", None)
    return info.get(SOURCE_SIZE) if isinstance(info, dict) else None


def _plain(img: Image.Image) -> Image.Image:
    img.info.pop(SOURCE_SIZE, None)  # the output is no longer the cached image
    return img


class SourceRandomResizedCrop(T.RandomResizedCrop):
    """RandomResizedCrop drawn on the original's size, cut from a cached (smaller) image."""

    def forward(self, img: Any) -> Any:
        src = _source(img)
        if src is None:
            return super().forward(img)
        from PIL import Image

        w0, h0 = src
        virtual = torch.empty(1).expand(3, h0, w0)  # the original's shape, no memory
        i, j, h, w = self.get_params(virtual, self.scale, self.ratio)  # type: ignore[arg-type]
        fx, fy = img.width / w0, img.height / h0
        x0, y0, x1, y1 = j * fx, i * fy, (j + w) * fx, (i + h) * fy
        # Cut the whole pixels holding the box first, as torchvision crops before resizing:
        # the filter then never reads outside the crop (and equal sizes give equal pixels).
        left, top = math.floor(x0), math.floor(y0)
        part = img.crop((left, top, math.ceil(x1), math.ceil(y1)))
        box = (x0 - left, y0 - top, x1 - left, y1 - top)
        out_h, out_w = self.size
        return _plain(part.resize((out_w, out_h), Image.Resampling.BILINEAR, box=box))


class SourceResize(T.Resize):
    """Resize (short side) to the size the original would get, from a cached image."""

    def forward(self, img: Any) -> Any:
        src = _source(img)
        if src is None:
            return super().forward(img)
        from PIL import Image

        w0, h0 = src
        short = self.size if isinstance(self.size, int) else self.size[0]
        long = int(short * max(w0, h0) / min(w0, h0))
        new = (short, long) if w0 <= h0 else (long, short)
        return _plain(img.resize(new, Image.Resampling.BILINEAR))


class ImageFiles(Dataset[tuple[torch.Tensor, Any]]):
    """(image tensor, target) pairs read from files; RGB whatever the file's mode.

    ``draft`` (a side length) lets a JPEG decode at a reduced scale (1/2 .. 1/8, by its DCT)
    that still leaves both sides at least that long: 4x faster on a 1920x1080 camera-trap
    image when the transform shrinks it to 224 px anyway. ``cache``: read the decoded, shrunk
    images from it instead of the files (``paths`` still name them).
    """

    def __init__(
        self,
        *,
        paths: Sequence[Path],
        targets: npt.NDArray[Any],
        transform: Any,
        draft: int | None = None,
        cache: ImageCache | None = None,
    ) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} images but {len(targets)} targets")
        self.paths, self.targets, self.transform = list(paths), targets, transform
        self.draft, self.cache = draft, cache

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        return self.transform(self.image(i)), self.targets[i]

    def image(self, i: int) -> Image.Image:
        """The ``i``-th image before the transform (RGB)."""
        from PIL import Image

        if self.cache is not None:
            return self.cache.open(self.paths[i])
        try:
            with Image.open(self.paths[i]) as img:
                if self.draft:
                    img.draft("RGB", (self.draft, self.draft))
                return img.convert("RGB")
        except FileNotFoundError:
            raise DataNotFound(f"image missing: {self.paths[i]}") from None


def recipe_cache(ds: TdcDataset, *, image_size: int, mode: CacheMode) -> ImageCache | None:
    """The image cache a recipe reads (recorded on ``ds`` for the manifest), or None.

    ``auto``: a complete cache of this dataset version with short side at least
    ``image_size / 0.875``, if one exists; ``build``: that, building it first if missing;
    ``off``: never (the original files).
    """
    if mode == "off":
        return None
    need = cache_size_for(image_size)
    cache = find_image_cache(ds, min_size=need)
    if cache is None and mode == "build":
        cache = build_image_cache(ds=ds, size=need)
    if cache is not None:
        ds.image_cache_used = cache.name
    return cache


def loader_workers(requested: int | Literal["auto"]) -> int:
    """``requested``, or for ``auto`` the CPUs of the job (SLURM_CPUS_PER_TASK) less one."""
    if requested == "auto":
        return max(0, node_cpus() - 1)
    return requested


def _seed_worker(worker_id: int) -> None:
    # Each worker's torch seed derives from the loader's generator; align numpy/random to it.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def loader_options(num_workers: int | Literal["auto"], *, device: str) -> dict[str, Any]:
    """Worker processes (kept across epochs, prefetching) and pinned memory on CUDA."""
    workers = loader_workers(num_workers)
    opts: dict[str, Any] = {"num_workers": workers, "pin_memory": device.startswith("cuda")}
    if workers > 0:
        opts.update(persistent_workers=True, prefetch_factor=PREFETCH)
    return opts


def make_loader(
    data: Dataset[Any],
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int | Literal["auto"],
    device: str = "cpu",
) -> DataLoader[tuple[torch.Tensor, Any]]:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        worker_init_fn=_seed_worker,
        generator=generator,
        **loader_options(num_workers, device=device),
    )
