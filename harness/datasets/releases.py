"""Deterministic builders from public releases: ``tdc-harness prepare NAME --release DIR``.

    release:                                   # configs/datasets.yaml, per dataset
      builder: wilds_iwildcam
      params: {query_size: 500, tasks: {test1: {largest: {split: id_test, rank: 1}}, ...}}

Each builder reads the release's own metadata, turns it into tables with the research
group's column names (so the dataset's ``table`` section, captions included, applies
unchanged), assigns rows to the pool and to every task's query and test split by the rule
its params spell out, and hands the tables to :func:`build_from_tables` (images stay in the
release). The rule and its parameters go into the manifest under ``release``.

- ``wilds_iwildcam`` (WILDS ``iwildcam_v2.0``: ``metadata.csv``, ``categories.csv``, images
  under ``train/``): a deployment is a set of camera locations (``location_remapped`` ids,
  or the ``rank``-th largest location of a WILDS split); query = its earliest
  ``query_size`` images by ``datetime``, test = the rest; pool = the other locations' images
  of WILDS' ``train`` split.
- ``wilds_fmow`` (WILDS ``fmow_v1.1``: ``rgb_metadata.csv``, ``country_code_mapping.csv``,
  ``images/rgb_img_<row>.png``): a deployment is a region and a range of years; query = its
  earliest ``query_size`` images, test = the rest; pool = every other image in
  ``pool_years``. ``seq`` rows are left out but keep their row numbers (image names).
- ``geode_index`` (GeoDE ``index.csv``, images under ``images/``): a deployment is a region;
  its images in a seeded order give the query (``query_size``) and test (``test_size``)
  sets, and the rest of the region joins the pool with the other regions.

UIDs are the first 16 hex digits of ``sha256("<dataset>/<the release's own image key>")``:
stable across rebuilds, and they name no label, split or region.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.datasets.dataset import DatasetDir, sha256_file
from harness.datasets.preparers import PREPARERS, PrepareOptions
from harness.datasets.table_release import build_from_tables
from harness.settings import HarnessSettings
from harness.specs import DatasetSpec, format_validation
from submissions.errors import ConfigError, DataNotFound

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Largest(_Params):
    split: str = Field(description="the WILDS split whose locations are ranked by image count")
    rank: int = Field(ge=1, description="1 = the location with the most images there")


class IWildCamTask(_Params):
    locations: tuple[int, ...] = ()
    largest: Largest | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> IWildCamTask:
        if bool(self.locations) == (self.largest is not None):
            raise ValueError("give either `locations` or `largest`")
        return self


class IWildCamParams(_Params):
    query_size: int = Field(500, gt=0)
    tasks: dict[str, IWildCamTask]


class FmowTask(_Params):
    region: str
    years: tuple[int, int]


class FmowParams(_Params):
    query_size: int = Field(500, gt=0)
    pool_years: tuple[int, int] = (2002, 2012)
    tasks: dict[str, FmowTask]


class GeodeTask(_Params):
    region: str


class GeodeParams(_Params):
    query_size: int = Field(500, gt=0)
    test_size: int = Field(1600, gt=0)
    seed: int = 0
    tasks: dict[str, GeodeTask]


def release_params(spec: DatasetSpec, model: type[_Params]) -> Any:
    """The spec's release params, validated; every task of the spec must have a rule."""
    assert spec.release is not None  # choose_preparer only picks a builder the spec names
    try:
        params = model.model_validate(spec.release.params)
    except ValidationError as err:
        where = f"datasets.{spec.name}.release.params"
        raise ConfigError(
            format_validation(Path("configs/datasets.yaml"), where, err, model)
        ) from None
    missing = sorted(set(spec.task_names()) - set(params.tasks))  # type: ignore[attr-defined]
    if missing:
        raise ConfigError(f"datasets.{spec.name}.release.params.tasks lacks rules for {missing}")
    return params


def opaque_uids(dataset: str, keys: pd.Series) -> list[str]:
    return [hashlib.sha256(f"{dataset}/{k}".encode()).hexdigest()[:16] for k in keys]


def need_files(root: Path, names: tuple[str, ...], what: str) -> None:
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DataNotFound(f"{root} is not {what}: {', '.join(missing)} missing")


def earliest_split(
    spec: DatasetSpec, rows: dict[str, pd.DataFrame], *, order: str, query_size: int
) -> dict[str, pd.DataFrame]:
    """Each task's rows -> query (earliest ``query_size`` by ``order``) and test (the rest)."""
    out = {}
    for task in spec.tasks:
        df = rows[task.name].sort_values([order, "uid"], kind="stable").reset_index(drop=True)
        if len(df) <= query_size:
            raise ConfigError(f"{spec.name}/{task.name}: {len(df)} images, not more than the "
                              f"query size {query_size}; widen the deployment")  # fmt: skip
        out[task.query], out[task.test] = df.iloc[:query_size], df.iloc[query_size:]
    return out


def write_release(
    spec: DatasetSpec,
    *,
    out: DatasetDir,
    tables: dict[str, pd.DataFrame],
    image_root: Path,
    options: PrepareOptions,
    files: dict[str, Path],
    rule: str,
) -> None:
    record = {
        "builder": spec.release.builder if spec.release else "",
        "params": spec.release.params if spec.release else {},
        "rule": rule,
        "files_sha256": {name: sha256_file(p) for name, p in files.items()},
    }
    raw = {name: tables[name].reset_index(drop=True) for name in spec.split_names()}
    build_from_tables(spec, out=out, raw=raw, image_root=image_root, options=options,
                      extra={"preparer": record["builder"], "release": record})  # fmt: skip


def iwildcam_tables(root: Path) -> pd.DataFrame:
    import pandas as pd

    need_files(root, ("metadata.csv", "categories.csv"), "a WILDS iwildcam_v2.0 release")
    meta = pd.read_csv(root / "metadata.csv", index_col=0)
    cats = pd.read_csv(root / "categories.csv")
    names = dict(zip(cats["y"], cats["name"], strict=True))
    return meta.assign(
        uid=opaque_uids("iwildcam", meta["image_id"]),
        label=meta["y"].astype("int64"),
        category_name=meta["y"].map(names),
        date=meta["datetime"].astype(str).str[:10],
    )


def iwildcam_locations(meta: pd.DataFrame, task: IWildCamTask) -> set[int]:
    if task.locations:
        return set(task.locations)
    assert task.largest is not None
    counts = meta.loc[meta["split"] == task.largest.split, "location_remapped"].value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if task.largest.rank > len(ranked):
        raise ConfigError(f"WILDS split {task.largest.split!r} has {len(ranked)} locations, "
                          f"no rank {task.largest.rank}")  # fmt: skip
    return {int(ranked[task.largest.rank - 1][0])}


@PREPARERS.register("wilds_iwildcam")
def build_iwildcam(
    spec: DatasetSpec, *, out: DatasetDir, settings: HarnessSettings, source: Path | None,
    options: PrepareOptions,
) -> None:  # fmt: skip
    """WILDS iWildCam v2.0 -> deployments of camera locations (see the module docstring)."""
    del settings
    root = Path(source or ".").expanduser()
    params: IWildCamParams = release_params(spec, IWildCamParams)
    meta = iwildcam_tables(root)
    locs = {t.name: iwildcam_locations(meta, params.tasks[t.name]) for t in spec.tasks}
    taken = set().union(*locs.values())
    if len(taken) < sum(len(v) for v in locs.values()):
        raise ConfigError(f"{spec.name}: tasks share camera locations {locs}; one camera, one task")
    rows = {name: meta[meta["location_remapped"].isin(ls)] for name, ls in locs.items()}
    tables = earliest_split(spec, rows, order="datetime", query_size=params.query_size)
    tables[spec.pool] = meta[(meta["split"] == "train") & ~meta["location_remapped"].isin(taken)]
    rule = ("deployment = camera locations " + "; ".join(f"{k}: {sorted(v)}" for k, v in
            locs.items()) + f"; query = earliest {params.query_size} by datetime, test = the "
            "rest; pool = WILDS train images of every other location")  # fmt: skip
    write_release(spec, out=out, tables=tables, image_root=root / "train", options=options,
                  files={"metadata.csv": root / "metadata.csv",
                         "categories.csv": root / "categories.csv"}, rule=rule)  # fmt: skip


def fmow_tables(root: Path) -> pd.DataFrame:
    import pandas as pd

    need_files(root, ("rgb_metadata.csv", "country_code_mapping.csv"), "a WILDS fmow_v1.1 release")
    meta = pd.read_csv(root / "rgb_metadata.csv")
    mapping = pd.read_csv(root / "country_code_mapping.csv")
    regions = dict(zip(mapping["alpha-3"], mapping["region"], strict=True))
    ts = pd.to_datetime(meta["timestamp"], utc=True, format="ISO8601")
    meta = meta.assign(
        row=np.arange(len(meta)),
        img_path=[f"images/rgb_img_{i}.png" for i in range(len(meta))],
        region=meta["country_code"].map(regions).fillna("Other"),
        year=ts.dt.year,
        order=ts,
        label=meta["category"],
    )
    meta = meta[meta["split"] != "seq"]  # sequestered by WILDS; still counted in image names
    return meta.assign(uid=opaque_uids("fmow", meta["row"]))


@PREPARERS.register("wilds_fmow")
def build_fmow(
    spec: DatasetSpec, *, out: DatasetDir, settings: HarnessSettings, source: Path | None,
    options: PrepareOptions,
) -> None:  # fmt: skip
    """WILDS FMoW v1.1 -> deployments of a region and years (see the module docstring)."""
    del settings
    root = Path(source or ".").expanduser()
    params: FmowParams = release_params(spec, FmowParams)
    meta = fmow_tables(root)

    def within(years: tuple[int, int]) -> pd.Series:
        return meta["year"].between(*years)

    masks = {t.name: (meta["region"] == params.tasks[t.name].region)
             & within(params.tasks[t.name].years) for t in spec.tasks}  # fmt: skip
    deployed = np.logical_or.reduce([m.to_numpy() for m in masks.values()])
    tables = earliest_split(spec, {k: meta[m] for k, m in masks.items()}, order="order",
                            query_size=params.query_size)  # fmt: skip
    tables[spec.pool] = meta[within(params.pool_years).to_numpy() & ~deployed]
    rule = ("deployment = region x years " + "; ".join(
        f"{k}: {t.region} {t.years[0]}-{t.years[1]}" for k, t in params.tasks.items())
        + f"; query = earliest {params.query_size} by timestamp, test = the rest; pool = "
        f"every other image of {params.pool_years[0]}-{params.pool_years[1]}")  # fmt: skip
    files = {n: root / n for n in ("rgb_metadata.csv", "country_code_mapping.csv")}
    write_release(spec, out=out, tables={k: v.drop(columns="order") for k, v in tables.items()},
                  image_root=root, options=options, files=files, rule=rule)  # fmt: skip


@PREPARERS.register("geode_index")
def build_geode(
    spec: DatasetSpec, *, out: DatasetDir, settings: HarnessSettings, source: Path | None,
    options: PrepareOptions,
) -> None:  # fmt: skip
    """GeoDE -> one deployment per region (see the module docstring)."""
    import pandas as pd

    del settings
    root = Path(source or ".").expanduser()
    need_files(root, ("index.csv",), "a GeoDE release")
    params: GeodeParams = release_params(spec, GeodeParams)
    index = pd.read_csv(root / "index.csv")
    index = index.assign(uid=opaque_uids("geode", index["file_path"]), label=index["object"])
    order = np.random.default_rng(params.seed).permutation(len(index))
    index = index.iloc[order].reset_index(drop=True)  # the seeded order every cut follows
    tables: dict[str, pd.DataFrame] = {}
    leftovers = [index[~index["region"].isin([t.region for t in params.tasks.values()])]]
    for task in spec.tasks:
        rows = index[index["region"] == params.tasks[task.name].region]
        q, t = params.query_size, params.test_size
        if len(rows) <= q + t:
            raise ConfigError(f"GeoDE region {params.tasks[task.name].region!r} has {len(rows)} "
                              f"images, not more than query + test = {q + t}")  # fmt: skip
        tables[task.query], tables[task.test] = rows.iloc[:q], rows.iloc[q : q + t]
        leftovers.append(rows.iloc[q + t :])
    tables[spec.pool] = pd.concat(leftovers).sort_values("uid")
    regions = ", ".join(f"{k}: {t.region}" for k, t in params.tasks.items())
    rule = (
        f"deployment = region ({regions}); in a seeded order (seed {params.seed}) query = first "
        f"{params.query_size}, test = next {params.test_size}; pool = the rest of every region"
    )
    write_release(spec, out=out, tables=tables, image_root=root / "images", options=options,
                  files={"index.csv": root / "index.csv"}, rule=rule)  # fmt: skip


# Each builder's params model, for config checks (tests/harness/test_specs.py).
RELEASE_PARAMS: dict[str, type[_Params]] = {
    "wilds_iwildcam": IWildCamParams,
    "wilds_fmow": FmowParams,
    "geode_index": GeodeParams,
}
