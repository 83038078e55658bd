"""Ultralytics, offline and contained: config dir, settings, model building, training.

    model = train_yolo(params=p, data_yaml=path, run_dir=tmp, nc=10, seed=0, device="cpu",
                       weights_dir=Path("weights"))    # ultralytics YOLO, best weights loaded
    model.predict(paths, imgsz=64, verbose=False)

Ultralytics reads ``YOLO_CONFIG_DIR`` once, at its first import, and writes a settings file
there; left alone it uses ``~/.config/Ultralytics`` and turns on ``sync`` (anonymous usage
events over the network). :func:`import_ultralytics` points the config dir at a private
temporary directory of this process (unless the caller set one), sets ``YOLO_OFFLINE`` so
its online checks answer "offline" without DNS lookups, turns sync off, and puts a local
font where ultralytics would otherwise download Arial.ttf (:func:`_local_fonts`). Training passes
``plots=False`` (plots fetch a font) and never asks for fp16 AMP (its self-check loads
``yolo26n.pt`` from the hub); weights are a local file or a model YAML, never a download.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from submissions.errors import ConfigError, DataNotFound

if TYPE_CHECKING:
    from harness.recipes.params import DetectionParams

log = logging.getLogger(__name__)


def import_ultralytics() -> Any:
    """The ``ultralytics`` module, configured to stay offline and out of the home directory."""
    import sys

    if "ultralytics" not in sys.modules:
        if not os.environ.get("YOLO_CONFIG_DIR"):
            os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="tdc-ultralytics-")
        # ultralytics imports matplotlib, which would otherwise write ~/.config/matplotlib.
        os.environ.setdefault("MPLCONFIGDIR", os.environ["YOLO_CONFIG_DIR"])
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_VERBOSE", "False")
    import ultralytics
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    if SETTINGS.get("sync"):
        SETTINGS.update({"sync": False})
    _local_fonts(Path(USER_CONFIG_DIR))
    _keep_pil_open()
    return ultralytics


def _keep_pil_open() -> None:
    """Undo ultralytics' replacement of ``PIL.Image.open``: for an image PIL cannot read, its
    wrapper pip-installs pi-heif (a download at run time) and then raises ModuleNotFoundError
    instead of PIL's UnidentifiedImageError, so a corrupt image in the same process (the image
    cache, a recipe's loader) would no longer be named as such. No dataset here is HEIF."""
    from PIL import Image
    from ultralytics.utils import patches

    original = getattr(patches, "_image_open", None)
    if original is not None:
        Image.open = original


def _local_fonts(config_dir: Path) -> None:
    """Put a font where ultralytics looks before downloading one.

    Every dataset check (``check_det_dataset``) calls ``check_font("Arial.ttf")``, which
    fetches the file from GitHub unless it is in the config dir; the font only labels plots.
    matplotlib's bundled DejaVu Sans stands in for it.
    """
    import shutil

    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (config_dir / name).exists():
            shutil.copyfile(source, config_dir / name)


def model_source(params: DetectionParams, *, nc: int, run_dir: Path, weights_dir: Path) -> str:
    """What ``YOLO(...)`` is built from: a (rescaled) model YAML in ``run_dir`` or local weights."""
    import yaml

    if params.model.endswith(".pt"):
        path = Path(params.model)
        path = path if path.is_absolute() else Path(weights_dir) / path
        if not path.is_file():
            raise DataNotFound(
                f"YOLO weights not found: {path} (put them under TDC_WEIGHTS_DIR; nothing is "
                "downloaded) or use a model YAML such as yolov8n.yaml"
            )
        return str(path.resolve())
    import_ultralytics()
    from ultralytics.nn.tasks import yaml_model_load

    try:
        cfg = yaml_model_load(params.model)
    except FileNotFoundError:
        raise ConfigError(f"unknown YOLO model YAML {params.model!r}") from None
    cfg["nc"] = nc
    if params.scale is not None:
        # One scale letter, so ultralytics uses exactly these multipliers.
        cfg["scales"] = {"n": list(params.scale)}
        cfg["scale"] = "n"
    out = run_dir / "model.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(out)


def train_yolo(
    *,
    params: DetectionParams,
    data_yaml: Path,
    run_dir: Path,
    nc: int,
    seed: int,
    device: str,
    weights_dir: Path,
) -> Any:
    """Train; returns the ultralytics YOLO object holding the best weights (in memory)."""
    import_ultralytics()
    from ultralytics import YOLO

    model = YOLO(model_source(params, nc=nc, run_dir=run_dir, weights_dir=weights_dir))
    on_cuda = device.startswith("cuda")
    extra: dict[str, Any] = {"lr0": params.lr0} if params.lr0 is not None else {}
    model.train(
        data=str(data_yaml),
        epochs=params.epochs,
        imgsz=params.image_size,
        batch=params.batch_size,
        optimizer=params.optimizer,
        warmup_epochs=params.warmup_epochs,
        mosaic=params.mosaic,
        close_mosaic=0,
        fliplr=params.fliplr,
        patience=params.patience,
        device=0 if on_cuda else "cpu",
        workers=params.workers,
        amp="bf16" if (params.amp and on_cuda) else False,
        seed=seed,
        deterministic=True,
        plots=False,
        val=params.val,
        project=str(run_dir),
        name="train",
        exist_ok=True,
        verbose=False,
        **extra,
    )
    return model


def val_predictions(
    model: Any, *, data_yaml: Path, params: DetectionParams, device: str, run_dir: Path
) -> dict[str, Any]:
    """Image stem -> (k, 6) x1, y1, x2, y2 (normalised), conf, cls of every image of the
    ``val`` entry of ``data_yaml``, made by ultralytics' validation protocol.

    That protocol (multi-label NMS at ``conf``, ``nms_iou``, ``max_det``; letterboxed
    rectangular batches) is how published YOLO mAPs are measured; ``YOLO.predict`` keeps one
    class per box and scores lower. Ultralytics' own metrics of the run are discarded: the
    captured detections are scored by harness.recipes.detection.detection_scores.
    """
    import numpy as np

    import_ultralytics()
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils import ops

    captured: dict[str, Any] = {}

    class Capture(DetectionValidator):  # type: ignore[misc]
        def update_metrics(self, preds: list[dict[str, Any]], batch: dict[str, Any]) -> None:
            for si, pred in enumerate(preds):
                pb = self._prepare_batch(si, batch)
                boxes: Any = ops.scale_boxes(
                    pb["imgsz"], pred["bboxes"].clone(), pb["ori_shape"], pb["ratio_pad"]
                )
                h, w = pb["ori_shape"]
                xyxyn = boxes.cpu().numpy().reshape(-1, 4) / np.array([w, h, w, h])
                conf, cls = pred["conf"].cpu().numpy(), pred["cls"].cpu().numpy()
                captured[Path(pb["im_file"]).stem] = np.column_stack([xyxyn, conf, cls])
            super().update_metrics(preds, batch)

    model.val(
        validator=Capture,
        data=str(data_yaml),
        split="val",
        imgsz=params.image_size,
        batch=params.batch_size,
        conf=params.conf,
        iou=params.nms_iou,
        max_det=params.max_det,
        device=0 if device.startswith("cuda") else "cpu",
        workers=params.workers,
        plots=False,
        save_json=False,
        project=str(run_dir),
        name="val",
        exist_ok=True,
        verbose=False,
    )
    return captured
