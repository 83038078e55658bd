"""``pixel_pca``: a small, fully explained image-text embedding (the demo's "CLIP").

    embedding: {embedder: pixel_pca, params: {dim: 64, size: 16, ridge: 1.0}}

What the vectors mean:

- **image**: each image as ``size x size`` grey pixels in [0, 1], centred on the pool's
  mean image and projected on the pool's first ``dim`` principal components (SVD of the
  centred pool, signs fixed so each component's largest entry is positive), then
  L2-normalised. Cosine similarity = similarity of the images' main stroke patterns.
- **text** / **text_nolabel**: a caption as a binary bag of words (lower-case alphanumeric
  tokens of the pool's vocabulary, plus a bias), mapped into the image space by one ridge
  regression fit on the pool that predicts a sample's image vector from its caption (both
  caption variants are stacked as training rows). A word's vector is thus the mean image
  direction of the pool samples whose captions contain it: "7" points at sevens, "scan" at
  the UCI source. L2-normalised.
- **clip_score**: cosine(image, text) of a pool sample, as in CLIP filtering: high when the
  image looks like a typical image of its caption.

Deterministic (closed form; no random initialisation) and fast: the demo embeds in seconds.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from harness.datasets.dataset import Dataset
from harness.embed.base import EmbeddingStore, l2_normalise, register
from harness.settings import HarnessSettings
from submissions.errors import ConfigError

_TOKEN = re.compile(r"[a-z0-9]+")


class PixelPcaParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dim: int = Field(64, gt=0, description="principal components kept")
    size: int = Field(16, gt=0, description="images are resized to size x size grey pixels")
    ridge: float = Field(1.0, gt=0, description="L2 penalty of the caption -> image regression")


def load_pixels(ds: Dataset, split: str, *, size: int) -> npt.NDArray[np.float32]:
    """(n, size*size) grey pixels in [0, 1] of the split's images, in row order."""
    from PIL import Image

    names = ds.split(split)["filename"].tolist()
    out = np.empty((len(names), size * size), dtype=np.float32)
    for i, name in enumerate(names):
        with Image.open(ds.image_root / name) as img:
            grey = img.convert("L")
            if grey.size != (size, size):
                grey = grey.resize((size, size), Image.Resampling.BOX)
            out[i] = np.asarray(grey, dtype=np.float32).reshape(-1) / 255.0
    return out


def fit_pca(
    x: npt.NDArray[np.float32], dim: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
    """Mean, (dim, features) components with fixed signs, and the explained variance ratio."""
    if dim > min(x.shape):
        raise ConfigError(f"pixel_pca dim={dim} exceeds min(pool size, pixels) = {min(x.shape)}")
    mean = x.astype(np.float64).mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:dim]
    signs = np.sign(comps[np.arange(dim), np.abs(comps).argmax(axis=1)])
    ratio = float((s[:dim] ** 2).sum() / max((s**2).sum(), 1e-12))
    return mean, comps * signs[:, None], ratio


def tokens(caption: str) -> list[str]:
    return _TOKEN.findall(caption.lower())


def bag_of_words(captions: list[str], vocab: dict[str, int]) -> npt.NDArray[np.float64]:
    """Binary word indicators plus a trailing bias column; unknown words are ignored."""
    out = np.zeros((len(captions), len(vocab) + 1))
    out[:, -1] = 1.0
    for i, caption in enumerate(captions):
        for word in tokens(caption):
            j = vocab.get(word)
            if j is not None:
                out[i, j] = 1.0
    return out


def fit_text_map(
    captions: list[str], targets: npt.NDArray[np.float32], *, ridge: float
) -> tuple[dict[str, int], npt.NDArray[np.float64]]:
    """Vocabulary and the ridge map (vocab + 1, dim) from bag of words to image vectors."""
    vocab = {w: i for i, w in enumerate(sorted({w for c in captions for w in tokens(c)}))}
    bow = bag_of_words(captions, vocab)
    gram = bow.T @ bow + ridge * np.eye(bow.shape[1])
    weights = np.linalg.solve(gram, bow.T @ targets.astype(np.float64))
    return vocab, np.asarray(weights, dtype=np.float64)


@register(
    "pixel_pca",
    params=PixelPcaParams,
    description="PCA of grey pixels; captions ridge-regressed into the same space",
)
def embed_pixel_pca(
    ds: Dataset,
    *,
    params: PixelPcaParams,
    store: EmbeddingStore,
    settings: HarnessSettings,
) -> dict[str, Any]:
    """Fit on the pool, then embed every split; returns what the manifest should record."""
    del settings
    pool = ds.spec.pool
    pixels = {s: load_pixels(ds, s, size=params.size) for s in ds.spec.split_names()}
    mean, comps, explained = fit_pca(pixels[pool], params.dim)
    images = {s: l2_normalise((x - mean) @ comps.T) for s, x in pixels.items()}
    pool_df = ds.split(pool)
    captions = pool_df["caption"].tolist() + pool_df["caption_nolabel"].tolist()
    vocab, weights = fit_text_map(
        captions, np.concatenate([images[pool], images[pool]]), ridge=params.ridge
    )
    for split in ds.spec.split_names():
        df = ds.split(split)
        text = {
            kind: bag_of_words(df[col].tolist(), vocab) @ weights
            for kind, col in (("text", "caption"), ("text_nolabel", "caption_nolabel"))
        }
        store.write_split(split, {"image": images[split], **text}, uids=ds.uids(split))
    return {"explained_variance": round(explained, 6), "vocabulary": len(vocab)}
