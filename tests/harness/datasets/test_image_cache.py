"""The decoded-image cache: build, read, resume after a kill, name bad images, key, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli.main import main
from harness.datasets import Dataset
from harness.datasets import image_cache as ic
from harness.datasets.image_cache import (
    SOURCE_SIZE,
    build_image_cache,
    cache_size_for,
    find_image_cache,
    node_cpus,
)
from submissions.errors import ConfigError, DataNotFound

N_IMAGES = 460  # distinct filenames over the tiny dataset's five splits


def copy_dataset(ds: Dataset, root: Path) -> Dataset:
    shutil.copytree(ds.dir.root, root / ds.spec.path)
    return Dataset.open(ds.spec, data_root=root)


@pytest.fixture
def tiny(tiny_dataset: Dataset, tmp_path: Path) -> Dataset:
    """A writable copy of the tiny dataset (16x16 PNGs)."""
    return copy_dataset(tiny_dataset, tmp_path)


class Counter:
    """``shrink_image`` that counts calls and raises KeyboardInterrupt at call ``kill_at``."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.calls, self.kill_at = 0, kill_at

    def __call__(self, *args: object) -> object:
        self.calls += 1
        if self.kill_at is not None and self.calls == self.kill_at:
            raise KeyboardInterrupt
        return SHRINK(*args)  # type: ignore[arg-type]


SHRINK = ic.shrink_image


def test_builds_every_image_once_shrunk_and_reads_it_back(tiny: Dataset) -> None:
    cache = build_image_cache(ds=tiny, size=8, workers=0)
    meta = json.loads((cache.root / "manifest.json").read_text())
    assert meta["count"] == N_IMAGES and meta["bytes"] == N_IMAGES * 8 * 8 * 3
    assert cache.name == f"8px-raw-{tiny.manifest_hash()}"
    first = tiny.split("test1")["filename"].iloc[0]
    img = cache.open(tiny.image_root / first)
    assert img.size == (8, 8) and img.mode == "RGB" and img.info[SOURCE_SIZE] == (16, 16)
    with Image.open(tiny.image_root / first) as orig:
        want = np.asarray(orig.convert("RGB").resize((8, 8), Image.Resampling.BICUBIC))
    assert np.abs(np.asarray(img, np.int16) - want).max() <= 1
    assert find_image_cache(tiny, min_size=8) == cache
    assert find_image_cache(tiny, min_size=9) is None
    assert not list(cache.root.parent.glob(".partial-*"))


def test_the_jpeg_codec_is_smaller_and_close(tiny: Dataset) -> None:
    raw = build_image_cache(ds=tiny, size=12, workers=0)
    jpeg = build_image_cache(ds=tiny, size=12, codec="jpeg", workers=0)
    name = tiny.split("train")["filename"].iloc[3]
    a, b = (np.asarray(c.open(name), np.float32) for c in (raw, jpeg))
    assert a.shape == b.shape == (12, 12, 3) and np.abs(a - b).mean() < 8
    assert find_image_cache(tiny, min_size=10) == raw  # raw preferred at equal size


def test_a_killed_build_resumes_where_its_last_checkpoint_was(
    tiny: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ic, "CHECKPOINT", 100)
    killed = Counter(kill_at=301)
    monkeypatch.setattr(ic, "shrink_image", killed)
    with pytest.raises(KeyboardInterrupt):
        build_image_cache(ds=tiny, size=8, workers=0)
    assert find_image_cache(tiny, min_size=8) is None  # nothing half-done is in place
    resumed = Counter()
    monkeypatch.setattr(ic, "shrink_image", resumed)
    cache = build_image_cache(ds=tiny, size=8, workers=0)
    assert resumed.calls == N_IMAGES - 300
    data, index = (cache.root / "data.bin").read_bytes(), np.load(cache.root / "index.npy")
    fresh = build_image_cache(ds=tiny, size=8, workers=0, force=True)
    assert resumed.calls == 2 * N_IMAGES - 300
    names = list(ic.image_names(tiny))
    for i in (0, 150, 299, 300, N_IMAGES - 1):  # same pixels, wherever they were appended
        a, b = cache.open(names[i]), fresh.open(names[i])
        assert a.tobytes() == b.tobytes()
    assert len(data) == int(index[:, 1].sum())


def test_missing_and_corrupt_images_are_named_with_their_uid_then_retried(
    tiny: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tiny.split("train")
    bad, gone = (tiny.image_root / table["filename"].iloc[i] for i in (4, 7))
    good_bytes = bad.read_bytes(), gone.read_bytes()
    bad.write_bytes(b"not a png")
    gone.unlink()
    with pytest.raises(DataNotFound) as err:
        build_image_cache(ds=tiny, size=8, workers=0)
    msg = str(err.value)
    assert "2 of 460 images" in msg
    assert f"uid {table['uid'].iloc[4]} ({bad.name}): cannot decode" in msg
    assert f"uid {table['uid'].iloc[7]} ({gone.name}): missing" in msg
    assert find_image_cache(tiny, min_size=8) is None
    bad.write_bytes(good_bytes[0])
    gone.write_bytes(good_bytes[1])
    retried = Counter()
    monkeypatch.setattr(ic, "shrink_image", retried)
    assert build_image_cache(ds=tiny, size=8, workers=0).open(bad.name).size == (8, 8)
    assert retried.calls == 2


def test_a_changed_dataset_manifest_gets_a_new_cache_and_drops_the_stale_one(
    tiny: Dataset, tmp_path: Path
) -> None:
    old = build_image_cache(ds=tiny, size=8, workers=0)
    manifest = json.loads(tiny.dir.manifest_path.read_text())
    tiny.dir.manifest_path.write_text(json.dumps({**manifest, "note": "re-prepared"}))
    again = Dataset.open(tiny.spec, data_root=tmp_path)
    assert find_image_cache(again, min_size=8) is None
    new = build_image_cache(ds=again, size=8, workers=0)
    assert new.name != old.name and new.root.is_dir() and not old.root.exists()


def test_worker_processes_build_the_same_cache(tiny: Dataset) -> None:
    one = build_image_cache(ds=tiny, size=8, workers=0)
    data = (one.root / "data.bin").read_bytes()
    two = build_image_cache(ds=tiny, size=8, workers=2, force=True)
    assert (two.root / "data.bin").read_bytes() == data


def test_bad_sizes_and_codecs_are_refused(tiny: Dataset) -> None:
    with pytest.raises(ConfigError, match="at least 8"):
        build_image_cache(ds=tiny, size=4)
    with pytest.raises(ConfigError, match="raw, jpeg"):
        build_image_cache(ds=tiny, size=8, codec="png")  # type: ignore[arg-type]


def test_sizes_and_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_size_for(224) == 256 and cache_size_for(16) == 19
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert node_cpus() == 6
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert node_cpus() >= 1


SLOW_BUILD = """
import sys, time
from harness.datasets import Dataset
from harness.datasets import image_cache as ic
from harness.specs import DatasetSpec

spec = DatasetSpec.model_validate_json(sys.argv[1])
ic.CHECKPOINT = 100
shrink = ic.shrink_image
ic.shrink_image = lambda *a: (time.sleep(0.01), shrink(*a))[1]
ic.build_image_cache(ds=Dataset.open(spec, data_root=sys.argv[2]), size=8, workers=0)
"""


def test_a_build_killed_with_sigkill_resumes(tiny: Dataset) -> None:
    """A real ``kill -9`` mid-build (no exception handler runs): the rerun finishes from the
    last checkpoint and the cache holds exactly the pixels of a fresh build."""
    import signal
    import subprocess
    import sys
    import time

    data_root = str(tiny.dir.root.parent)
    spec = tiny.spec.model_dump_json()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, spec, data_root])
    index = ic.cache_dir(tiny) / f".partial-8px-raw-{tiny.manifest_hash()}" / "index.npy"
    deadline = time.monotonic() + 60
    while not index.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "killed mid-build, not finished"
    assert find_image_cache(tiny, min_size=8) is None  # nothing half-done is in place
    resumed = Counter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ic, "shrink_image", resumed)
        cache = build_image_cache(ds=tiny, size=8, workers=0)
    assert 0 < resumed.calls < N_IMAGES  # it resumed, from a checkpoint
    pixels = {name: cache.open(name).tobytes() for name in ic.image_names(tiny)}
    fresh = build_image_cache(ds=tiny, size=8, workers=0, force=True)  # replaces it
    assert pixels == {name: fresh.open(name).tobytes() for name in ic.image_names(tiny)}


def test_cache_images_command(
    demo_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert main(["cache-images", "--help"]) == 0
    assert "--size" in capsys.readouterr().out
    demo = copy_dataset(demo_dataset, tmp_path)
    monkeypatch.setenv("TDC_DATA_ROOT", str(tmp_path))
    assert main(["cache-images", "demo", "--size", "8", "--codec", "gif"]) == 2
    assert "--codec is one of raw, jpeg" in capsys.readouterr().err
    assert main(["cache-images", "demo", "--size", "8", "--workers", "0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == demo.split_size(demo.spec.pool) + sum(
        demo.split_size(s) for s in demo.spec.split_names() if s != demo.spec.pool
    )
    assert info["key"] == f"8px-raw-{demo.manifest_hash()}"
    assert main(["cache-images", "demo", "-s", "8"]) == 0  # complete: nothing to do
    assert "8px-raw" in capsys.readouterr().out


def test_a_corrupt_image_is_named_after_ultralytics_is_imported(tmp_path: Path) -> None:
    """ultralytics patches PIL's open to pip-install pi-heif on an unreadable image (and then
    fail with ModuleNotFoundError); the harness puts PIL's own open back when it imports it."""
    from harness.datasets.image_cache import shrink_image
    from harness.recipes.yolo_env import import_ultralytics

    import_ultralytics()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert str(shrink_image(str(bad), 16, "raw")).startswith(
        "cannot decode (UnidentifiedImageError"
    )
