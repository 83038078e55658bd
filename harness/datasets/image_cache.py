"""A decoded-image cache per dataset and resolution: every image once, short side ``size``.

    cache = build_image_cache(ds=ds, size=256)          # resumable; a no-op when complete
    cache = find_image_cache(ds, min_size=256)          # the smallest complete one, or None
    img = cache.open(ds.image_root / "cam1/0001.jpg")   # RGB PIL image, short side <= 256
    img.info[SOURCE_SIZE]                               # (width, height) of the original

The research code decodes each 1920x1080 camera-trap JPEG and shrinks it to 224 px on every
epoch; that decoding, not the GPU, sets the pace. The cache does it once. Layout::

    <dataset>/image_cache/<size>px-<codec>-<manifest hash>/
        manifest.json      size, codec, dataset manifest hash, count, bytes, build time
        names.npy          the distinct ``filename`` values of every split, sorted (unicode)
        index.npy          int64 (n, 6): offset, nbytes, height, width, source h, source w
        data.bin           the images back to back (see CODECS)

Codecs: ``raw`` (uint8 HxWx3 pixels, read with one ``pread``: nothing to decode) and
``jpeg`` (re-encoded at quality 90: ~10x smaller, one small decode per read).
``benchmarks/loader.py`` measures both; ``raw`` is the default (faster, lossless after the
resize). Reads use ``os.pread`` rather than a memory map, so a loader's resident memory stays
flat over epochs.

A cache is keyed by its size, codec and the dataset manifest's hash: a re-prepared dataset
gets a new one (older keys of the same size and codec are removed once it is complete). It is
built in ``.partial-<key>/`` beside it, checkpointed every ``CHECKPOINT`` images (a killed
build resumes where it stopped) and renamed into place when complete. An image that is
missing or cannot be decoded is named with its UID; the build then stops without renaming,
keeping what it did, and a rerun retries only those images.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from harness.datasets.image_files import safe_relative
from submissions.errors import ConfigError, DataNotFound

if TYPE_CHECKING:
    from PIL import Image

    from harness.datasets import Dataset

log = logging.getLogger(__name__)

Codec = Literal["raw", "jpeg"]
CODECS: tuple[Codec, ...] = ("raw", "jpeg")
FORMAT_VERSION = 1
EVAL_CROP = 0.875  # evaluation centre crop: resize the short side to size / EVAL_CROP
SOURCE_SIZE = "tdc_source_size"  # PIL ``info`` key: (width, height) of the original image
CHECKPOINT = 256  # images between two saves of a build's progress
JPEG_QUALITY = 90
SHOW = 10  # bad images named in an error message
DIRNAME = "image_cache"


def cache_size_for(image_size: int) -> int:
    """The short side a recipe with input ``image_size`` needs: its evaluation resize."""
    return math.ceil(image_size / EVAL_CROP)


def node_cpus() -> int:
    """CPUs this job may use: SLURM's ``SLURM_CPUS_PER_TASK``, else the process's affinity."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class CacheKey:
    size: int
    codec: Codec
    manifest_hash: str

    @property
    def name(self) -> str:
        return f"{self.size}px-{self.codec}-{self.manifest_hash}"


@dataclass
class ImageCache:
    """A complete cache; picklable (the file handle and lookup are opened per process)."""

    root: Path
    key: CacheKey
    image_root: Path
    _fd: int | None = field(default=None, repr=False, compare=False)
    _rows: dict[str, int] | None = field(default=None, repr=False, compare=False)
    _index: npt.NDArray[np.int64] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.key.name

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_rows": None, "_index": None}

    def _lookup(self) -> tuple[dict[str, int], npt.NDArray[np.int64]]:
        if self._rows is None or self._index is None:
            names = np.load(self.root / "names.npy", allow_pickle=False)
            self._rows = {str(n): i for i, n in enumerate(names)}
            self._index = np.load(self.root / "index.npy", allow_pickle=False)
        return self._rows, self._index

    def open(self, path: Path | str) -> Image.Image:
        """The cached image of ``path`` (an original's path under ``image_root``, or its name)."""
        p = Path(path)
        name = p.relative_to(self.image_root).as_posix() if p.is_absolute() else p.as_posix()
        rows, index = self._lookup()
        if name not in rows:
            raise DataNotFound(f"image {name!r} is not in the image cache {self.root}")
        offset, nbytes, h, w, h0, w0 = (int(v) for v in index[rows[name]])
        if self._fd is None:
            self._fd = os.open(self.root / "data.bin", os.O_RDONLY)
        data = os.pread(self._fd, nbytes, offset)
        img = _decode(data, self.key.codec, w, h)
        img.info[SOURCE_SIZE] = (w0, h0)
        return img


def _decode(data: bytes, codec: Codec, w: int, h: int) -> Image.Image:
    from PIL import Image

    if codec == "raw":
        return Image.frombuffer("RGB", (w, h), data, "raw", "RGB", 0, 1)
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def cache_dir(ds: Dataset) -> Path:
    return ds.dir.root / DIRNAME


def find_image_cache(
    ds: Dataset, *, min_size: int, codec: Codec | None = None
) -> ImageCache | None:
    """The smallest complete cache of this dataset version with short side >= ``min_size``."""
    found = []
    for d in sorted(cache_dir(ds).glob("*px-*-*")) if cache_dir(ds).is_dir() else []:
        if d.name.startswith("."):  # a build in progress, or a lock
            continue
        meta = _read_manifest(d)
        if meta is None or meta.get("manifest_hash") != ds.manifest_hash():
            continue
        if meta["size"] >= min_size and (codec is None or meta["codec"] == codec):
            key = CacheKey(int(meta["size"]), meta["codec"], meta["manifest_hash"])
            found.append((key.size, CODECS.index(key.codec), key, d))
    if not found:
        return None
    _, _, key, root = min(found)
    return ImageCache(root=root, key=key, image_root=ds.image_root)


def _read_manifest(d: Path) -> dict[str, Any] | None:
    path = d / "manifest.json"
    if not path.is_file():
        return None
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta if meta.get("format_version") == FORMAT_VERSION else None


def image_names(ds: Dataset) -> dict[str, str]:
    """Every distinct ``filename`` of the dataset's splits (sorted) -> the first UID naming it."""
    out: dict[str, str] = {}
    for split in ds.spec.split_names():
        table = ds.split(split)
        for name, uid in zip(table["filename"].astype(str), table["uid"].astype(str), strict=True):
            out.setdefault(safe_relative(name).as_posix(), uid)
    return dict(sorted(out.items()))


def build_image_cache(
    *,
    ds: Dataset,
    size: int,
    codec: Codec = "raw",
    workers: int | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImageCache:
    """Build (or finish) the cache of ``ds`` at short side ``size``; returns it when complete.

    ``workers`` decoding processes (default: the node's CPUs, see :func:`node_cpus`); ``force``
    discards a complete cache and any partial progress. DataNotFound names every image that
    is missing or cannot be decoded (with its UID); the progress is kept for a rerun.
    """
    if size < 8:
        raise ConfigError(f"image cache size must be at least 8 pixels, not {size}")
    if codec not in CODECS:
        raise ConfigError(f"image cache codec {codec!r} is not one of {', '.join(CODECS)}")
    key = CacheKey(size, codec, ds.manifest_hash())
    final, scratch = cache_dir(ds) / key.name, cache_dir(ds) / f".partial-{key.name}"
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final.parent / f".{key.name}.lock"):
        if force:
            shutil.rmtree(final, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
        if _read_manifest(final) is None:
            start = time.perf_counter()
            names = image_names(ds)
            _Builder(scratch, names, ds.image_root, key).run(
                workers=node_cpus() if workers is None else workers, progress=progress
            )
            _finish(scratch, final, key, len(names), time.perf_counter() - start)
            _drop_stale(final)
    return ImageCache(root=final, key=key, image_root=ds.image_root)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per key at a time (another waits, then finds the cache complete)."""
    import fcntl

    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def shrink_image(path: str, size: int, codec: Codec) -> tuple[bytes, int, int, int, int] | str:
    """(encoded bytes, h, w, source h, source w) of one image, or why it failed."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            w0, h0 = img.size
            img.draft("RGB", (size, size))  # JPEG: decode at the smallest DCT scale >= size
            rgb = img.convert("RGB")
    except FileNotFoundError:
        return "missing"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return f"cannot decode ({type(err).__name__}: {err})"
    scale = size / min(w0, h0)
    if scale < 1:
        new = (max(1, round(w0 * scale)), max(1, round(h0 * scale)))
        rgb = rgb.resize(new, Image.Resampling.BICUBIC, reducing_gap=None)
    w, h = rgb.size
    if codec == "raw":
        return rgb.tobytes(), h, w, h0, w0
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), h, w, h0, w0


def _shrink_job(args: tuple[str, int, Codec]) -> tuple[bytes, int, int, int, int] | str:
    return shrink_image(*args)


class _Builder:
    """Appends images to ``data.bin`` in the scratch directory; ``index.npy`` is the progress."""

    def __init__(self, root: Path, names: dict[str, str], image_root: Path, key: CacheKey) -> None:
        self.root, self.names, self.image_root, self.key = root, names, image_root, key
        self.index = np.full((len(names), 6), -1, np.int64)

    def run(self, *, workers: int, progress: Callable[[int, int], None] | None) -> None:
        self._resume()
        todo = np.flatnonzero(self.index[:, 1] < 0)
        names = list(self.names)
        log.info("image cache %s: %d of %d images to do", self.key.name, len(todo), len(names))
        bad: list[str] = []
        with (self.root / "data.bin").open("ab") as out:
            offset = out.tell()
            jobs = ((str(self.image_root / names[i]), self.key.size, self.key.codec) for i in todo)
            for n, (i, got) in enumerate(zip(todo, _map(_shrink_job, jobs, workers), strict=True)):
                if isinstance(got, str):
                    bad.append(f"uid {self.names[names[i]]} ({names[i]}): {got}")
                else:
                    out.write(got[0])
                    self.index[i] = (offset, len(got[0]), *got[1:])
                    offset += len(got[0])
                if (n + 1) % CHECKPOINT == 0:
                    self._save(out)
                if progress is not None:
                    progress(n + 1, len(todo))
            self._save(out)
        if bad:
            raise DataNotFound(
                f"{len(bad)} of {len(names)} images could not be cached (kept what was done; "
                f"rerun to retry them): {'; '.join(bad[:SHOW])}"
                + (f"; and {len(bad) - SHOW} more" if len(bad) > SHOW else "")
            )

    def _resume(self) -> None:
        names = np.array(list(self.names), dtype=str)
        old = self.root / "names.npy"
        index = self.root / "index.npy"
        if (
            old.is_file()
            and index.is_file()
            and (self.root / "data.bin").is_file()
            and (np.array_equal(np.load(old, allow_pickle=False), names))
        ):
            self.index = np.load(index, allow_pickle=False)
            done = self.index[:, 1] >= 0
            end = int((self.index[done, 0] + self.index[done, 1]).max()) if done.any() else 0
            with (self.root / "data.bin").open("r+b") as f:
                f.truncate(end)  # drop bytes written after the last checkpoint
            log.info("image cache %s: resuming (%d done)", self.key.name, int(done.sum()))
            return
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        np.save(old, names, allow_pickle=False)
        (self.root / "data.bin").touch()

    def _save(self, out: Any) -> None:
        out.flush()
        os.fsync(out.fileno())
        tmp = self.root / "index.tmp.npy"
        np.save(tmp, self.index, allow_pickle=False)
        os.replace(tmp, self.root / "index.npy")


def _map(fn: Callable[[Any], Any], jobs: Iterator[Any], workers: int) -> Iterator[Any]:
    """``map`` in ``workers`` processes (in order), or in this one for ``workers <= 1``."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(fn, jobs, chunksize=8)


def _finish(scratch: Path, final: Path, key: CacheKey, count: int, seconds: float) -> None:
    index = np.load(scratch / "index.npy", allow_pickle=False)
    nbytes = int(index[:, 1].sum()) if len(index) else 0
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "size": key.size,
        "codec": key.codec,
        "manifest_hash": key.manifest_hash,
        "count": count,
        "bytes": nbytes,
        "build_s": round(seconds, 3),
    }
    (scratch / "manifest.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(scratch, final)
    log.info("image cache %s: %d images, %.1f MB", key.name, count, nbytes / 1e6)


def _drop_stale(final: Path) -> None:
    """Remove complete caches of the same size and codec made for another dataset version."""
    prefix = final.name.rsplit("-", 1)[0] + "-"
    for d in final.parent.glob(f"{prefix}*"):
        if d != final and d.is_dir():
            log.info("image cache: removing %s (dataset changed since)", d.name)
            shutil.rmtree(d, ignore_errors=True)


def cache_info(cache: ImageCache) -> dict[str, Any]:
    """The cache's manifest plus its directory (what ``cache-images`` prints)."""
    meta = _read_manifest(cache.root) or {}
    return {"key": cache.name, "path": str(cache.root), **meta}
