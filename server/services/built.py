"""Values built from the database once per board version, kept in one byte-bounded LRU.

    cache = BuiltOnce(max_bytes=64 << 20)
    board = cache.get(("bundle", "demo", ...), version=(7,), build=make, size=nbytes)
    cache.peek(key, version=(7,))     # the value if built for (7,) or later, else None
    cache.peek(key, version=None)     # whatever version it was built for (a stale board)

A value is current while the versions it was built for are (``Dataset.board_version``, bumped
in the transaction of every change a board shows, so versions only grow): nothing is ever
invalidated, a new version simply misses. One build per key at a time; other callers of
``get`` wait for it. Thread-safe: builds run in the server's thread pool.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar
from weakref import WeakValueDictionary

T = TypeVar("T")
Version = tuple[int, ...]
ENTRY_BYTES = 4096  # per value: its key, small objects and bookkeeping, beyond ``size``


class BuiltOnce:
    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes, self._bytes, self._lock = max_bytes, 0, threading.Lock()
        self._values: OrderedDict[Hashable, tuple[Version, Any, int]] = OrderedDict()
        # One build lock per key, held weakly: gone once no caller needs it (a semaphore of 1,
        # since a plain Lock cannot be weakly referenced).
        self._builds: WeakValueDictionary[Hashable, threading.BoundedSemaphore] = (
            WeakValueDictionary()
        )

    def peek(self, key: Hashable, *, version: Version | None) -> Any:
        """The value built for ``version`` or later (None: for any version); else None."""
        with self._lock:
            hit = self._values.get(key)
            if hit is None or (version is not None and hit[0] < version):
                return None
            self._values.move_to_end(key)
            return hit[1]

    def get(
        self, key: Hashable, *, version: Version, build: Callable[[], T], size: Callable[[T], int]
    ) -> T:
        """The value of ``key`` built for ``version`` (or later): cached, or built now, once."""
        with self._lock:
            slot = self._builds.setdefault(key, threading.BoundedSemaphore(1))
        with slot:  # concurrent callers of a missing value wait for one build
            hit = self._values.get(key)
            if hit is not None and hit[0] >= version:
                return hit[1]  # type: ignore[no-any-return]
            value = build()
            self._put(key, (version, value, size(value) + ENTRY_BYTES))
            return value

    def _put(self, key: Hashable, entry: tuple[Version, Any, int]) -> None:
        with self._lock:
            old = self._values.pop(key, None)
            self._bytes -= old[2] if old else 0
            if entry[2] > self.max_bytes:
                return  # too big to keep: built for this caller only
            self._values[key], self._bytes = entry, self._bytes + entry[2]
            while self._bytes > self.max_bytes:
                self._bytes -= self._values.popitem(last=False)[1][2]
