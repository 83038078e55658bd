"""A name -> object registry with one signature per kind, as timm and lm-eval do it.

SELECTORS: Registry[Selector] = Registry("selection method")

@SELECTORS.register("random_filter")
def random_filter(ctx, budget, *, rng): ...

SELECTORS.get("random_filtr")   # UnknownName: ... Did you mean 'random_filter'?
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from submissions.errors import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects keyed by name; unknown names fail with suggestions and the valid list."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def unknown(kind: str, name: str, valid: object) -> UnknownName:
    """An :class:`UnknownName` for ``name`` with close matches among ``valid``."""
    names = sorted(str(v) for v in valid)  # type: ignore[attr-defined]
    near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return UnknownName(kind, name, near, names)
