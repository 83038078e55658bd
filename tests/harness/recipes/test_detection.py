"""Detection: mAP as ultralytics computes it, the YOLO training set, offline end-to-end run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import Dataset
from harness.recipes.base import TrainContext
from harness.recipes.detection import (
    detection_scores,
    parse_boxes,
    split_boxes,
    write_yolo_dataset,
)
from harness.recipes.params import DetectionParams
from harness.runner import evaluate_subset
from harness.specs import RecipeSpec
from harness.validation import subset_sha256


def _as_pred(t: np.ndarray, conf: float = 0.9) -> np.ndarray:
    cx, cy, w, h = t[:, 1], t[:, 2], t[:, 3], t[:, 4]
    xyxy = np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return np.column_stack([xyxy, np.full(len(t), conf), t[:, 0]])


def _truth(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 4))
        out.append(
            np.column_stack(
                [
                    rng.integers(0, 3, k),
                    rng.uniform(0.3, 0.7, (k, 2)),
                    rng.uniform(0.05, 0.3, (k, 2)),
                ]
            )
        )
    return out


def test_perfect_and_empty_predictions() -> None:
    truth = _truth(np.random.default_rng(0), 20)
    perfect = detection_scores(truth=truth, preds=[_as_pred(t) for t in truth]).metrics
    # 101-point interpolation as ultralytics does it: a perfect detector scores 0.995.
    assert perfect == pytest.approx({"map50": 0.995, "map50_95": 0.995}, abs=1e-9)
    nothing = detection_scores(truth=truth, preds=[np.zeros((0, 6)) for _ in truth])
    assert nothing.metrics == {"map50": 0.0, "map50_95": 0.0}
    assert set(nothing.per_class) == {0, 1, 2}
    wrong_class = [_as_pred(t) for t in truth]
    for p in wrong_class:
        p[:, 5] = (p[:, 5] + 1) % 3
    assert detection_scores(truth=truth, preds=wrong_class).metrics["map50"] == 0.0


def test_matches_ultralytics_on_noisy_detections() -> None:
    import torch

    from harness.recipes.yolo_env import import_ultralytics

    import_ultralytics()
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import ap_per_class, box_iou

    rng = np.random.default_rng(1)
    truth = _truth(rng, 40)
    preds = []
    for t in truth:
        p = _as_pred(t, 0.0)
        p[:, :4] += rng.normal(0, 0.02, p[:, :4].shape)
        p[:, 4] = rng.uniform(0.05, 1, len(p))
        p[rng.uniform(size=len(p)) < 0.2, 5] = 2
        extra = _as_pred(_truth(rng, 1)[0], 0.0)
        extra[:, 4] = rng.uniform(0.01, 0.5, len(extra))
        preds.append(np.concatenate([p, extra]))
    ours = detection_scores(truth=truth, preds=preds).metrics
    validator = DetectionValidator()
    validator.iouv = torch.linspace(0.5, 0.95, 10)
    tps, confs, pcls, tcls = [], [], [], []
    for t, p in zip(truth, preds, strict=True):
        p = p[np.argsort(-p[:, 4], kind="stable")]
        tb = torch.tensor(_as_pred(t)[:, :4])
        iou = box_iou(tb, torch.tensor(p[:, :4]))
        tps.append(
            validator.match_predictions(torch.tensor(p[:, 5]), torch.tensor(t[:, 0]), iou).numpy()
        )
        confs.append(p[:, 4]), pcls.append(p[:, 5]), tcls.append(t[:, 0])
    out = ap_per_class(
        np.concatenate(tps), np.concatenate(confs), np.concatenate(pcls), np.concatenate(tcls)
    )
    ap = out[5]
    assert ours["map50"] == pytest.approx(float(ap[:, 0].mean()), abs=1e-9)
    assert ours["map50_95"] == pytest.approx(float(ap.mean()), abs=1e-9)
    assert 0.05 < ours["map50_95"] < ours["map50"] < 1


def test_yolo_training_set_is_exactly_the_subset(
    demo_detection_dataset: Dataset, tmp_path: Path
) -> None:
    ds = demo_detection_dataset
    rows = np.array([3, 10, 11, 500, 1199])
    params = DetectionParams(val_fraction=0.0)
    recipe = RecipeSpec(name="d", kind="detection", task_types=("detection",))
    ctx = TrainContext(
        ds=ds,
        recipe=recipe,
        params=params,
        rows=rows,
        labels=None,
        tasks=ds.spec.tasks,
        device="cpu",
        weights_dir=tmp_path,
    )
    data_yaml = write_yolo_dataset(
        ctx=ctx, table=ctx.subset_table(), names=list("0123456789"), root=tmp_path / "yolo"
    )
    pool = ds.split("train")
    labels = sorted((tmp_path / "yolo" / "train" / "labels").iterdir())
    assert [p.stem for p in labels] == sorted(pool["uid"].iloc[rows])
    for uid, cell in zip(pool["uid"].iloc[rows], pool["boxes"].iloc[rows], strict=True):
        text = (tmp_path / "yolo" / "train" / "labels" / f"{uid}.txt").read_text()
        written = np.array([[float(v) for v in line.split()] for line in text.splitlines()])
        np.testing.assert_allclose(written, parse_boxes(cell), atol=1e-6)
        assert (tmp_path / "yolo" / "train" / "images" / f"{uid}.png").resolve().is_file()
    assert "val:" in data_yaml.read_text()


def test_import_stays_offline_and_out_of_home(tmp_path: Path) -> None:
    code = (
        "import os\n"
        "from harness.recipes.yolo_env import import_ultralytics\n"
        "import_ultralytics()\n"
        "from ultralytics.utils import ONLINE, SETTINGS, USER_CONFIG_DIR\n"
        "assert not SETTINGS['sync'] and not ONLINE\n"
        "assert str(USER_CONFIG_DIR).startswith(os.environ['YOLO_CONFIG_DIR'])\n"
        "print(USER_CONFIG_DIR)\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("YOLO_CONFIG_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    config_dir = Path(out.stdout.strip().splitlines()[-1])
    assert config_dir.is_dir() and not config_dir.is_relative_to(tmp_path)
    assert (config_dir / "Arial.ttf").is_file()  # so check_font never downloads it
    assert not (tmp_path / ".config").exists()


@pytest.mark.slow
def test_demo_end_to_end_without_network(
    demo_detection_dataset: Dataset,
    shipped_recipes: dict[str, RecipeSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Trains the shipped CPU recipe on a quarter of the pool with every socket refused."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    ds = demo_detection_dataset
    recipe = shipped_recipes[ds.spec.default_recipe]
    rows = np.sort(np.random.default_rng(0).choice(ds.pool_size, 300, replace=False))
    result = evaluate_subset(
        ds=ds,
        recipe=recipe,
        pool_rows=rows,
        subset_sha256=subset_sha256(rows),
        fraction=0.25,
        task=None,
    )
    assert attempts == []
    assert result.subset_size == 300 and result.recipe == "detection_yolo_demo"
    for t in result.tasks:
        assert t.test_size == ds.split_size(ds.spec.task(t.task).test)
        # A model that predicts nothing scores exactly 0 (test_perfect_and_empty_predictions).
        assert t.mean["map50"] > 0.04, t
        assert 0 < t.mean["map50_95"] <= t.mean["map50"]
        assert set(t.seeds[0].per_class) <= {str(c) for c in range(10)}
    _appears_on_the_board(ds, result)


def _appears_on_the_board(ds: Dataset, result: object) -> None:
    """Board columns come from the spec: map50 ranks, map50_95 breaks ties."""
    from leaderboard.export import board_public
    from leaderboard.ranking import BoardKey, RankingRule, rank_dataset_board
    from leaderboard.rows import ResultRow

    now = datetime.now(UTC)
    rows = [
        ResultRow(
            submission_id=1,
            team="owls",
            dataset=ds.spec.name,
            fraction=0.25,
            recipe=result.recipe,
            recipe_version="1",
            task=t.task,
            created_at=now,  # type: ignore[attr-defined]
            mean=t.mean,
            std=t.std,
        )
        for t in result.tasks  # type: ignore[attr-defined]
    ]
    key = BoardKey(
        dataset=ds.spec.name, fraction=0.25, recipe="detection_yolo_demo", recipe_version="1"
    )
    board = board_public(
        rank_dataset_board(
            rows, key=key, tasks=tuple(ds.spec.task_names()), rule=RankingRule.of(ds.spec)
        )
    )
    assert (board.primary_metric, board.secondary_metric) == ("map50", "map50_95")
    entry = board.entries[0]
    assert entry.rank == 1 and entry.score == pytest.approx(
        np.mean([t.mean["map50"] for t in result.tasks])  # type: ignore[attr-defined]
    )
    assert entry.secondary is not None


def test_box_column_is_required(tiny_dataset: Dataset) -> None:
    from submissions.errors import DataNotFound

    with pytest.raises(DataNotFound, match="boxes"):
        split_boxes(tiny_dataset, "test1")
