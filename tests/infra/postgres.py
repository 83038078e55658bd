"""A throwaway PostgreSQL cluster for tests: initdb into a temp dir, 127.0.0.1, a free port.

    cluster = PostgresCluster.start()          # ~1.5 s; PostgresUnavailable if no binaries
    url = cluster.create_database("t1")        # postgresql+psycopg://postgres@127.0.0.1:PORT/t1
    cluster.stop()                             # pg_ctl stop by its own data dir, dir removed

The binaries come from Debian's /usr/lib/postgresql/<v>/bin (or PATH). As root, the
cluster runs as the ``postgres`` user (initdb refuses root). Trust auth on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path | None:
    """A directory with initdb and pg_ctl, newest version first; None if absent."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for d in candidates:
        if Path(d, "initdb").is_file() and Path(d, "pg_ctl").is_file():
            return Path(d)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresCluster:
    bindir: Path
    datadir: Path
    port: int
    as_user: str | None
    opts: str  # the server's options (pg_ctl -o), for restart

    @classmethod
    def start(cls) -> PostgresCluster:
        bindir = find_bindir()
        if bindir is None:
            raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
        as_user = "postgres" if os.geteuid() == 0 else None
        root = Path(tempfile.mkdtemp(prefix="tdc-pg-"))
        datadir = root / "data"
        datadir.mkdir()
        if as_user:
            shutil.chown(root, as_user)
            shutil.chown(datadir, as_user)
        port = free_port()
        opts = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        cluster = cls(bindir=bindir, datadir=datadir, port=port, as_user=as_user, opts=opts)
        cluster._run("initdb", "-D", str(datadir), "-U", "postgres", "-A", "trust", "--no-sync")
        cluster._run(
            "pg_ctl", "-D", str(datadir), "-o", opts, "-l", str(root / "log"), "-w", "start"
        )
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise PostgresUnavailable(f"{tool} failed: {proc.stderr.strip() or proc.stdout}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            tmpl = f" TEMPLATE {template}" if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{tmpl}')  # type: ignore[arg-type]
        return self.url(name)

    def restart(self, *, down_s: float = 0.0) -> None:
        """Stop at once (open connections die mid-query), stay down ``down_s``, start again
        on the same port with the same options."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        time.sleep(down_s)
        log = str(self.datadir.parent / "log")
        self._run("pg_ctl", "-D", str(self.datadir), "-o", self.opts, "-l", log, "-w", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.datadir.parent, ignore_errors=True)
