"""Full-size model paths without a download: checkpoints in their usual formats, loaded from disk.

Randomly initialised full-size models are saved as an organizer would receive them (an
open_clip ViT-B-32 state dict, a timm resnet50 and a DINOv2 safetensors file), then `embed`
and one finetune epoch load them through TDC_CLIP_CHECKPOINT and TDC_WEIGHTS_DIR on the
miniature research dataset (tests/harness/conftest.py). Sockets are refused throughout.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from harness.cli.main import main
from harness.settings import HarnessSettings
from tests.harness.conftest import ResearchDisk

pytestmark = pytest.mark.slow


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def iwildcam(research_disk: ResearchDisk, data_root: Path) -> ResearchDisk:
    assert main(["prepare", "iWildCam", "--research-config", str(research_disk.config)]) == 0
    return research_disk


def test_open_clip_vit_b_32_checkpoint_embeds(
    iwildcam: ResearchDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    assert sum(p.numel() for p in model.parameters()) > 150_000_000  # the full-size model
    ckpt = tmp_path / "ViT-B-32.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    monkeypatch.setenv("TDC_CLIP_CHECKPOINT", str(ckpt))
    assert main(["embed", "iWildCam"]) == 0
    sdir = Path(HarnessSettings().data_root) / "iWildCam/embeddings/clip"
    manifest = json.loads((sdir / "manifest.json").read_text())
    assert manifest["details"]["pretrained"] == "ViT-B-32.pt" and manifest["kinds"] == [
        "image", "text", "text_nolabel"
    ]  # fmt: skip
    assert np.load(sdir / "train/image.npy").shape == (58, 512)


def test_timm_resnet50_weights_finetune_one_epoch(
    iwildcam: ResearchDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "weights"
    weights.mkdir()
    model = timm.create_model("resnet50", pretrained=False)
    save_file(model.state_dict(), str(weights / "resnet50.safetensors"))
    monkeypatch.setenv("TDC_WEIGHTS_DIR", str(weights))
    configs = tmp_path / "configs"
    shutil.copytree(HarnessSettings().configs_dir, configs)
    raw = yaml.safe_load((configs / "recipes.yaml").read_text())
    raw["recipes"]["full_finetune_resnet50"]["params"] |= {
        "epochs": 1, "image_size": 64, "batch_size": 16, "num_workers": 0,
    }  # fmt: skip
    (configs / "recipes.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("TDC_CONFIGS_DIR", str(configs))
    sub, out = tmp_path / "s.npy", tmp_path / "r.json"
    np.save(sub, np.array([f"train_{i}" for i in range(0, 40, 3)]))
    assert main(["evaluate", str(sub), "-d", "iWildCam", "-f", "0.25", "-t", "test1",
                 "-r", "full_finetune_resnet50", "--seeds", "0", "-o", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["tasks"][0]["test_size"] == 12 and result["manifest"]["embedding_set"] is None


def test_dinov2_checkpoint_embeds_at_another_size(
    iwildcam: ResearchDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    """A DINOv2 checkpoint (518 px position grid) loads at 56 px: timm resamples it."""
    import timm
    from safetensors.torch import save_file

    from harness.datasets import Dataset
    from harness.embed import embed_dataset
    from harness.specs import EmbeddingSpec, EmbeddingsSpec, load_benchmark

    weights = tmp_path / "weights"
    weights.mkdir()
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    save_file(model.state_dict(), str(weights / "vit_small_patch14_dinov2.safetensors"))
    settings = HarnessSettings(weights_dir=weights)
    spec = load_benchmark(settings.configs_dir).dataset("iWildCam")
    dino = EmbeddingSpec(embedder="dinov2",
                         params={"arch": "vit_small_patch14_dinov2", "image_size": 56})  # fmt: skip
    sets = {**spec.embeddings.sets, "dino": dino} if spec.embeddings else {"dino": dino}
    spec = spec.model_copy(update={"embeddings": EmbeddingsSpec(default="dino", sets=sets)})
    ds = Dataset.open(spec, data_root=settings.data_root)
    manifest = embed_dataset(ds=ds, settings=settings)
    assert manifest["kinds"] == ["image"] and manifest["identity"]["weights"]
    x = ds.embeddings("val1")
    assert x.shape == (12, 384)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
