"""Ranking boards in a child process, so a rebuild never holds the serving process's GIL.

    rank = RankingProcess("postgresql+psycopg://...")   # the child starts on first use
    bundle = rank(spec=spec, of=BundleOf("demo", "linear_probe", "1", tasks=("test1",)))
    rank.close()

A board of 10^4 submissions takes ~0.4 s of pure Python to read and rank. Run in a thread of
the server, it takes the GIL from the event loop for that long: every request of the moment
waits (p99 ~300 ms under one change per second, measured). In a child process it costs the
server only the unpickling of the result (~9 ms). The child reads the same database through
its own engine, so this needs a database other processes can open (not in-memory SQLite).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from sqlmodel import Session

from server.services.boards import Bundle, BundleOf, rank_bundle

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy import Engine

    from harness.specs import DatasetSpec
    from submissions.significance import TaskStat

_engine: Engine | None = None  # the child's


class RankingProcess:
    def __init__(self, database_url: str) -> None:
        spawn = multiprocessing.get_context("spawn")  # no forked copy of the server's threads
        self._pool = ProcessPoolExecutor(
            1, mp_context=spawn, initializer=_start, initargs=(database_url,)
        )

    def warm(self) -> None:
        """Start the child now rather than in the first board request (~1 s of imports)."""
        self._pool.submit(int)

    def __call__(
        self,
        *,
        spec: DatasetSpec,
        of: BundleOf,
        stats: Sequence[TaskStat],
        replicates: Path | None = None,
    ) -> Bundle:
        return self._pool.submit(_rank, spec, of, stats, replicates).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _start(database_url: str) -> None:
    from server.db import make_engine

    global _engine
    _engine = make_engine(database_url)
    os.nice(10)  # ranking is background work: requests being served come first for the CPU
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this child when its server process is gone (killed, or a worker replaced)."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _rank(
    spec: DatasetSpec, of: BundleOf, stats: Sequence[TaskStat], replicates: Path | None
) -> Bundle:
    assert _engine is not None, "the child's initializer sets the engine"
    with Session(_engine) as db:
        return rank_bundle(db=db, spec=spec, of=of, stats=stats, replicates=replicates)
