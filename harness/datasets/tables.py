"""Source tables -> benchmark splits, by the dataset's ``table`` section (data, not code).

    splits, notes = convert_tables(spec, raw, on_missing_label="drop")
    notes["dropped"]       # {"train": {"rows": 3, "first_uids": [...]}}: rows without a label

What it does, in order, for every split:

- source columns mapped onto ``uid`` / ``label`` / ``filename`` (``table.columns``);
- rows without a label dropped and counted (or refused with ``on_missing_label="error"``);
- captions from the research templates over the *source* columns (``table.captions``), so
  a template may name a column that is renamed (SelfDrivingCar's ``{steering}``);
- labels as the research has them: class ids kept exactly (``2.0`` -> ``2``, never
  renumbered) with names from ``table.label_names``; class-name strings get sorted integer
  ids; regression targets stay floats; reid identities (``table.identity`` columns
  combined) get sorted integer ids;
- UIDs kept exactly as strings and checked unique across every split.

Detection boxes are read by :mod:`harness.datasets.boxes` after the images are found.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from harness.specs import DatasetSpec, TableSpec
from submissions.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

MissingLabel = Literal["drop", "error"]
SHOW = 5  # UIDs named in a message


def convert_tables(
    spec: DatasetSpec, raw: Mapping[str, pd.DataFrame], *, on_missing_label: MissingLabel
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The benchmark splits of ``raw`` (split -> source table) and notes for the manifest."""
    table = spec.table
    splits: dict[str, pd.DataFrame] = {}
    dropped: dict[str, Any] = {}
    for name, df in raw.items():
        df = _check_columns(spec, name, df)
        df, missing = _drop_unlabeled(spec, name, df, on_missing_label)
        if missing:
            dropped[name] = {"rows": len(missing), "first_uids": missing[:SHOW]}
        if table.captions is not None:
            df["caption"] = fill_template(table.captions.label, df, where=f"{name}: captions.label")
            df["caption_nolabel"] = fill_template(
                table.captions.nolabel, df, where=f"{name}: captions.nolabel"
            )
        splits[name] = _rename(table, df)
    notes = normalise_labels(spec, splits)
    for df in splits.values():
        add_default_captions(spec, df)
    check_uids(splits)
    if dropped:
        notes["dropped_without_label"] = dropped
    return splits, notes


def _source(table: TableSpec, column: str) -> str:
    return table.columns.get(column, column)


def _check_columns(spec: DatasetSpec, split: str, df: pd.DataFrame) -> pd.DataFrame:
    table = spec.table
    need = [_source(table, "uid"), _source(table, "filename")]
    if table.identity:
        need += list(table.identity)
    elif table.boxes is None:
        need.append(_source(table, "label"))
    if table.label_names:
        need.append(table.label_names)
    df = df.copy()
    for column, value in table.defaults.items():
        df[column] = df[column].fillna(value) if column in df.columns else value
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ConfigError(
            f"{spec.name}/{split}: the table lacks columns {missing} (it has "
            f"{list(df.columns)}); map them in configs/datasets.yaml under "
            f"datasets.{spec.name}.table.columns (e.g. filename: file_path)"
        )
    df[_source(table, "uid")] = df[_source(table, "uid")].astype(str)
    return df


def _drop_unlabeled(
    spec: DatasetSpec, split: str, df: pd.DataFrame, policy: MissingLabel
) -> tuple[pd.DataFrame, list[str]]:
    table = spec.table
    if table.identity:
        columns = [c for c in table.identity if c not in table.defaults]
    else:
        columns = [] if table.boxes else [_source(table, "label")]
    if not columns:
        return df, []
    empty = df[columns].isna().any(axis=1) | df[columns].astype(str).eq("").any(axis=1)
    uids = df.loc[empty, _source(table, "uid")].tolist()
    if uids and policy == "error":
        raise ConfigError(
            f"{spec.name}/{split}: {len(uids)} rows have no label, e.g. {', '.join(uids[:SHOW])} "
            "(--on-missing-label drop leaves them out and reports them)"
        )
    if uids:
        log.warning("%s/%s: dropped %d rows without a label", spec.name, split, len(uids))
    return df.loc[~empty].reset_index(drop=True), uids


def fill_template(template: str, df: pd.DataFrame, *, where: str) -> list[str]:
    """``template.format(**row)`` for every row; unknown fields name the columns there are."""
    fields = {
        f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f
    }
    unknown = sorted(fields - set(df.columns))
    if unknown:
        raise ConfigError(
            f"{where}: template {template!r} names {unknown}, not columns of the table "
            f"(columns: {', '.join(map(str, df.columns))})"
        )
    records = df[sorted(fields)].astype(str).to_dict("records")
    return [template.format(**r) for r in records]


def _rename(table: TableSpec, df: pd.DataFrame) -> pd.DataFrame:
    mapping = {src: dst for dst, src in table.columns.items() if src != dst}
    clash = [dst for src, dst in mapping.items() if dst in df.columns and dst not in mapping]
    if clash:
        raise ConfigError(
            f"the table maps other columns onto {clash}, which it already has; "
            "map the benchmark column to the one you mean"
        )
    return df.rename(columns=mapping)


def normalise_labels(spec: DatasetSpec, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Labels as the task type needs them; returns what the manifest records."""
    if spec.task_type == "detection":
        return {}  # labels come from the boxes
    if spec.task_type == "reid" and spec.table.identity:
        return _identities(spec.table.identity, splits)
    if spec.task_type == "regression":
        for name, df in splits.items():
            df["label"] = _numeric(df["label"], f"{spec.name}/{name}").astype("float64")
        return {}
    return _class_ids(spec, splits)


def _numeric(col: pd.Series, where: str) -> pd.Series:
    import pandas as pd

    out = pd.to_numeric(col, errors="coerce")
    bad = col[out.isna()]
    if len(bad):
        raise ConfigError(f"{where}: label values {list(bad.astype(str).unique()[:SHOW])} "
                          "are not numbers")  # fmt: skip
    return out


def _class_ids(spec: DatasetSpec, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    import pandas as pd

    labels = pd.concat([df["label"] for df in splits.values()])
    numeric = pd.to_numeric(labels, errors="coerce")
    if numeric.notna().all():
        frac = numeric[(numeric % 1) != 0]
        if len(frac):
            raise ConfigError(f"{spec.name}: class labels must be whole numbers; found "
                              f"{list(frac.unique()[:SHOW])}")  # fmt: skip
        for name, df in splits.items():
            df["label"] = _numeric(df["label"], f"{spec.name}/{name}").astype("int64")
        return _names_of_ids(spec, splits)
    names = sorted(labels.astype(str).unique())
    code = {n: i for i, n in enumerate(names)}
    for df in splits.values():
        df["label_name"] = df["label"].astype(str)
        df["label"] = df["label_name"].map(code).astype("int64")
    return {"classes": names}


def _names_of_ids(spec: DatasetSpec, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """``class_names`` {id: name} from the name column; one name per id or a ConfigError."""
    import pandas as pd

    column = spec.table.label_names
    if column is None:
        return {}
    both = pd.concat([df[["label", column]] for df in splits.values()]).drop_duplicates()
    both = both.dropna()
    clash = both[both["label"].duplicated(keep=False)]
    if len(clash):
        ids = sorted(clash["label"].unique().tolist())[:SHOW]
        raise ConfigError(f"{spec.name}: class ids {ids} have several names in column "
                          f"{column!r}; one id, one name")  # fmt: skip
    names = {int(i): str(n) for i, n in zip(both["label"], both[column], strict=True)}
    for df in splits.values():
        df["label_name"] = df["label"].map(names).astype(str)
    return {"class_names": {str(k): names[k] for k in sorted(names)}}


def _identities(columns: tuple[str, ...], splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Reid: one integer per distinct combination of the identity columns, sorted."""
    keys = {
        name: df[list(columns)].astype(str).agg("/".join, axis=1) for name, df in splits.items()
    }
    names = sorted(set().union(*(set(k) for k in keys.values())))
    code = {n: i for i, n in enumerate(names)}
    for name, df in splits.items():
        df["identity_name"] = keys[name].to_numpy()
        df["label"] = keys[name].map(code).astype("int64").to_numpy()
    return {"identities": len(names), "identity_columns": list(columns)}


def add_default_captions(spec: DatasetSpec, df: pd.DataFrame) -> None:
    """Template captions when there are none; the label-free one names no class."""
    if "caption" in df.columns and "caption_nolabel" in df.columns:
        return
    if spec.task_type in ("regression", "detection"):
        df["caption"] = "a photo"
    elif "label_name" in df.columns:
        df["caption"] = [f"a photo of a {n}" for n in df["label_name"]]
    else:
        df["caption"] = [f"a photo of class {c}" for c in df["label"]]
    df["caption_nolabel"] = "a photo"


def check_uids(splits: Mapping[str, pd.DataFrame]) -> None:
    import pandas as pd

    owner = pd.concat([df["uid"] for df in splits.values()], ignore_index=True)
    dup = owner[owner.duplicated()].unique()
    if len(dup):
        raise ConfigError(
            f"{len(dup)} UIDs occur twice across or within splits, e.g. {', '.join(dup[:SHOW])}"
        )
    empty = owner[owner.str.len() == 0]
    if len(empty):
        raise ConfigError(f"{len(empty)} rows have an empty uid")
