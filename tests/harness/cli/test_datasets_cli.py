"""`tdc-harness datasets | datasets show | prepare | embed | demo` through main([...])."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from harness.cli.main import main
from harness.datasets import Dataset

NINE = (
    "GeoDE", "iWildCam", "AutoArborist", "SelfDrivingCar", "FMoW",
    "FishDetection", "ReID", "CropHarvest", "COOS",
)  # fmt: skip


@pytest.fixture
def demo_root(demo_dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared prepared demo's data root as TDC_DATA_ROOT (read-only: commands only read)."""
    root = demo_dataset.dir.root.parent
    monkeypatch.setenv("TDC_DATA_ROOT", str(root))
    return root


def test_datasets_lists_all_ten_with_their_state(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("demo", *NINE):
        assert name in out
    demo_line = next(line for line in out.splitlines() if " demo " in line)
    assert "4,300" in demo_line and "pixel_pca (ready)" in demo_line
    geode_line = next(line for line in out.splitlines() if "GeoDE" in line)
    assert "not prepared" in geode_line


def test_show_prints_sizes_and_budgets(demo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "show", "demo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pool_size"] == 4300 and data["embedded"] is True
    assert {f["fraction"]: f["budget"] for f in data["fractions"]} == {
        0.05: 215, 0.1: 430, 0.25: 1075
    }  # fmt: skip
    t4 = next(t for t in data["tasks"] if t["name"] == "test4")
    assert (t4["query_size"], t4["test_size"], t4["hidden"]) == (100, 400, True)
    assert main(["datasets", "show", "demo"]) == 0
    text = capsys.readouterr().out
    assert "0.1: 430" in text and "test3 (246)" in text and "[hidden test]" in text
    assert "pixel_pca (default): pixel_pca, " in text and "image, text, text_nolabel; ok" in text


def test_unknown_and_unprepared_datasets_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TDC_DATA_ROOT", str(tmp_path))
    assert main(["datasets", "show", "demoo"]) == 2
    assert "Did you mean 'demo'" in capsys.readouterr().err
    assert main(["prepare", "GeoDE"]) == 2
    err = capsys.readouterr().err
    assert "train.csv" in err and "--source" in err
    assert main(["embed", "demo"]) == 2
    assert "tdc-harness prepare demo" in capsys.readouterr().err


def test_prepare_source_then_embed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make_csv_release: Callable[..., Path],
) -> None:
    """A research-style release through the CLI: prepare --source, then embed (no weights)."""
    monkeypatch.setenv("TDC_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("TDC_CLIP_CHECKPOINT", raising=False)
    splits = ("train", *(f"{kind}{k}" for k in range(1, 5) for kind in ("val", "test")))
    release = make_csv_release(tmp_path / "release", splits=splits)
    for split in splits:  # GeoDE's own columns (configs/datasets.yaml: table)
        df = pd.read_csv(release / f"{split}.csv").rename(columns={"filename": "file_path"})
        df.assign(object=df["label"], ip_country="Ghana").to_csv(release / f"{split}.csv")
    assert main(["prepare", "GeoDE", "--source", str(release)]) == 0
    out = capsys.readouterr().out
    assert "GeoDE: prepared" in out and "train 6" in out and "test4 6" in out
    caption = pd.read_parquet(tmp_path / "data/GeoDE/splits/val2.parquet")["caption"][1]
    assert caption == "image of chair taken in the country Ghana"
    assert main(["datasets", "show", "GeoDE", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fractions"][0] == {"fraction": 0.05, "budget": 0}
    assert main(["embed", "GeoDE"]) == 2  # open_clip needs a local checkpoint
    assert "TDC_CLIP_CHECKPOINT" in capsys.readouterr().err


def test_demo_data_steps_are_idempotent(demo_root: Path) -> None:
    """`tdc-harness demo` starts with these steps; on a prepared demo they rewrite nothing."""
    from harness.cli.demo import STEPS, run_demo
    from harness.settings import HarnessSettings

    stamps = [
        (demo_root / "demo" / p).stat().st_mtime_ns
        for p in ("manifest.json", "embeddings/pixel_pca/manifest.json")
    ]
    run = run_demo(settings=HarnessSettings(data_root=demo_root), steps=STEPS)
    assert list(run.timings) == ["prepare", "embed"] and run.notes["embedder"] == "pixel_pca"
    assert run.dataset is not None and run.dataset.pool_size == 4300
    assert stamps == [
        (demo_root / "demo" / p).stat().st_mtime_ns
        for p in ("manifest.json", "embeddings/pixel_pca/manifest.json")
    ]


def test_prepare_and_embed_commands_skip_done_work(
    demo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_manifest = demo_root / "demo" / "embeddings" / "pixel_pca" / "manifest.json"
    stamp = set_manifest.stat().st_mtime_ns
    assert main(["prepare", "demo"]) == 0
    assert "demo: prepared at" in capsys.readouterr().out
    assert main(["embed", "demo"]) == 0
    assert "set pixel_pca (pixel_pca, fingerprint" in capsys.readouterr().out
    assert set_manifest.stat().st_mtime_ns == stamp
