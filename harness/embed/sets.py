"""Named embedding sets: identity, fingerprint, listing, checking before use, publishing.

    info = check_set(ds)                     # the default set, checked against the spec
    ds = open_dataset(spec, data_root=root, embeddings="research")   # Dataset.open + check_set
    for s in list_sets(ds): print(s.name, s.fingerprint, s.state)

A set's **identity** is what decides its vectors: the embedder, its params (less the runtime
ones such as ``batch_size``) and its weights (a checkpoint's sha256, or the sha256 of the
imported files). Its **fingerprint** is the first 16 hex digits of the identity's sha256;
every result manifest records it. Using a set is refused when it is incomplete, was made for
another preparation of the dataset, or its embedder or params differ from what
``configs/datasets.yaml`` declares for that name (sets the spec does not declare, such as an
import, are used as they are). A finished set is *published*: renamed from
``embeddings/.building/<name>`` to ``embeddings/<name>``; a set already there is kept, renamed
to ``<name>@<fingerprint>``, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

import numpy.typing as npt
from pydantic import BaseModel

from harness.datasets.dataset import Dataset, DatasetDir, SetDir
from harness.embed.base import RUNTIME_PARAMS, EmbeddingStore, get_embedder
from harness.specs import DatasetSpec, EmbeddingSpec, format_validation
from submissions.errors import ConfigError, DataNotFound

log = logging.getLogger(__name__)

BUILDING = ".building"
SETS_FORMAT = 2


def identity(embedder: str, params: BaseModel | dict[str, Any], weights: Any) -> dict[str, Any]:
    """What decides a set's vectors (see the module docstring)."""
    values = params.model_dump(mode="json") if isinstance(params, BaseModel) else dict(params)
    kept = {k: v for k, v in sorted(values.items()) if k not in RUNTIME_PARAMS}
    return {"embedder": embedder, "params": kept, "weights": weights}


def fingerprint(ident: dict[str, Any]) -> str:
    blob = json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class SetInfo:
    """One set on disk, as its manifest describes it."""

    name: str
    manifest: dict[str, Any]
    declared: bool
    state: str  # "ok", "stale", "differs from spec", "incomplete", "superseded"

    @property
    def fingerprint(self) -> str:
        return str(self.manifest.get("fingerprint", "?"))

    @property
    def kinds(self) -> list[str]:
        return list(self.manifest.get("kinds", []))


def same_set(manifest: dict[str, Any] | None, head: dict[str, Any]) -> TypeGuard[dict[str, Any]]:
    """True when ``manifest`` is of the set ``head`` describes (:func:`head_of`): the same
    identity, made for the same preparation of the dataset."""
    keys = ("fingerprint", "dataset_manifest")
    return manifest is not None and all(manifest.get(k) == head[k] for k in keys)


def declared_identity(spec: DatasetSpec, name: str) -> tuple[str, dict[str, Any]] | None:
    """(embedder, params less runtime ones) the spec declares for set ``name``, else None."""
    if spec.embeddings is None or name not in spec.embeddings.sets:
        return None
    es = spec.embeddings.sets[name]
    ident = identity(es.embedder, validated_params(spec.name, name, es), None)
    return ident["embedder"], ident["params"]


def validated_params(dataset: str, name: str, es: EmbeddingSpec) -> BaseModel:
    """The declared set's params, checked by its embedder's model (ConfigError with the keys)."""
    from pydantic import ValidationError

    entry = get_embedder(es.embedder)
    try:
        return entry.params.model_validate(es.params)
    except ValidationError as err:
        where = f"datasets.{dataset}.embeddings.sets.{name}.params"
        path = Path("configs/datasets.yaml")
        raise ConfigError(format_validation(path, where, err, entry.params)) from None


def state_of(ds: Dataset, name: str, manifest: dict[str, Any]) -> str:
    if "@" in name:
        return "superseded"
    if manifest.get("status") != "complete":
        return "incomplete"
    if manifest.get("dataset_manifest") != ds.manifest_hash():
        return "stale"
    want = declared_identity(ds.spec, name)
    have = manifest.get("identity", {})
    if want is not None and (have.get("embedder"), have.get("params")) != want:
        return "differs from spec"
    return "ok"


def list_sets(ds: Dataset) -> list[SetInfo]:
    """Every set directory with a manifest, default first, then by name."""
    root = ds.dir.embeddings_root
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []  # fmt: skip
    declared = set(ds.spec.embeddings.sets) if ds.spec.embeddings else set()
    out = []
    for d in dirs:
        manifest = SetDir(d).read_manifest()
        if manifest is not None:
            state = state_of(ds, d.name, manifest)
            out.append(SetInfo(d.name, manifest, d.name in declared, state))
    default = ds.spec.embeddings.default if ds.spec.embeddings else None
    return sorted(out, key=lambda s: (s.name != default, s.name))


def set_ready(ds: Dataset) -> bool:
    """True when the set ``ds`` reads is published and complete (usable or not)."""
    manifest = ds.dir.embedding_set(ds.set_name).read_manifest()
    return manifest is not None and manifest.get("status") == "complete"


def check_set(ds: Dataset) -> SetInfo:
    """The set ``ds`` reads, if it may be used; a TdcError that says how to fix it if not."""
    name = ds.set_name
    manifest = ds.dir.embedding_set(name).read_manifest()
    spec = ds.spec
    if manifest is None:
        here = ", ".join(s.name for s in list_sets(ds)) or "none"
        declared = spec.embeddings is not None and name in spec.embeddings.sets
        how = f"tdc-harness embed {spec.name} --set {name}" + (
            "" if declared else " --import DIR --format research"
        )
        raise DataNotFound(
            f"embedding set {name!r} of {spec.name} is not on disk (sets here: {here}); "
            f"make it with `{how}`"
        )
    state = state_of(ds, name, manifest)
    if state == "stale":
        raise ConfigError(
            f"embedding set {name!r} of {spec.name} was made for an earlier preparation of the "
            f"dataset (manifest {manifest.get('dataset_manifest')}, now {ds.manifest_hash()}); "
            f"re-make it with `tdc-harness embed {spec.name} --set {name}` (the old set is kept)"
        )
    if state == "differs from spec":
        want = declared_identity(spec, name)
        have = manifest.get("identity", {})
        raise ConfigError(
            f"embedding set {name!r} of {spec.name} was made by {have.get('embedder')} "
            f"{have.get('params')}, but configs/datasets.yaml declares {want[0] if want else '?'} "
            f"{want[1] if want else ''}; re-make it with `tdc-harness embed {spec.name} --set "
            f"{name}` (the old set is kept as {name}@{manifest.get('fingerprint')}) or declare the "
            "new configuration under another set name"
        )
    if state != "ok":
        raise DataNotFound(f"embedding set {name!r} of {spec.name} is {state}")
    return SetInfo(name, manifest, bool(spec.embeddings and name in spec.embeddings.sets), state)


def open_dataset(spec: DatasetSpec, *, data_root: Path, embeddings: str | None = None) -> Dataset:
    """``Dataset.open`` whose embedding set (``embeddings`` or the default) is checked by
    :func:`check_set` before the first embedding is read."""
    ds = Dataset.open(spec, data_root=data_root, embeddings=embeddings)
    ds.verify_set = check_set
    return ds


def building_dir(ddir: DatasetDir, name: str) -> SetDir:
    return SetDir(ddir.embeddings_root / BUILDING / name)


def publish(ddir: DatasetDir, name: str) -> str | None:
    """Rename the finished scratch set into place; returns where an older one was kept."""
    src, dst = building_dir(ddir, name).root, ddir.embedding_set(name).root
    kept = None
    if dst.exists():
        old = SetDir(dst).read_manifest() or {}
        aside = dst.with_name(f"{name}@{old.get('fingerprint', 'unknown')}")
        while aside.exists():
            aside = aside.with_name(aside.name + "+")
        os.replace(dst, aside)
        kept = aside.name
        log.warning("kept the previous embedding set %r as %r", name, kept)
    os.replace(src, dst)
    if not any(src.parent.iterdir()):
        src.parent.rmdir()
    return kept


def start_building(ddir: DatasetDir, name: str, head: dict[str, Any]) -> SetDir:
    """The scratch dir for set ``name``: resumed when it was building the same thing."""
    sdir = building_dir(ddir, name)
    if sdir.root.exists() and not same_set(sdir.read_manifest(), head):
        shutil.rmtree(sdir.root)  # an unfinished build of something else: this command's own
    EmbeddingStore(sdir).write_manifest({**head, "status": "building"})
    return sdir


def head_of(ds: Dataset, name: str, ident: dict[str, Any]) -> dict[str, Any]:
    """The manifest fields that say which set this is."""
    return {
        "format": SETS_FORMAT,
        "name": name,
        "embedder": ident["embedder"],
        "identity": ident,
        "fingerprint": fingerprint(ident),
        "dataset": ds.spec.name,
        "dataset_manifest": ds.manifest_hash(),
    }


def finish_set(ds: Dataset, sdir: SetDir, head: dict[str, Any]) -> dict[str, Any]:
    """Check the scratch set row by row, write its manifest and publish it."""
    import numpy as np

    store = EmbeddingStore(sdir)
    kinds = None
    for split in ds.spec.split_names():
        stored = np.load(sdir.uids_path(split), allow_pickle=False)
        if not np.array_equal(stored, ds.uids(split)):
            raise RuntimeError(f"embeddings of {ds.spec.name}/{split} are not in UID order")
        if kinds is not None and store.kinds(split) != kinds:
            raise RuntimeError(f"split {split} has kinds {store.kinds(split)}, others {kinds}")
        kinds = store.kinds(split)
    manifest = {
        **head,
        "status": "complete",
        "kinds": kinds,
        "pool": ds.spec.pool,
        "clip_score_mean": store.write_pool_scores(ds.spec.pool),
        "splits": {s: store.split_summary(s) for s in ds.spec.split_names()},
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    store.write_manifest(manifest)
    kept = publish(ds.dir, head["name"])
    log.info("embedding set %s of %s published (fingerprint %s)", head["name"], ds.spec.name,
             head["fingerprint"])  # fmt: skip
    return {**manifest, "kept_previous_as": kept} if kept else manifest


def write_set(
    ds: Dataset,
    name: str,
    arrays: Mapping[str, Mapping[str, npt.NDArray[Any]]],
    *,
    ident: dict[str, Any],
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Publish set ``name`` from in-memory arrays ({split: {kind: rows}}), e.g. test data;
    returns its manifest."""
    head = head_of(ds, name, ident)
    store = EmbeddingStore(start_building(ds.dir, name, head))
    for split in ds.spec.split_names():
        store.write_split(split, arrays[split], uids=ds.uids(split))
    return finish_set(ds, store.sdir, {**head, "details": details or {}})
