"""A real server in a subprocess on 127.0.0.1, for tests, benchmarks and the demo.

    with LiveServer.start(env={"TDC_DATABASE_URL": url, "TDC_STORAGE_DIR": str(d)}) as srv:
        httpx.get(srv.url + "/api/info")
        srv.restart()                    # SIGTERM (or kill=True: SIGKILL), then start again

It runs ``python -m server.cli serve`` (migrations, then uvicorn) and is stopped by its own
PID; its output goes to ``log_path``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    env: dict[str, str]
    port: int
    log_path: Path
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        *,
        env: Mapping[str, str],
        port: int | None = None,
        log_path: Path | None = None,
        timeout_s: float = 60,
        workers: int = 1,
    ) -> LiveServer:
        port = port or free_port()
        full = {**os.environ, **env, "TDC_HOST": "127.0.0.1", "TDC_PORT": str(port)}
        full.setdefault("TDC_BASE_URL", f"http://127.0.0.1:{port}")
        log = log_path or Path(tempfile.mkstemp(prefix="tdc-server-", suffix=".log")[1])
        srv = cls(env=full, port=port, log_path=log, workers=workers)
        srv._spawn(timeout_s)
        return srv

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self, timeout_s: float) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--workers", str(self.workers)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + "/api/info", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop(kill=True)
        raise RuntimeError(f"server not ready after {timeout_s} s: {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self, *, kill: bool = False, timeout_s: float = 60) -> None:
        self.stop(kill=kill)
        self._spawn(timeout_s)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
