"""BuiltOnce: one build per key and version, values by version or stale, and a byte bound that
evicts the least recently used values."""

from __future__ import annotations

import threading
import time

from server.services.built import ENTRY_BYTES, BuiltOnce


def test_a_missing_value_is_built_once_for_concurrent_callers() -> None:
    cache = BuiltOnce(max_bytes=1 << 20)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def build() -> str:
        calls.append(1)
        started.set()
        release.wait(timeout=30)
        return "board"

    results: list[str] = []

    def get() -> None:
        results.append(cache.get(("k",), version=(1,), build=build, size=len))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    started.wait(timeout=30)
    time.sleep(0.2)  # the other callers arrive and wait for the first build
    release.set()
    for t in threads:
        t.join(timeout=30)
    assert results == ["board"] * 8 and len(calls) == 1
    assert cache.get(("k",), version=(2,), build=lambda: "new", size=len) == "new"
    assert cache.get(("k",), version=(1,), build=lambda: "old", size=len) == "new", (
        "a value built for a later version is at least as current"
    )
    assert cache._builds == {}, "no build slot outlives its callers"


def test_peek_asks_for_a_version_or_for_any() -> None:
    cache = BuiltOnce(max_bytes=1 << 20)
    cache.get(("k",), version=(1, 4), build=lambda: "old", size=len)
    assert cache.peek(("k",), version=(1, 4)) == "old"
    assert cache.peek(("k",), version=(1, 3)) == "old", "built for a later version: current"
    assert cache.peek(("k",), version=(2, 4)) is None, "out of date"
    assert cache.peek(("k",), version=None) == "old", "a stale value, when asked for one"
    assert cache.peek(("other",), version=None) is None


def test_values_are_bounded_by_bytes_least_recently_used_first() -> None:
    cache = BuiltOnce(max_bytes=3 * (100 + ENTRY_BYTES))
    for k in "abc":
        cache.get(k, version=(1,), build=lambda: "x" * 100, size=len)
    assert cache.peek("a", version=(1,)) is not None  # a is now the most recently used
    cache.get("d", version=(1,), build=lambda: "x" * 100, size=len)
    assert cache.peek("b", version=(1,)) is None, "the least recently used value went"
    assert all(cache.peek(k, version=(1,)) for k in "acd")
    huge = cache.get("e", version=(1,), build=lambda: "x" * 20_000, size=len)
    assert len(huge) == 20_000 and cache.peek("e", version=(1,)) is None, "too big to keep"
    assert all(cache.peek(k, version=(1,)) for k in "acd"), "and it evicted nothing"
    assert cache._bytes <= cache.max_bytes
