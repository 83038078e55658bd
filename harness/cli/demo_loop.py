"""The rest of ``tdc-harness demo``: server, baseline submissions, evaluation, leaderboard.

    run = run_demo(settings=settings, steps=STEPS + LOOP_STEPS)   # harness.cli.demo
    run.notes["server"].url                                         # http://127.0.0.1:8000
    serve_until_interrupted(run)                                    # prints URL + tdc-submit

Steps (each skips or reuses what a previous run left):

- ``server``: a SQLite database and file store under ``<runs>/demo-server``; migrations; an
  organizer token and a participant token per demo team (``DEMO_TEAMS``; the one printed is
  ``demo-team``'s); ``tdc-server serve`` on 127.0.0.1:8000 (``TDC_PORT``:
  ``settings.port``), stopped by its PID when the demo ends.
- ``references``: the reference methods (``REFERENCES``) x fractions (x tasks for task-aware
  methods), each scored over 3 selection seeds through the results store and posted as one
  unranked reference row per method (``harness.references``: mean ± std over the seeds, the
  label showing non-default parameters, byte-identical subsets named together; a rerun
  trains and adds nothing).
- ``example``: the participant entries (``ENTRIES``) of four demo teams, uploaded with their
  tokens, so the boards have ranked entries with 95% intervals and statistically tied groups:
  all-task subsets of label-free methods at 10% and 5% (ranks "1", "2", "3", "=3" on the 10%
  dataset board) and ``demo-team``'s task-specific example for test1. An entry its team
  already submitted (same name, fraction and task) is skipped, so a rerun uploads nothing.
- ``evaluate``: ``evaluate-pending`` with the ``local`` executor until the queue is drained.
- ``oracle``: the train-on-query oracle of the default recipe, posted as an unranked reference
  row on each demo fraction's board (``POST /api/organizer/references``; a rerun adds nothing).

The server is driven through its CLI in a subprocess (the harness never imports ``server``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from submissions.errors import ConfigError

if TYPE_CHECKING:
    from harness.cli.demo import DemoRun, Step
    from harness.datasets import Dataset
    from harness.dispatch.worker import Worker
    from harness.selection.config import BaselinesConfig
    from harness.settings import HarnessSettings
    from submissions.client import TdcClient

log = logging.getLogger(__name__)

# The reference rows of the demo board: (method, parameters other than the defaults). Task-
# aware methods are scored per task; each row is the mean over SELECTION_SEEDS.
REFERENCES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("random_filter", {}),
    ("clip_score", {}),
    ("clip_score", {"captions": "label"}),  # the research's captions (they name the class)
    ("image_alignment", {}),
    ("match_label", {}),
    ("match_dist", {}),
    ("tsds", {}),
    ("zcore", {}),
)
FRACTIONS = (0.05, 0.1)
BASELINE_TEAM = "baselines"
SAMPLE_TEAM = "demo-team"  # the team whose token the demo prints for the user's own subsets


@dataclass(frozen=True)
class Entry:
    """A participant submission of the demo: ``team`` uploads the subset ``method`` selects
    with ``seed`` for ``task`` (None: one subset scored on every task) at ``fraction``."""

    team: str
    method: str
    fraction: float
    task: str | None = None
    seed: int = 0
    label: str | None = None  # the submission's name; default "<method> (seed <seed>)"

    @property
    def name(self) -> str:
        return self.label or f"{self.method} (seed {self.seed})"

    @property
    def key(self) -> tuple[str, float, str | None]:
        """What makes a rerun skip it: its team already has a submission with this key."""
        return (self.name, self.fraction, self.task)


# The demo's participant entries. On the 10% dataset board demo-team (clip_score, and its
# text_alignment example on test1) ranks 1 and demo-lab (random_filter) 2, each apart from
# the next; demo-group (zcore) and demo-uni (random_filter, another seed) score within a point
# of each other: ranks "3" and "=3", not distinguishable at 95%.
ENTRIES: tuple[Entry, ...] = (
    Entry(SAMPLE_TEAM, "clip_score", 0.1, label="clip_score"),
    Entry(SAMPLE_TEAM, "text_alignment", 0.1, "test1", label="example (text_alignment)"),
    Entry("demo-lab", "random_filter", 0.1, seed=0),
    Entry("demo-lab", "random_filter", 0.05, seed=0),
    Entry("demo-group", "zcore", 0.1, seed=0),
    Entry("demo-group", "zcore", 0.05, seed=0),
    Entry("demo-uni", "random_filter", 0.1, seed=2),
)
DEMO_TEAMS = tuple(dict.fromkeys(e.team for e in ENTRIES))


@dataclass
class DemoServer:
    url: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path
    organizer_token: str
    tokens: dict[str, str]  # team -> participant token, for every team in DEMO_TEAMS

    @property
    def participant_token(self) -> str:
        return self.tokens[SAMPLE_TEAM]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _server_cli(env: dict[str, str], *args: str) -> str:
    return _server_clis(env, [args])[0]


def _server_clis(env: dict[str, str], calls: Sequence[Sequence[str]]) -> list[str]:
    """Run ``tdc-server`` commands side by side (each is a Python start-up, about 1.5 s; the
    database queues their writes); what each printed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "server.cli", *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in calls
    ]
    outs = [proc.communicate() for proc in procs]
    for args, proc, (_, err) in zip(calls, procs, outs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"tdc-server {' '.join(args[:1])} failed: {err.strip()}")
    return [out.strip() for out, _ in outs]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def server_step(run: DemoRun) -> None:
    """Start the server on SQLite with fresh tokens (the database itself is kept)."""
    import httpx

    s = run.settings
    home = (Path(s.runs_dir) / "demo-server").absolute()
    home.mkdir(parents=True, exist_ok=True)
    port = s.port
    if not _port_free(port):
        raise ConfigError(f"port {port} on 127.0.0.1 is in use (another demo?); set TDC_PORT")
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "TDC_DATABASE_URL": f"sqlite:///{home / 'tdc.db'}",
        "TDC_STORAGE_DIR": str(home / "storage"),
        "TDC_DATA_ROOT": str(Path(s.data_root).absolute()),
        "TDC_CONFIGS_DIR": str(Path(s.configs_dir).absolute()),
        "TDC_RUNS_DIR": str(Path(s.runs_dir).absolute()),
        "TDC_HOST": "127.0.0.1",
        "TDC_PORT": str(port),
        "TDC_BASE_URL": url,
    }
    _server_cli(env, "migrate")
    log_path = home / "server.log"
    with log_path.open("ab") as fh:  # it starts up while the tokens are issued
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--no-migrate"],
                                env=env, stdout=fh, stderr=subprocess.STDOUT)  # fmt: skip
    server = DemoServer(url, proc, env, log_path, organizer_token="", tokens={})
    atexit.register(server.stop)  # a later step that fails must not leave it running
    organizer, *participants = _server_clis(env, [
        ("issue-token", "organizers", "--scope", "organizer", "--create-team", "--note", "demo"),
        *(("issue-token", team, "--create-team", "--note", "demo") for team in DEMO_TEAMS),
    ])  # fmt: skip
    server.organizer_token = organizer
    server.tokens = dict(zip(DEMO_TEAMS, participants, strict=True))
    run.notes["server"] = server
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited; see {log_path}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/api/info", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the server did not answer within 60 s; see {log_path}")


def references_step(run: DemoRun) -> None:
    """Score the reference methods over selection seeds and post them as team ``baselines``
    (``harness.references``: mean and std over seeds, byte-identical subsets merged)."""
    from harness.cli import common
    from harness.references import Reference, post_rows, score_references
    from harness.selection.config import load_baselines
    from harness.store import ResultsStore
    from submissions.client import TdcClient

    server: DemoServer = run.notes["server"]
    ds = run.dataset
    if ds is None:
        raise RuntimeError("references_step needs prepare_step first")
    s = run.settings
    baselines = load_baselines(s.configs_dir)
    refs = [Reference.of(m, p, baselines=baselines) for m, p in REFERENCES]
    rows = score_references(ds=ds, recipe=common.specs(s).recipe(ds.spec.default_recipe),
                            refs=refs, fractions=FRACTIONS, baselines=baselines,
                            store=ResultsStore(s.runs_dir), weights_dir=s.weights_dir)  # fmt: skip
    with TdcClient(server.url, server.organizer_token) as client:
        run.notes["references"] = post_rows(client, rows, team=BASELINE_TEAM)[0]


def example_step(run: DemoRun) -> None:
    """Submit the participant entries (``ENTRIES``) as their teams, through the upload path
    the worker then evaluates, so the boards have ranked entries; an entry its team already
    submitted (same name, fraction and task: a rerun of the demo) is skipped."""
    from harness.selection.config import load_baselines
    from submissions.client import TdcClient

    server: DemoServer = run.notes["server"]
    ds = run.dataset
    if ds is None:
        raise RuntimeError("example_step needs prepare_step first")
    baselines = load_baselines(run.settings.configs_dir)
    submitted = 0
    for team in DEMO_TEAMS:
        with TdcClient(server.url, server.tokens[team]) as client:
            done = {(x.name, x.fraction, x.task) for x in client.list(dataset=ds.spec.name)}
            todo = [e for e in ENTRIES if e.team == team and e.key not in done]
            for entry in todo:
                _upload(client, entry, ds=ds, settings=run.settings, baselines=baselines)
            submitted += len(todo)
    run.notes["example"] = submitted


def _upload(
    client: TdcClient,
    entry: Entry,
    *,
    ds: Dataset,
    settings: HarnessSettings,
    baselines: BaselinesConfig,
) -> None:
    from harness.selection.api import select, write_selection

    sel = select(ds=ds, method=entry.method, fraction=entry.fraction, task=entry.task,
                 seed=entry.seed, baselines=baselines,
                 weights_dir=settings.weights_dir)  # fmt: skip
    path = write_selection(sel, Path(settings.runs_dir) / "demo-server" / "example.npy")
    client.submit(path, dataset=ds.spec.name, fraction=entry.fraction, task=entry.task,
                  name=entry.name)  # fmt: skip


def _worker(
    run: DemoRun, client: TdcClient, *, watch: bool, stop: threading.Event | None = None
) -> Worker:
    from harness.dispatch.executors import executor_spec
    from harness.dispatch.worker import Worker, WorkerOptions

    s = run.settings
    spec = executor_spec("local", configs_dir=s.configs_dir)
    options = WorkerOptions(executor=spec, runs_dir=s.runs_dir, data_root=s.data_root,
                            configs_dir=s.configs_dir, weights_dir=s.weights_dir, poll_s=0.5,
                            idle_s=2.0, watch=watch)  # fmt: skip
    return Worker(client=client, options=options, stop=stop)


def evaluate_step(run: DemoRun) -> None:
    """evaluate-pending with the local executor, until nothing is queued."""
    from submissions.client import TdcClient

    server: DemoServer = run.notes["server"]
    with TdcClient(server.url, server.organizer_token) as client:
        run.notes["evaluated"] = _worker(run, client, watch=False).run()


def oracle_step(run: DemoRun) -> None:
    """Evaluate the oracle once and post it on every demo fraction's board (its score does
    not depend on the fraction)."""
    from harness.cli import common
    from harness.recipes.oracle import evaluate_oracle
    from submissions.client import TdcClient

    server: DemoServer = run.notes["server"]
    if run.dataset is None:
        raise RuntimeError("oracle_step needs prepare_step first")
    recipe = common.specs(run.settings).recipe(run.dataset.spec.default_recipe)
    results = evaluate_oracle(ds=run.dataset, recipe=recipe, weights_dir=run.settings.weights_dir)
    rows = [r.model_copy(update={"fraction": f}) for f in FRACTIONS for r in results]
    with TdcClient(server.url, server.organizer_token) as client:
        run.notes["oracle"] = client.post_references(rows, kind="oracle").created


LOOP_STEPS: list[tuple[str, Step]] = [
    ("server", server_step),
    ("references", references_step),
    ("example", example_step),
    ("evaluate", evaluate_step),
    ("oracle", oracle_step),
]


def serve_until_interrupted(run: DemoRun) -> None:
    """Print where the leaderboard is and what to try next; serve (and keep evaluating new
    submissions with the local executor) until Ctrl-C."""
    from submissions.client import TdcClient

    server: DemoServer = run.notes["server"]
    report = run.notes.get("evaluated")
    if report is not None:
        typer.echo(f"reference rows: {run.notes.get('references', 0)} posted; submissions: "
                   f"{report.scored} scored, {report.failed_user + report.failed_infra} "
                   "failed")  # fmt: skip
    typer.echo(f"\nleaderboard: {server.url}/   (Ctrl-C to stop)")
    typer.echo("submit your own subset (it is evaluated here within seconds), e.g.:")
    typer.echo("  tdc-harness baseline image_based -d demo -f 0.1 -t test1 -o my_subset.npy")
    typer.echo(f"  TDC_TOKEN={server.participant_token} tdc-submit my_subset.npy --dataset demo "
               f"--fraction 0.1 --task test1 --server {server.url} --wait")  # fmt: skip
    stop = threading.Event()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per poll while serving
    with TdcClient(server.url, server.organizer_token) as client:
        worker = threading.Thread(target=_worker(run, client, watch=True, stop=stop).run,
                                  daemon=True)  # fmt: skip
        worker.start()
        try:
            server.proc.wait()
        except KeyboardInterrupt:
            typer.echo("stopping the server")
        finally:
            stop.set()
            worker.join(timeout=60)
            server.stop()
