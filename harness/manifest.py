"""The manifest every score carries: what produced it, so it can be reproduced or refused.

    manifest = build_manifest(ds=ds, recipe=recipe, subset_sha256=sha, seeds=[0, 1, 2],
                              libraries=("numpy", "torch", "timm"), device="cpu (2 threads)",
                              wall_time_s=12.5)

``code_version`` is the git commit of the checkout the harness runs from (``-dirty`` when
tracked files differ from it), else the installed package version. Library versions come
from package metadata, so recording them imports nothing.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.specs import RecipeSpec
from submissions.schemas import Manifest

if TYPE_CHECKING:
    from harness.datasets import Dataset

PACKAGE = "task-datacomp"
# Distribution names as pip knows them, for the short names recipes declare.
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "open_clip": "open_clip_torch", "pillow": "pillow"}


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            sha = _git(root, "rev-parse", "HEAD")
            dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
            return f"{sha}-dirty" if dirty else sha
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return out.stdout.strip()


def library_versions(names: Sequence[str]) -> dict[str, str]:
    """Versions of the named distributions (and Python); "missing" for absent ones."""
    out = {"python": platform.python_version()}
    for name in sorted(set(names)):
        try:
            out[name] = importlib.metadata.version(_DISTRIBUTIONS.get(name, name))
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def build_manifest(
    *,
    ds: Dataset,
    recipe: RecipeSpec,
    subset_sha256: str,
    seeds: Sequence[int],
    libraries: Sequence[str],
    device: str,
    wall_time_s: float,
    executor: str = "inline",
    job_id: str | None = None,
    embedding: tuple[str, str] | None = None,
) -> Manifest:
    """``embedding`` is (set, fingerprint) the score depends on; default: the set ``ds`` read."""
    embedding = embedding or ds.set_record()
    return Manifest(
        code_version=code_version(),
        recipe=recipe.name,
        recipe_version=recipe.version,
        recipe_hash=recipe.config_hash(),
        dataset=ds.spec.name,
        dataset_version=str(ds.manifest.get("dataset_version", ds.spec.version)),
        dataset_manifest_hash=ds.manifest_hash(),
        embedding_set=embedding[0] if embedding else None,
        embedding_fingerprint=embedding[1] if embedding else None,
        subset_sha256=subset_sha256,
        seeds=list(seeds),
        libraries=library_versions(libraries),
        device=device,
        executor=executor,
        job_id=job_id,
        wall_time_s=round(wall_time_s, 3),
        image_cache=ds.image_cache_used,
    )
