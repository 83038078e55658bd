"""Benchmark specs: ``configs/datasets.yaml`` and ``configs/recipes.yaml`` as frozen models.

    specs = load_benchmark(settings.configs_dir)
    demo = specs.dataset("demo")           # UnknownName with suggestions for a typo
    demo.budget(0.1, pool_size=4300)       # -> 430
    recipe = specs.recipe(demo.default_recipe)

A typo anywhere in the YAML fails at load time with the file, the key and the valid keys.
No torch here: specs load in milliseconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.registry import unknown
from submissions.errors import ConfigError

TaskType = Literal["classification", "regression", "detection", "reid"]
RecipeKind = Literal[
    "linear_probe",
    "linear_probe_regression",
    "finetune",
    "lora",
    "detection",
    "reid",
    "fixmatch",
    "oracle",
]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(Frozen):
    """One deployment task: a public query split and a (possibly hidden) test split."""

    name: str
    query: str = Field(description="split name of the task's query set")
    test: str = Field(description="split name of the task's test set")
    description: str = ""
    hidden: bool = Field(False, description="test labels hidden from participants")
    reveal_at: str | None = Field(None, description="ISO time when hidden scores are revealed")


class EmbeddingSpec(Frozen):
    """How one embedding set is made: an embedder and its params (see harness.embed)."""

    embedder: str
    params: dict[str, Any] = Field(default_factory=dict)


SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_set_name(name: str) -> str:
    """A set name is a directory name: letters, digits, ``._-``; no ``/`` or ``@``."""
    if not SET_NAME.match(name):
        raise ConfigError(
            f"embedding set name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return name


class EmbeddingsSpec(Frozen):
    """The dataset's named embedding sets and the one used unless another is asked for."""

    default: str
    sets: dict[str, EmbeddingSpec]

    @model_validator(mode="after")
    def _default_declared(self) -> EmbeddingsSpec:
        for name in self.sets:
            try:
                check_set_name(name)
            except ConfigError as err:
                raise ValueError(str(err)) from None
        if self.default not in self.sets:
            raise ValueError(f"default set {self.default!r} is not among {sorted(self.sets)}")
        return self


class CaptionTemplates(Frozen):
    """Caption templates over the source columns (``str.format`` fields)."""

    label: str = Field(description="the research caption; may name the class")
    nolabel: str = Field(description="its twin that never names the label")


class TableSpec(Frozen):
    """How a dataset's source tables read into the benchmark format: data, not code.

    ``columns`` maps benchmark columns to source columns (``{filename: file_path, label:
    steering}``); ``label_names`` is the source column naming each class id; ``identity``
    (reid) the source columns whose combination is an individual; ``boxes: yolo_files``
    (detection) reads one YOLO label file per image beside it; ``defaults`` fills source
    columns a table lacks or leaves empty (ReID's ``orientation``).
    """

    columns: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, str] = Field(default_factory=dict)
    label_names: str | None = None
    identity: tuple[str, ...] = ()
    captions: CaptionTemplates | None = None
    boxes: Literal["yolo_files"] | None = None

    @field_validator("columns")
    @classmethod
    def _known_targets(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(set(v) - {"uid", "label", "filename"})
        if bad:
            raise ValueError(f"columns maps benchmark columns uid, label, filename; not {bad}")
        return v


class ReleaseSpec(Frozen):
    """A deterministic builder from a public release (``tdc-harness prepare --release``)."""

    builder: str
    params: dict[str, Any] = Field(default_factory=dict)


class DatasetSpec(Frozen):
    """A dataset: one pool, several tasks, allowed fractions, default recipe and metric."""

    name: str
    task_type: TaskType
    version: str
    description: str
    path: str = Field(description="directory relative to the data root")
    pool: str = "train"
    image_root: str = "images"
    tasks: tuple[TaskSpec, ...]
    fractions: tuple[float, ...]
    default_recipe: str
    primary_metric: str
    secondary_metric: str | None = None
    higher_is_better: bool = True
    picks: int = Field(
        2, ge=1, le=100, description="final picks per team and board while a test is hidden"
    )
    preparer: str | None = Field(None, description="registered preparer that builds it")
    source: str = Field("", description="where the public release lives")
    table: TableSpec = Field(default_factory=TableSpec)
    release: ReleaseSpec | None = None
    embeddings: EmbeddingsSpec | None = None

    @field_validator("path", "image_root")
    @classmethod
    def _relative(cls, v: str) -> str:
        if Path(v).is_absolute() or ".." in Path(v).parts:
            raise ValueError(
                f"{v!r} must be relative to the data root (no absolute paths, no '..')"
            )
        return v

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(not 0 < f <= 1 for f in v):
            raise ValueError("fractions must be a non-empty list of numbers in (0, 1]")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _unique_tasks(self) -> DatasetSpec:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"tasks must be non-empty with unique names, got {names}")
        return self

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise unknown(f"task of dataset {self.name!r}", name, self.task_names())

    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def split_names(self) -> list[str]:
        """Pool first, then each task's query and test split."""
        out = [self.pool]
        for t in self.tasks:
            out += [s for s in (t.query, t.test) if s not in out]
        return out

    def budget(self, fraction: float, *, pool_size: int) -> int:
        """Largest allowed subset size: floor(fraction x pool size) for an allowed fraction."""
        check_fraction(self, fraction)
        return math.floor(fraction * pool_size + 1e-9)


def check_fraction(spec: DatasetSpec, fraction: float) -> float:
    """The allowed fraction equal to ``fraction`` (within 1e-9), else ConfigError."""
    for f in spec.fractions:
        if math.isclose(f, fraction, abs_tol=1e-9):
            return f
    allowed = ", ".join(f"{f:g}" for f in spec.fractions)
    raise ConfigError(f"fraction {fraction:g} is not allowed for {spec.name}; allowed: {allowed}")


class RecipeSpec(Frozen):
    """A fixed training recipe. ``params`` are checked by the recipe's own params model."""

    name: str
    kind: RecipeKind
    version: str = "1"
    description: str = ""
    task_types: tuple[TaskType, ...]
    seeds: tuple[int, ...] = (0,)
    params: dict[str, Any] = Field(default_factory=dict)

    def config_hash(self) -> str:
        """Stable hash of everything that changes the recipe's numbers."""
        import hashlib
        import json

        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class BenchmarkSpecs(Frozen):
    """All datasets and recipes of one configs directory."""

    datasets: dict[str, DatasetSpec]
    recipes: dict[str, RecipeSpec]

    def dataset(self, name: str) -> DatasetSpec:
        try:
            return self.datasets[name]
        except KeyError:
            raise unknown("dataset", name, self.datasets) from None

    def recipe(self, name: str) -> RecipeSpec:
        try:
            return self.recipes[name]
        except KeyError:
            raise unknown("recipe", name, self.recipes) from None

    @model_validator(mode="after")
    def _recipes_exist(self) -> BenchmarkSpecs:
        for d in self.datasets.values():
            if d.default_recipe not in self.recipes:
                raise ValueError(f"dataset {d.name}: default_recipe {d.default_recipe!r} unknown")
        return self


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def _named(path: Path, key: str, model: type[Frozen]) -> dict[str, Any]:
    """Load ``{key: {name: {...}}}`` from ``path`` into models, naming each item."""
    raw = read_yaml(path)
    if not isinstance(raw, Mapping) or set(raw) != {key}:
        raise ConfigError(f"{path}: expected one top-level key {key!r}")
    out: dict[str, Any] = {}
    for name, body in (raw[key] or {}).items():
        try:
            out[name] = model.model_validate({"name": name, **(body or {})})
        except ValidationError as err:
            raise ConfigError(format_validation(path, f"{key}.{name}", err, model)) from None
    return out


def format_validation(path: Path, where: str, err: ValidationError, model: type[BaseModel]) -> str:
    """One line per error with the file, the dotted key and the valid keys."""
    lines = [f"{path}: invalid {where}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg += f" (valid keys: {', '.join(sorted(_fields_at(model, e['loc'][:-1])))})"
        lines.append(f"  {where}.{loc}: {msg}")
    return "\n".join(lines)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model that ``loc`` points into."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        if field is None:
            break
        current = _model_of(field.annotation)
    return list(current.model_fields) if current is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def load_benchmark(configs_dir: Path) -> BenchmarkSpecs:
    """Load and cross-check ``datasets.yaml`` and ``recipes.yaml``."""
    datasets = _named(configs_dir / "datasets.yaml", "datasets", DatasetSpec)
    recipes = _named(configs_dir / "recipes.yaml", "recipes", RecipeSpec)
    try:
        return BenchmarkSpecs(datasets=datasets, recipes=recipes)
    except ValidationError as err:
        raise ConfigError(f"{configs_dir}: {err.errors()[0]['msg']}") from None
