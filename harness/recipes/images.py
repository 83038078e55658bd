"""Images of a split table as a torch dataset, with the standard transforms.

    tf = image_transforms(size=224, mean=cfg_mean, std=cfg_std, train=True, augment="crop_flip")
    data = ImageFiles(paths=[ds.image_root / f for f in table["filename"]], targets=y, transform=tf)
    loader = make_loader(data, batch_size=64, shuffle=True, seed=0, num_workers=4)

Training transforms: RandomResizedCrop (scale 0.35-1, as timm's default for small data is too
aggressive at tiny sizes) and optional horizontal flip. Evaluation: resize the short side to
``size / 0.875`` then centre crop, the ImageNet convention. Loaders are seeded, so shuffling
and augmentation are reproducible with any number of workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, Dataset

from harness.recipes.params import Augment
from submissions.errors import DataNotFound

EVAL_CROP = 0.875


def image_transforms(
    *, size: int, mean: Sequence[float], std: Sequence[float], train: bool, augment: Augment
) -> Any:
    from torchvision import transforms as T

    if train and augment != "none":
        steps: list[Any] = [T.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True)]
        if augment == "crop_flip":
            steps.append(T.RandomHorizontalFlip())
    else:
        steps = [T.Resize(round(size / EVAL_CROP), antialias=True), T.CenterCrop(size)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


class ImageFiles(Dataset[tuple[torch.Tensor, Any]]):
    """(image tensor, target) pairs read from files; RGB whatever the file's mode.

    ``draft`` (a side length) lets a JPEG decode at a reduced scale (1/2 .. 1/8, by its DCT)
    that still leaves both sides at least that long: 4x faster on a 1920x1080 camera-trap
    image when the transform shrinks it to 224 px anyway.
    """

    def __init__(
        self,
        *,
        paths: Sequence[Path],
        targets: npt.NDArray[Any],
        transform: Any,
        draft: int | None = None,
    ) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} images but {len(targets)} targets")
        self.paths, self.targets, self.transform = list(paths), targets, transform
        self.draft = draft

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as img:
                if self.draft:
                    img.draft("RGB", (self.draft, self.draft))
                x = self.transform(img.convert("RGB"))
        except FileNotFoundError:
            raise DataNotFound(f"image missing: {self.paths[i]}") from None
        return x, self.targets[i]


def _seed_worker(worker_id: int) -> None:
    # Each worker's torch seed derives from the loader's generator; align numpy/random to it.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    data: ImageFiles, *, batch_size: int, shuffle: bool, seed: int, num_workers: int
) -> DataLoader[tuple[torch.Tensor, Any]]:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        worker_init_fn=_seed_worker,
        generator=generator,
        persistent_workers=False,
    )
