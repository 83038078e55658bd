"""The selection-method registry: one signature for every baseline.

    @SELECTORS.register("random_filter")
    def random_filter(ctx: SelectionContext, budget: int, *, rng: np.random.Generator)
            -> SelectionOutput: ...

    fn = selector("random_filtr")        # UnknownName: ... Did you mean 'random_filter'?
    Params = params_model("tsds")        # pydantic model of the keyword params (extra="forbid")

A selector returns sorted, unique pool row ids (int64) and metadata; ``select`` in
``harness.selection.api`` checks those invariants for every call. Method modules register
themselves on import; :func:`load_methods` imports them all (one line per family).
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, create_model

from harness.registry import Registry

if TYPE_CHECKING:
    from harness.selection.context import SelectionContext

# Families of methods; each module registers its selectors on SELECTORS when imported.
METHOD_MODULES = (
    "harness.selection.simple",
    "harness.selection.clusters",
    "harness.selection.alignment",
    "harness.selection.tsds",
    "harness.selection.tsds_entropic",
    "harness.selection.gradmatch",
    "harness.selection.gradmatch_embedding",
    "harness.selection.labels",
    "harness.selection.zcore",
    "harness.selection.prism",
)

# Arguments every selector takes that are not method parameters.
_RESERVED = ("ctx", "budget", "rng")


@dataclass(frozen=True)
class SelectionOutput:
    """Sorted unique pool row ids, what the method noted, and (after ``select``) the UIDs."""

    rows: npt.NDArray[np.int64]
    metadata: dict[str, Any] = field(default_factory=dict)
    uids: npt.NDArray[np.str_] | None = None

    @property
    def size(self) -> int:
        return len(self.rows)

    def with_metadata(self, **extra: Any) -> SelectionOutput:
        return replace(self, metadata={**self.metadata, **extra})


class Selector(Protocol):
    def __call__(
        self, ctx: SelectionContext, budget: int, *, rng: np.random.Generator, **params: Any
    ) -> SelectionOutput: ...


SELECTORS: Registry[Callable[..., SelectionOutput]] = Registry("selection method")


def output(
    rows: npt.ArrayLike, *, natural_size: int | None = None, **metadata: Any
) -> SelectionOutput:
    """A :class:`SelectionOutput` with rows sorted as int64 and the natural size recorded.

    ``natural_size`` is how many rows the method would keep without a budget (defaults to the
    number kept); every selector reports it so truncation or a shortfall is visible.
    """
    arr = np.sort(np.asarray(rows, dtype=np.int64))
    meta = {"natural_size": int(len(arr) if natural_size is None else natural_size), **metadata}
    return SelectionOutput(rows=arr, metadata=meta)


@cache
def load_methods() -> None:
    """Import every method module so its selectors are registered."""
    for name in METHOD_MODULES:
        importlib.import_module(name)


def selector(name: str) -> Callable[..., SelectionOutput]:
    """The registered selector ``name`` (UnknownName with suggestions otherwise)."""
    load_methods()
    return SELECTORS.get(name)


def method_names() -> list[str]:
    load_methods()
    return SELECTORS.names()


@cache
def params_model(name: str) -> type[BaseModel]:
    """A frozen pydantic model of the selector's keyword parameters (types and defaults)."""
    fn = selector(name)
    hints = typing.get_type_hints(fn)
    fields: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in _RESERVED or p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if p.default is inspect.Parameter.empty:
            raise TypeError(f"selector {name!r}: parameter {p.name!r} needs a default")
        fields[p.name] = (hints.get(p.name, Any), p.default)
    config = ConfigDict(extra="forbid", frozen=True)
    model: type[BaseModel] = create_model(f"{name}_params", __config__=config, **fields)
    return model


def param_defaults(name: str) -> dict[str, Any]:
    """Every parameter of ``name`` with its default, for listings and error messages."""
    return {k: f.default for k, f in params_model(name).model_fields.items()}


def check_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``params`` against the selector's signature; returns the full parameter set.

    Raises ConfigError naming the method, the bad keys and the valid ones with defaults.
    """
    from pydantic import ValidationError

    from submissions.errors import ConfigError

    try:
        return params_model(name).model_validate(dict(params)).model_dump()
    except ValidationError as err:
        valid = ", ".join(f"{k}={v!r}" for k, v in param_defaults(name).items()) or "none"
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
        raise ConfigError(
            f"invalid parameters for selection method {name!r}: {'; '.join(lines)} "
            f"(valid parameters: {valid})"
        ) from None
