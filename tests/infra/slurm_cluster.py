"""A throwaway single-node SLURM for tests and benchmarks, driven by ``tests/infra/slurm.sh``.

    cluster = SlurmCluster.start(tmp_dir)   # munge + slurmctld + slurmd on 127.0.0.1, ~1 s
    with cluster.activated():               # SLURM_CONF for sbatch/squeue/submitit
        ...
    cluster.stop()                          # scancel everything, stop daemons by PID file

Free ports are picked per cluster, and every file lives under the directory given, so several
test sessions on one machine each run their own cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("slurm.sh")


class SlurmUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_reason() -> str | None:
    """Why a cluster cannot start here, or None."""
    for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting slurmd/munged needs root"
    return None


@dataclass(frozen=True)
class SlurmCluster:
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @classmethod
    def start(cls, root: Path) -> SlurmCluster:
        reason = missing_reason()
        if reason:
            raise SlurmUnavailable(reason)
        root.mkdir(parents=True, exist_ok=True)
        ports = [str(_free_port()), str(_free_port())]
        out = subprocess.run(
            ["bash", str(SCRIPT), "start", str(root), *ports],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise SlurmUnavailable(f"slurm.sh start failed:\n{out.stdout}\n{out.stderr}")
        return cls(root)

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(SCRIPT), "stop", str(self.root)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    @contextlib.contextmanager
    def activated(self) -> Iterator[SlurmCluster]:
        """``SLURM_CONF`` set in this process (submitit calls sbatch with our environment)."""
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(self.conf)
        try:
            yield self
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old

    def squeue(self) -> str:
        return subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i|%T"],
            capture_output=True,
            text=True,
            env=self.env(),
            check=False,
        ).stdout
