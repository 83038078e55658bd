"""``configs/experiments.yaml``: sweeps as frozen models, every name checked before anything runs.

    experiments:
      - name: demo_sweep
        datasets: [demo]
        methods:                            # method -> parameters; a list is a grid axis
          random_filter: {}
          image_alignment: {aggregate: [mean, max]}
          tsds: {params_file: runs/tuned/demo-tsds-test1-f0.1.yaml}   # from `tdc-harness tune`
        recipes: [linear_probe]
        fractions: [0.05, 0.1]              # default: the method's (configs/baselines.yaml)
        tasks: [test1, test2]               # default: the method's scope (all / every task)
        seeds: [0, 1, 2]                    # selection seeds (default [0])
        lr: [0.001, 0.0001]                 # recipe variants (named, never the official one)

The research group's keys are accepted as they are: ``baselines`` (method names),
``finetune_types`` (recipes), ``lr_list``, ``batch_sizes``, ``num_epochs``. An unknown key,
dataset, method, parameter, recipe, fraction or task fails naming the file, the experiment,
the key and the valid values.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from harness.registry import unknown
from harness.selection import BaselinesConfig
from harness.specs import BenchmarkSpecs, Frozen, check_fraction, read_yaml
from submissions.errors import ConfigError, TdcError

RESEARCH_KEYS = {
    "baselines": "methods",
    "finetune_types": "recipes",
    "lr_list": "lr",
    "batch_sizes": "batch_size",
    "num_epochs": "epochs",
}
VARIANT_KEYS = ("lr", "batch_size", "epochs")  # recipe params a sweep may vary


class Experiment(Frozen):
    """One sweep: the Cartesian product of its lists."""

    name: str
    datasets: tuple[str, ...]
    methods: dict[str, dict[str, Any]]
    recipes: tuple[str, ...]
    fractions: tuple[float, ...] | None = None
    tasks: tuple[str, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    lr: tuple[float, ...] | None = None
    batch_size: tuple[int, ...] | None = None
    epochs: tuple[int, ...] | None = None
    embeddings: str | None = None
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _research_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = {RESEARCH_KEYS.get(k, k): v for k, v in data.items()}
        if isinstance(out.get("methods"), list | tuple):  # research: a list of names
            out["methods"] = {m: {} for m in out["methods"]}
        for key in (
            "epochs",
            "lr",
            "batch_size",
            "fractions",
            "tasks",
            "seeds",
            "datasets",
            "recipes",
        ):
            if key in out and not isinstance(out[key], list | tuple | type(None)):
                out[key] = [out[key]]
        return out

    def variants(self) -> list[dict[str, Any]]:
        """Every combination of the varied recipe params ({} when none is varied)."""
        axes = {k: getattr(self, k) for k in VARIANT_KEYS if getattr(self, k)}
        return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def param_grid(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A method's parameter grid: list values are axes, scalars fixed; ``params_file`` read."""
    fixed = {k: v for k, v in params.items() if k != "params_file"}
    if "params_file" in params:
        tuned = read_yaml(Path(params["params_file"]))
        if not isinstance(tuned, Mapping) or not isinstance(tuned.get("params"), Mapping):
            raise ConfigError(
                f"{params['params_file']}: expected a `params:` mapping "
                "(as `tdc-harness tune` writes)"
            )
        fixed = {**tuned["params"], **fixed}
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in fixed.items()}
    return [dict(zip(axes, c, strict=True)) for c in itertools.product(*axes.values())]


def params_id(params: Mapping[str, Any]) -> str:
    """Canonical text of a parameter set (the same set, the same text)."""
    return json.dumps(dict(sorted(params.items())), sort_keys=True, separators=(",", ":"))


def load_experiments(
    path: Path, *, specs: BenchmarkSpecs, baselines: BaselinesConfig
) -> list[Experiment]:
    """Every experiment of ``path``, validated against the benchmark's names."""
    raw = read_yaml(path)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("experiments"), list):
        raise ConfigError(f"{path}: expected a top-level `experiments:` list")
    out = []
    for i, body in enumerate(raw["experiments"]):
        where = f"{path}: experiments[{i}]"
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: expected a mapping")
        try:
            exp = Experiment.model_validate({"name": f"experiment{i}", **body})
        except ValidationError as err:
            e = err.errors()[0]
            loc = ".".join(map(str, e["loc"]))
            valid = sorted(set(Experiment.model_fields) | set(RESEARCH_KEYS))
            raise ConfigError(
                f"{where}.{loc}: {e['msg']} (valid keys: {', '.join(valid)})"
            ) from None
        try:
            check_experiment(exp, specs=specs, baselines=baselines)
        except TdcError as err:
            raise ConfigError(f"{where} ({exp.name}): {err}") from None
        out.append(exp)
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: experiment names must be unique, got {names}")
    return out


def check_experiment(exp: Experiment, *, specs: BenchmarkSpecs, baselines: BaselinesConfig) -> None:
    """Every name, parameter, fraction and task of ``exp`` exists (TdcError otherwise)."""
    for method, params in exp.methods.items():
        spec = baselines.method(method)
        for point in param_grid(params):
            spec.resolved_params(point)
    for recipe in exp.recipes:
        specs.recipe(recipe)
    for name in exp.datasets:
        ds = specs.dataset(name)
        for recipe in exp.recipes:
            if ds.task_type not in specs.recipe(recipe).task_types:
                raise ConfigError(
                    f"recipe {recipe!r} trains {list(specs.recipe(recipe).task_types)}"
                    f"; dataset {name!r} is {ds.task_type!r}"
                )
        for f in exp.fractions or ():
            check_fraction(ds, f)
        for t in exp.tasks or ():
            if t not in ds.task_names():
                raise unknown(f"task of dataset {name!r}", t, ds.task_names())


class Only(Frozen):
    """``--only dataset=demo,method=tsds``: keep the jobs whose fields match."""

    values: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> Only:
        fields = ("experiment", "dataset", "method", "recipe", "fraction", "task")
        values: dict[str, list[str]] = {}
        for part in (text or "").split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in fields:
                raise ConfigError(
                    f"--only takes FIELD=VALUE pairs, FIELD one of {', '.join(fields)};"
                    f" got {part!r}"
                )
            values.setdefault(key.strip(), []).append(value.strip())
        return cls(values={k: tuple(v) for k, v in values.items()})

    def keeps(self, **fields: Any) -> bool:
        """True unless a given field has values here and matches none of them."""
        return all(_matches(fields[k], v) for k, v in self.values.items() if k in fields)


def _matches(value: Any, wanted: tuple[str, ...]) -> bool:
    if isinstance(value, float):
        return any(_float(w) == value for w in wanted)
    return str(value) in wanted


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
