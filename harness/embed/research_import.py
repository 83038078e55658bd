"""Import the research group's embedding files as a named set (``embed --import``).

    tdc-harness embed iWildCam --import /research/all_datasets/iWildCam/embeddings \\
        --set research --format research --trust-pickle
    import_research_set(ds=ds, source=Path(...), set_name="research", trust_pickle=True)

The research code writes, per split (``train``, ``val1``, ``test1``, ...):

- ``{split}_image_label_embed.npz``: ``features`` (float16, not normalised), ``labels``,
  ``uids`` -> kind ``image_raw`` (as it is, for the research linear probe) and, without the
  file below, ``image`` (L2-normalised);
- ``{split}_embeddings.npy``: a pickled object array of dicts (``image_embedding``,
  ``text_embedding``, ``similarity_score``, ``text``, ``uid``) -> ``image`` and ``text``
  (captions that name the class: there is no label-free twin, so methods that need
  ``text_nolabel`` refuse this set). Unpickling runs code from the file: it needs
  ``trust_pickle`` (the organizer's own files only; never on a server or participant path).

Rows are matched to our splits by UID; a UID of ours missing from a file fails the import
naming it, UIDs the file has beyond ours (e.g. rows dropped for a missing label) are counted
and named in the manifest. The set's weights fingerprint is the sha256 of the files read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, NoReturn

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from harness.datasets.dataset import Dataset, sha256_file
from harness.datasets.preparers import combined_checksum
from harness.embed.base import EmbeddingStore, l2_normalise, register
from harness.embed.sets import (
    finish_set,
    head_of,
    identity,
    same_set,
    start_building,
    validated_params,
)
from harness.specs import check_set_name
from submissions.errors import ConfigError, DataNotFound

log = logging.getLogger(__name__)

SHOW = 5
Arrays = dict[str, npt.NDArray[Any]]


class ImportedParams(BaseModel):
    """How an imported set is declared in datasets.yaml (nothing is computed from it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["research"] = "research"
    model: str = Field("", description="what made the vectors, e.g. 'CLIP ViT-B/32 (OpenAI)'")


def refuse_compute(*args: Any, **kwargs: Any) -> NoReturn:
    """Both hooks of the ``imported`` embedder (``embed_dataset`` asks for the weights first)."""
    raise ConfigError(
        "an `imported` set is brought in, not computed: `tdc-harness embed NAME --import DIR "
        "--set SET --format research`"
    )


register("imported", params=ImportedParams, description="files brought in with --import",
         weights=refuse_compute)(refuse_compute)  # fmt: skip


def npz_path(source: Path, split: str) -> Path:
    return source / f"{split}_image_label_embed.npz"


def npy_path(source: Path, split: str) -> Path:
    return source / f"{split}_embeddings.npy"


def import_research_set(
    *,
    ds: Dataset,
    source: Path,
    set_name: str,
    trust_pickle: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Import every split's research files into set ``set_name``; returns its manifest."""
    check_set_name(set_name)
    params = declared_import(ds, set_name)
    files = find_files(ds, Path(source).expanduser())
    if any(p.suffix == ".npy" for p in files.values()) and not trust_pickle:
        raise ConfigError(
            f"{source} holds *_embeddings.npy files: pickled object arrays, and unpickling runs "
            "code from the file. If they are your own files, pass --trust-pickle; otherwise "
            "remove them to import only the *_image_label_embed.npz features"
        )
    digests = {p.name: sha256_file(p) for p in files.values()}
    weights = combined_checksum(digests)["sha256"]
    head = head_of(ds, set_name, identity("imported", params, weights))
    current = ds.dir.embedding_set(set_name).read_manifest()
    if not force and same_set(current, head):
        log.info("embedding set %s of %s is already these files", set_name, ds.spec.name)
        return current
    if trust_pickle:
        log.warning("loading pickled embedding files from %s (--trust-pickle)", source)
    store = EmbeddingStore(start_building(ds.dir, set_name, head))
    extra = {s: write_split(ds, store, s, files) for s in ds.spec.split_names()}
    found = {s: v for s, v in extra.items() if v["rows"]}
    record = {"source": str(Path(source).resolve()), "files": digests, "extra_uids": found}
    return finish_set(ds, store.sdir, {**head, "details": record})


def declared_import(ds: Dataset, name: str) -> ImportedParams:
    """The set's declared params when the spec declares it as `imported`, else the defaults."""
    sets = ds.spec.embeddings.sets if ds.spec.embeddings else {}
    if name not in sets:
        return ImportedParams()
    if sets[name].embedder != "imported":
        raise ConfigError(
            f"set {name!r} of {ds.spec.name} is declared as computed by {sets[name].embedder!r} "
            "in configs/datasets.yaml; import into another set name"
        )
    params = validated_params(ds.spec.name, name, sets[name])
    assert isinstance(params, ImportedParams)
    return params


def find_files(ds: Dataset, source: Path) -> dict[tuple[str, str], Path]:
    """{(split, "npz"|"npy"): path} of the file kinds every split has (at least one)."""
    if not source.is_dir():
        raise DataNotFound(f"{source} is not a directory of research embedding files")
    splits = ds.spec.split_names()
    candidates = {(s, "npz"): npz_path(source, s) for s in splits}
    candidates |= {(s, "npy"): npy_path(source, s) for s in splits}
    found = {key: p for key, p in candidates.items() if p.is_file()}
    kinds = [k for k in ("npz", "npy") if all((s, k) in found for s in splits)]
    if not kinds:
        lacking = [s for s in splits if not any((s, k) in found for k in ("npz", "npy"))]
        lacking = lacking or [s for s in splits if (s, "npz") not in found]
        raise DataNotFound(
            f"{source}: no complete set of research embedding files; splits without "
            f"{{split}}_image_label_embed.npz or {{split}}_embeddings.npy: {', '.join(lacking)}"
        )
    return {key: path for key, path in found.items() if key[1] in kinds}


def write_split(
    ds: Dataset, store: EmbeddingStore, split: str, files: dict[tuple[str, str], Path]
) -> dict[str, Any]:
    """Match the split's file rows to our UIDs and write them; returns the extra UIDs."""
    ours = ds.uids(split)
    arrays: Arrays = {}
    extra: list[str] = []
    for kind in ("npz", "npy"):
        path = files.get((split, kind))
        if path is None:
            continue
        uids, columns = read_npz(path) if kind == "npz" else read_npy(path)
        rows, extra_here = match_rows(ours, uids, where=path.name)
        arrays.update({k: v[rows] for k, v in columns.items()})
        extra = extra or extra_here
    if "image" not in arrays:
        arrays["image"] = l2_normalise(arrays["image_raw"])
    store.write_split(split, arrays, uids=ours)
    return {"rows": len(extra), "first_uids": extra[:SHOW]}


def read_npz(path: Path) -> tuple[npt.NDArray[Any], Arrays]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("features", "uids") if k not in data.files]
            if missing:
                raise ConfigError(f"{path}: lacks {missing} (has {data.files})")
            return np.asarray(data["uids"]).astype(str), {"image_raw": data["features"]}
    except ValueError as err:
        raise ConfigError(f"{path}: {err} (object arrays are not read from .npz files)") from None


def read_npy(path: Path) -> tuple[npt.NDArray[Any], Arrays]:
    """The research list of dicts -> UIDs, unit image and caption embeddings."""
    records = np.load(path, allow_pickle=True)  # the organizer's own file: --trust-pickle
    if records.dtype != object or not len(records) or not isinstance(records[0], dict):
        raise ConfigError(f"{path}: expected a saved list of dicts (research get_embeddings.py)")
    need = ("uid", "image_embedding", "text_embedding")
    missing = [k for k in need if k not in records[0]]
    if missing:
        raise ConfigError(f"{path}: records lack {missing} (have {sorted(records[0])})")
    uids = np.array([str(r["uid"]) for r in records])
    image = np.stack([np.asarray(r["image_embedding"], np.float32) for r in records])
    text = np.stack([np.asarray(r["text_embedding"], np.float32) for r in records])
    return uids, {"image": image, "text": text}


def match_rows(
    ours: npt.NDArray[np.str_], theirs: npt.NDArray[Any], *, where: str
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Row of ``theirs`` for each of our UIDs; DataNotFound naming our UIDs it lacks."""
    import pandas as pd

    index = pd.Index(theirs)
    if index.has_duplicates:
        dup = index[index.duplicated()].unique()[:SHOW].tolist()
        raise ConfigError(f"{where}: UIDs occur twice, e.g. {', '.join(dup)}")
    rows = index.get_indexer(ours)
    if (rows < 0).any():
        missing = ours[rows < 0]
        raise DataNotFound(
            f"{where}: {len(missing)} UIDs of the split are not in the file, e.g. "
            f"{', '.join(missing[:SHOW])}"
        )
    extra = np.asarray(theirs)[~index.isin(ours)]  # in the file's order
    return rows.astype(np.int64), [str(u) for u in extra]
