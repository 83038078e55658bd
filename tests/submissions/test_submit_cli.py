"""``tdc-submit`` against a real server on 127.0.0.1: exit codes and one-line messages for
every failure, the local pre-check, the pool-UID cache, and --wait to the scores."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import Dataset
from submissions import cli
from submissions.client import ApiError, TdcClient
from tests.server.helpers import Live, make_result, start_live, write_subset


@pytest.fixture(scope="module")
def live(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("live-submit")
    teams = {"alpha": "participant", "quota": "participant", "waiter": "participant",
             "patient": "participant", "picker": "participant", "ops": "organizer"}  # fmt: skip
    srv = start_live(root, tiny_dataset, teams=teams, TDC_QUOTA_PER_DAY="3",
                     TDC_MAX_UPLOAD_BYTES="3000")  # fmt: skip
    yield srv
    srv.server.stop()


@pytest.fixture
def env(live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alpha's token in TDC_TOKEN, a private cache dir; returns the cache dir."""
    for var in ("TDC_SERVER", "TDC_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TDC_TOKEN", live.tokens["alpha"])
    monkeypatch.setenv("TDC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def pool(tiny_dataset: Dataset) -> np.ndarray:
    return tiny_dataset.uids("train")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_prints_id_and_url_and_caches_pool_uids(
    live: Live, env: Path, pool: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_subset(tmp_path / "s.npy", pool[:30])
    code, out, err = run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.1",
                         "--server", live.url, "--name", "first")  # fmt: skip
    assert code == 0, err
    assert "pre-check passed: 30 UIDs" in err
    sid = int(out.split()[1].rstrip(":"))
    assert f"{live.url}/submissions/{sid}" in out and "queued" in out
    cached = list(env.rglob("tiny.npy"))
    assert len(cached) == 1 and cached[0].with_suffix(".etag").read_text().startswith('"')
    mtime = cached[0].stat().st_mtime_ns
    path2 = write_subset(tmp_path / "s2.npy", pool[30:60])
    assert run(capsys, str(path2), "--dataset", "tiny", "--fraction", "0.1",
               "--server", live.url)[0] == 0  # fmt: skip
    assert cached[0].stat().st_mtime_ns == mtime  # 304: the cache was used
    code, out, _ = run(capsys, "list", "--server", live.url)
    assert code == 0 and len(out.strip().splitlines()) == 2
    code, out, _ = run(capsys, "status", str(sid), "--server", live.url)
    assert code == 0 and f"submission {sid} [queued]" in out


@pytest.mark.parametrize(
    ("make", "args", "needle"),
    [
        (
            lambda pool: np.array(["zz-1", *pool[:3]]),
            (),
            "1 UIDs are not in the tiny pool, e.g. zz-1",
        ),
        (lambda pool: pool[:31], (), "31 UIDs exceed the budget of 30"),
        (lambda pool: np.array([*pool[:3], pool[0]]), (), "1 duplicate UIDs"),
        (lambda pool: pool[:3], ("--task", "test9"), "tiny has no task 'test9'"),
    ],
    ids=["unknown", "budget", "duplicates", "task"],
)
def test_precheck_failures_exit_3_without_uploading(
    live: Live, env: Path, pool: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make: object, args: tuple[str, ...], needle: str,
) -> None:  # fmt: skip
    path = write_subset(tmp_path / "bad.npy", make(pool))  # type: ignore[operator]
    before = TdcClient(live.url, live.tokens["alpha"]).list(limit=1000)
    code, _, err = run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.1",
                       "--server", live.url, *args)  # fmt: skip
    assert code == cli.EXIT_PRECHECK, err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert TdcClient(live.url, live.tokens["alpha"]).list(limit=1000) == before


def test_bad_fraction_and_pickles_fail_locally(
    live: Live, env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pickle = tmp_path / "p.npy"
    pickle.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")
    code, _, err = run(capsys, str(pickle), "--dataset", "tiny", "--fraction", "0.1",
                       "--server", live.url)  # fmt: skip
    assert code == cli.EXIT_PRECHECK and "pickle" in err
    code, _, err = run(capsys, str(pickle), "--dataset", "tiny", "--fraction", "0.2",
                       "--server", live.url)  # fmt: skip
    assert code == cli.EXIT_PRECHECK and "allowed: 0.1, 0.25, 0.5" in err


def test_server_side_rejections_have_their_own_codes(
    live: Live, env: Path, pool: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_subset(tmp_path / "bad.npy", np.array(["zz-1", "q1-00000", *pool[:3]]))
    code, _, err = run(capsys, str(bad), "--dataset", "tiny", "--fraction", "0.1",
                       "--server", live.url, "--no-check")  # fmt: skip
    assert code == cli.EXIT_INVALID
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: the server rejected the submission (2 problem(s))")
    assert {ln.split(":")[0].strip(" -") for ln in lines[1:]} == {"unknown_uid", "query_leak"}
    big = write_subset(tmp_path / "big.npy", pool[:150])  # > 3000 bytes
    assert big.stat().st_size > 3000
    code, _, err = run(capsys, str(big), "--dataset", "tiny", "--fraction", "0.5",
                       "--server", live.url, "--no-check")  # fmt: skip
    assert code == cli.EXIT_TOO_LARGE and "too large" in err
    code, _, err = run(capsys, "status", "999999", "--server", live.url)
    assert code == cli.EXIT_NOT_FOUND and "not found" in err


def test_quota_exit_code_says_when_to_retry(
    live: Live, env: Path, pool: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TDC_TOKEN", live.tokens["quota"])
    codes = []
    for i in range(4):
        path = write_subset(tmp_path / f"q{i}.npy", pool[i * 5 : i * 5 + 5])
        codes.append(run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.1",
                         "--server", live.url)[0])  # fmt: skip
    assert codes == [0, 0, 0, cli.EXIT_QUOTA]
    path = write_subset(tmp_path / "q9.npy", pool[100:105])
    code, _, err = run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.1",
                       "--server", live.url)  # fmt: skip
    assert code == cli.EXIT_QUOTA and "quota reached" in err and "retry in" in err


def test_auth_and_network_failures(
    live: Live, env: Path, pool: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    path = write_subset(tmp_path / "s.npy", pool[200:210])
    args = (str(path), "--dataset", "tiny", "--fraction", "0.1", "--server", live.url)
    from server.live import free_port

    code, _, err = run(capsys, *args[:-1], f"http://127.0.0.1:{free_port()}")
    assert code == cli.EXIT_NETWORK and "server unreachable" in err
    monkeypatch.setenv("TDC_TOKEN", "tdc_wrong")
    code, _, err = run(capsys, *args)
    assert code == cli.EXIT_AUTH and "not authenticated" in err
    monkeypatch.delenv("TDC_TOKEN")
    token_file = tmp_path / "token"
    monkeypatch.setenv("TDC_TOKEN_FILE", str(token_file))
    code, _, err = run(capsys, *args)
    assert code == cli.EXIT_AUTH and "no token" in err
    token_file.write_text(live.tokens["alpha"] + "\n")
    os.chmod(token_file, 0o644)
    code, _, err = run(capsys, *args)
    assert code == cli.EXIT_AUTH and "chmod 600" in err
    os.chmod(token_file, 0o600)
    assert run(capsys, *args)[0] == 0


def test_every_http_failure_maps_to_a_distinct_code() -> None:
    codes = {s: cli._api_exit(ApiError(s, [{"code": "x", "message": "m"}])).code
             for s in (401, 403, 404, 413, 422, 429, 409, 500)}  # fmt: skip
    assert codes[409] == codes[500] == cli.EXIT_SERVER
    distinct = [codes[s] for s in (401, 403, 404, 413, 422, 429, 500)]
    assert len(set(distinct)) == len(distinct)
    assert "forbidden" in cli._api_exit(ApiError(403, [{"message": "m"}])).message


def _score_when_claimed(
    live: Live, *, fail: bool, target: Callable[[], int | None]
) -> threading.Thread:
    def work() -> None:
        ops = TdcClient(live.url, live.tokens["ops"])
        for _ in range(300):
            jobs = ops.claim("test-worker", max_jobs=100)  # earlier tests' too: all alike
            for job in jobs:
                if fail:
                    ops.fail(job.id, job.lease_token, kind="user", message="only one class")
                else:
                    ops.post_result(
                        job.id, job.lease_token, make_result(sha256=job.identity.sha256)
                    )
            if any(j.id == target() for j in jobs):
                return
            threading.Event().wait(0.1)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("fail", [False, True], ids=["scored", "failed"])
def test_wait_follows_to_the_end(
    live: Live, env: Path, pool: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    fail: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TDC_TOKEN", live.tokens["waiter"])
    mine = TdcClient(live.url, live.tokens["waiter"])

    def target() -> int | None:
        subs = mine.list(limit=1)
        return subs[0].id if subs else None

    worker = _score_when_claimed(live, fail=fail, target=target)
    path = write_subset(tmp_path / "w.npy", pool[250 + fail * 10 : 260 + fail * 10])
    code, out, err = run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.1",
                         "--server", live.url, "--wait", "--poll", "0.2")  # fmt: skip
    worker.join(timeout=30)
    if fail:
        assert code == cli.EXIT_FAILED and "only one class" in err
    else:
        assert code == 0, err
        assert "test1: accuracy 0.8000 ± 0.0000" in out
        assert "test2" not in out  # hidden task: not shown to the participant


def test_precheck_reports_every_problem_at_once(
    live: Live, env: Path, pool: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = np.array([*pool[:31], pool[0], "zz-1"])  # over budget, a duplicate and an unknown UID
    path = write_subset(tmp_path / "bad.npy", bad)
    code, _, err = run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.1",
                       "--server", live.url)  # fmt: skip
    assert code == cli.EXIT_PRECHECK
    for needle in (
        "1 duplicate UIDs",
        "exceed the budget of 30",
        "1 UIDs are not in the tiny pool",
    ):
        assert needle in err


def test_status_says_why_a_running_submission_waits(
    live: Live, env: Path, pool: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TDC_TOKEN", live.tokens["patient"])
    path = write_subset(tmp_path / "p.npy", pool[160:170])  # a subset no other test sends
    code, out, err = run(capsys, str(path), "--dataset", "tiny", "--fraction", "0.1",
                         "--server", live.url)  # fmt: skip
    assert code == 0, err
    sid = int(out.split()[1].rstrip(":"))
    ops = TdcClient(live.url, live.tokens["ops"])
    jobs = ops.claim("test-worker", max_jobs=100)
    job = next(j for j in jobs if j.id == sid)
    ops.heartbeat(sid, job.lease_token, job_id="41_0", job_state="pending (Priority)")
    code, out, _ = run(capsys, "status", str(sid), "--server", live.url)
    assert code == 0 and f"submission {sid} [running]" in out
    assert "job: pending (Priority)" in out
    for j in jobs:  # leave nothing running for the other tests
        ops.post_result(j.id, j.lease_token, make_result(sha256=j.identity.sha256))
    code, out, _ = run(capsys, "status", str(sid), "--server", live.url)
    assert "[scored]" in out and "job:" not in out, "only a running submission's job is shown"


def test_select_marks_lists_and_removes_final_picks(
    live: Live, env: Path, pool: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TDC_TOKEN", live.tokens["picker"])
    mine = TdcClient(live.url, live.tokens["picker"])
    ids = [mine.submit(write_subset(tmp_path / f"k{i}.npy", pool[280 + i * 5 : 285 + i * 5]),
                       dataset="tiny", fraction=0.1).id for i in range(3)]  # fmt: skip
    ops = TdcClient(live.url, live.tokens["ops"])
    for job in ops.claim("test-worker", max_jobs=100):  # other tests' queued ones too
        ops.post_result(job.id, job.lease_token, make_result(sha256=job.identity.sha256))
    code, out, _ = run(capsys, "select", "--server", live.url)
    assert code == 0 and "tiny (picker): picks open; hidden tests: test2; at most 2" in out
    assert "no picks: your 2 best by public score count" in out
    code, out, err = run(capsys, "select", str(ids[0]), str(ids[1]), "--server", live.url)
    assert code == 0, err
    assert [int(ln.split()[0]) for ln in out.splitlines()[1:]] == ids[:2]
    code, _, err = run(capsys, "select", str(ids[2]), "--server", live.url)
    assert code == cli.EXIT_INVALID and "picks unchanged: at most 2 picks per board" in err
    code, out, _ = run(capsys, "select", str(ids[2]), "--drop", str(ids[0]), "--server", live.url)
    assert code == 0 and [int(ln.split()[0]) for ln in out.splitlines()[1:]] == ids[1:]
    code, out, _ = run(capsys, "unselect", str(ids[1]), "--server", live.url)
    assert code == 0 and [int(ln.split()[0]) for ln in out.splitlines()[1:]] == ids[2:]
    assert mine.get(ids[2]).picked and [e.action for e in mine.get(ids[0]).events][-2:] == [
        "pick", "unpick"
    ]  # fmt: skip
    code, _, err = run(capsys, "select", "0", "--server", live.url)
    assert code == 2, "ids are checked on the command line"
