"""``configs/baselines.yaml`` as frozen models, checked against the selectors at load time.

    baselines = load_baselines(settings.configs_dir)
    spec = baselines.method("tsds")        # UnknownName with suggestions for a typo
    spec.needs_query, spec.description, spec.params
    spec.resolved_params({"temperature": 0.1})   # CLI > YAML > defaults, validated

``scope`` and ``fractions`` are what a sweep uses when an experiment names neither (the
research's subset_baselines.yaml). Every registered selector must have an entry and every
entry a selector; ``params`` must be
keyword parameters of the selector with values of the right type, so a typo fails before
anything runs (ConfigError naming the file, the method and the valid parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.registry import unknown
from harness.selection.registry import check_params, method_names
from harness.specs import Frozen, _named
from submissions.errors import ConfigError, TdcError

FILE_NAME = "baselines.yaml"


class BaselineSpec(Frozen):
    """One selection method as participants and the leaderboard see it."""

    name: str
    needs_query: bool = Field(description="needs a task's query set (and so a task)")
    needs_labels: bool = Field(False, description="reads the query set's labels")
    description: str
    params: dict[str, Any] = Field(default_factory=dict)
    # Sweep defaults (tdc-harness sweep): "tasks" = one subset per task, "all" = one subset
    # scored on every task; fractions default to every fraction the dataset allows.
    scope: Literal["all", "tasks"] | None = None
    fractions: tuple[float, ...] | None = None

    @property
    def sweep_scope(self) -> Literal["all", "tasks"]:
        """The scope a sweep uses: declared, else per task exactly when a query set is read."""
        return self.scope or ("tasks" if self.needs_query else "all")

    def resolved_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults < YAML ``params`` < ``overrides``, validated against the selector."""
        return check_params(self.name, {**self.params, **(overrides or {})})


class BaselinesConfig(Frozen):
    methods: dict[str, BaselineSpec]

    def method(self, name: str) -> BaselineSpec:
        try:
            return self.methods[name]
        except KeyError:
            raise unknown("selection method", name, self.methods) from None

    def names(self) -> list[str]:
        return list(self.methods)


def load_baselines(configs_dir: Path) -> BaselinesConfig:
    """Load ``baselines.yaml`` and cross-check it with the selector registry."""
    path = configs_dir / FILE_NAME
    methods: dict[str, BaselineSpec] = _named(path, "methods", BaselineSpec)
    registered = set(method_names())
    missing, extra = sorted(registered - set(methods)), sorted(set(methods) - registered)
    if missing or extra:
        raise ConfigError(
            f"{path}: methods must match the registered selectors; "
            f"missing entries: {missing or 'none'}; no such selector: {extra or 'none'}"
        )
    for spec in methods.values():
        try:
            spec.resolved_params()
        except TdcError as err:
            raise ConfigError(f"{path}: methods.{spec.name}.params: {err}") from None
    return BaselinesConfig(methods=methods)
