"""Images referenced where they are: every named file checked, never copied.

    record = check_images(research_root / "iWildCam" / "train", df["filename"])
    record   # {"root": ".../iWildCam/train", "files": 129809, "bytes": ..., "stat_sha256": ...}

A prepared dataset whose images live outside it records their root in its manifest
(``image_root``); :attr:`harness.datasets.Dataset.image_root` reads it. The record's checksum
covers each file's name and size (not its bytes: hashing 130k camera-trap JPEGs would take
longer than the whole import), so a re-release with changed files still changes the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from harness.datasets.preparers import combined_checksum
from submissions.errors import ConfigError, DataNotFound

SHOW = 10  # missing files named in the message


def safe_relative(name: str) -> PurePosixPath:
    """``name`` as a relative path without ``..``; ConfigError otherwise."""
    rel = PurePosixPath(str(name))
    if not str(name) or rel.is_absolute() or ".." in rel.parts:
        raise ConfigError(f"image filename {name!r} must be a relative path without '..'")
    return rel


def check_images(root: Path, filenames: Iterable[str]) -> dict[str, Any]:
    """Stat every distinct file under ``root``; DataNotFound listing the missing ones."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataNotFound(f"image root {root} is not a directory")
    sizes: dict[str, int] = {}
    missing: list[str] = []
    for name in dict.fromkeys(str(f) for f in filenames):
        try:
            st = os.stat(root / safe_relative(name))
        except OSError:
            missing.append(name)
            continue
        sizes[name] = st.st_size
    if missing:
        raise DataNotFound(
            f"{len(missing)} of {len(sizes) + len(missing)} images named in the tables are "
            f"missing under {root}, e.g. {', '.join(missing[:SHOW])}"
        )
    return {
        "root": str(root),
        "files": len(sizes),
        "bytes": sum(sizes.values()),
        "stat_sha256": combined_checksum({n: str(size) for n, size in sizes.items()})["sha256"],
    }
