"""``TdcClient``: typed access to every endpoint of the Task-DataComp server (httpx).

    client = TdcClient("http://127.0.0.1:8000", token)
    sub = client.submit(Path("sub.npy"), dataset="demo", fraction=0.1, progress=print)
    client.get(sub.id).state                     # State.queued ...
    done = client.wait(sub.id)                   # polls until a final state
    client.datasets(); client.dataset("demo"); client.pool_uids("demo", dest, etag=old)
    client.download_site(Path("site.zip"))       # the static leaderboard (organizer=True too)
    client.change_picks(pick=[12, 15]); client.picks(dataset="demo")   # final picks

    # organizer / worker side (organizer token)
    for job in client.claim("worker-1", max_jobs=10, lease_seconds=600):
        client.heartbeat(job.id, job.lease_token, job_id="1234_0")
        client.download_file(job.id, dest)
        client.post_result(job.id, job.lease_token, result)   # or client.fail(...)
    client.post_references(oracle_results)       # reference rows without a subset file

Every non-2xx answer raises :class:`ApiError` (``.status``, ``.problems``, ``.retry_after``);
a server that cannot be reached raises :class:`ServerUnreachable`. Uploads stream the file
(never read whole) and carry an ``Idempotency-Key``, so a retried upload is accepted once.
"""

from __future__ import annotations

import builtins
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from submissions.errors import TdcError
from submissions.schemas import (
    TERMINAL_STATES,
    AdminAction,
    ClaimedSubmission,
    ClaimRequest,
    DatasetPublic,
    EvalResult,
    FailurePost,
    Heartbeat,
    LeaseStatus,
    PickChange,
    Picks,
    ReferencePost,
    ReferencesRecorded,
    ResultPost,
    ServerInfo,
    State,
    SubmissionDetail,
    SubmissionPublic,
)

M = TypeVar("M", bound=BaseModel)
Progress = Callable[[int, int], None]  # (bytes sent, total bytes)
FINAL_STATES = TERMINAL_STATES | {State.failed_infra}


UNAVAILABLE = 503
MAX_RETRY_WAIT_S = 30.0


class ApiError(TdcError):
    """The server answered with an error status; ``problems`` is its JSON problem list."""

    def __init__(
        self,
        status: int,
        problems: list[dict[str, Any]],
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.http_status = status
        self.code = str(problems[0].get("code", "error")) if problems else "error"
        self._problem_list = problems
        self.retry_after = retry_after
        text = "; ".join(str(p.get("message", p)) for p in problems) or f"HTTP {status}"
        super().__init__(text)

    def problems(self) -> list[dict[str, Any]]:
        return list(self._problem_list)


class ServerUnreachable(TdcError):
    """No HTTP answer: connection refused, DNS failure, timeout, connection dropped."""

    code = "server_unreachable"


class _ProgressFile:
    """A binary file that reports how much of it has been read (by httpx, while sending)."""

    def __init__(self, f: IO[bytes], total: int, progress: Progress | None) -> None:
        self._f, self._total, self._progress, self._sent = f, total, progress, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        self._sent += len(chunk)
        if self._progress is not None and chunk:
            self._progress(self._sent, self._total)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and whence == 0:
            self._sent = 0
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def fileno(self) -> int:  # lets httpx compute Content-Length with fstat
        return self._f.fileno()


class TdcClient:
    """A session with the server; ``http`` replaces the httpx client (tests)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout)
        self._headers = headers

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TdcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self._headers, **kw.pop("headers", {})}
        try:
            resp = self._http.request(method, self.base_url + path, headers=headers, **kw)
        except httpx.TransportError as err:
            raise ServerUnreachable(f"cannot reach {self.base_url}: {err}") from None
        if resp.status_code >= 400:
            raise _error(resp)
        return resp

    def _json(self, model: type[M], method: str, path: str, **kw: Any) -> M:
        return model.model_validate_json(self._request(method, path, **kw).content)

    def _list(self, model: type[M], method: str, path: str, **kw: Any) -> builtins.list[M]:
        return TypeAdapter(list[model]).validate_json(self._request(method, path, **kw).content)  # type: ignore[valid-type]

    # --- public and participant ----------------------------------------------------------

    def info(self) -> ServerInfo:
        return self._json(ServerInfo, "GET", "/api/info")

    def datasets(self) -> builtins.list[DatasetPublic]:
        return self._list(DatasetPublic, "GET", "/api/datasets")

    def dataset(self, name: str) -> DatasetPublic:
        return self._json(DatasetPublic, "GET", f"/api/datasets/{name}")

    def pool_uids(self, name: str, dest: Path, *, etag: str | None = None) -> str | None:
        """Download the pool UIDs .npy to ``dest`` unless ``etag`` is current.

        Returns the new ETag, or None when the server answered 304 (``dest`` untouched).
        """
        headers = {**self._headers, **({"If-None-Match": etag} if etag else {})}
        url = f"{self.base_url}/api/datasets/{name}/pool-uids"
        try:
            with self._http.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 304:
                    return None
                if resp.status_code >= 400:
                    resp.read()
                    raise _error(resp)
                tmp = dest.with_name(dest.name + ".part")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tmp.open("wb") as f:
                    for chunk in resp.iter_bytes(1 << 20):
                        f.write(chunk)
                os.replace(tmp, dest)
                return resp.headers.get("etag")
        except httpx.TransportError as err:
            raise ServerUnreachable(f"cannot reach {self.base_url}: {err}") from None

    def download_site(
        self, dest: Path, *, organizer: bool = False, max_bytes: int | None = None
    ) -> Path:
        """The static leaderboard site as a zip (``GET /api/site.zip``), streamed to ``dest``.

        ``organizer=True`` asks for the organizers' view (hidden tests too; organizer token).
        More than ``max_bytes`` received raises ``TdcError`` and leaves ``dest`` alone.
        """
        url = f"{self.base_url}/api/site.zip"
        params = {"organizer": "1"} if organizer else None
        tmp = dest.with_name(dest.name + ".part")
        try:
            with self._http.stream("GET", url, headers=self._headers, params=params) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error(resp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                received = 0
                with tmp.open("wb") as f:
                    for chunk in resp.iter_bytes(1 << 20):
                        received += len(chunk)
                        if max_bytes is not None and received > max_bytes:
                            raise TdcError(f"the site archive exceeds {max_bytes:,} bytes")
                        f.write(chunk)
                os.replace(tmp, dest)
        except httpx.TransportError as err:
            raise ServerUnreachable(f"cannot reach {self.base_url}: {err}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def submit(
        self,
        path: Path,
        *,
        dataset: str,
        fraction: float,
        task: str | None = None,
        recipe: str | None = None,
        name: str | None = None,
        kind: Literal["submission", "baseline", "oracle"] | None = None,
        team: str | None = None,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
        retries: int = 2,
    ) -> SubmissionPublic:
        """Upload a subset file; retried under one Idempotency-Key on connection failures and
        on 503 (after its Retry-After)."""
        fields = {"dataset": dataset, "fraction": repr(float(fraction)), "task": task,
                  "recipe": recipe, "name": name, "kind": kind, "team": team}  # fmt: skip
        data = {k: v for k, v in fields.items() if v is not None}
        key = idempotency_key or uuid.uuid4().hex
        total = Path(path).stat().st_size
        for attempt in range(retries + 1):
            with Path(path).open("rb") as f:
                upload = _ProgressFile(f, total, progress)
                try:
                    return self._json(
                        SubmissionPublic,
                        "POST",
                        "/api/submissions",
                        data=data,
                        files={"file": (Path(path).name, upload, "application/octet-stream")},
                        headers={"Idempotency-Key": key},
                    )
                except ServerUnreachable:
                    if attempt == retries:
                        raise
                except ApiError as err:  # 503: its database or storage is briefly down
                    if err.status != UNAVAILABLE or attempt == retries:
                        raise
                    time.sleep(min(err.retry_after or 1.0, MAX_RETRY_WAIT_S))
        raise AssertionError("unreachable")

    def get(self, submission_id: int) -> SubmissionDetail:
        return self._json(SubmissionDetail, "GET", f"/api/submissions/{submission_id}")

    def list(
        self, *, dataset: str | None = None, state: State | None = None, limit: int = 100
    ) -> builtins.list[SubmissionPublic]:
        params = _params(dataset=dataset, state=state, limit=limit)
        return self._list(SubmissionPublic, "GET", "/api/submissions", params=params)

    def cancel(self, submission_id: int, *, reason: str | None = None) -> SubmissionPublic:
        params = _params(reason=reason)
        return self._json(
            SubmissionPublic, "DELETE", f"/api/submissions/{submission_id}", params=params
        )

    def picks(self, *, dataset: str | None = None, team: str | None = None) -> builtins.list[Picks]:
        """Final picks per dataset with hidden tests (organizers: ``team``'s)."""
        return self._list(Picks, "GET", "/api/picks", params=_params(dataset=dataset, team=team))

    def change_picks(
        self, *, pick: Sequence[int] = (), unpick: Sequence[int] = (), reason: str | None = None
    ) -> builtins.list[Picks]:
        """Unpick, then pick, all or nothing; the picks of each dataset it touched."""
        body = PickChange(pick=list(pick), unpick=list(unpick), reason=reason)
        return self._list(Picks, "POST", "/api/picks", json=body.model_dump(mode="json"))

    def follow(
        self, submission_id: int, *, poll_s: float = 5.0, timeout_s: float | None = None
    ) -> Iterator[SubmissionDetail]:
        """Yield the submission whenever its state (or its job's) changes, until a final state."""
        import time

        start, last = time.monotonic(), None
        while True:
            sub = self.get(submission_id)
            if (sub.state, sub.job_state) != last:
                last = (sub.state, sub.job_state)
                yield sub
            if sub.state in FINAL_STATES:
                return
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise TimeoutError(f"submission {submission_id} still {sub.state.value}")
            time.sleep(poll_s)

    def wait(
        self, submission_id: int, *, poll_s: float = 5.0, timeout_s: float | None = None
    ) -> SubmissionDetail:
        """Poll until the submission reaches a final state; returns it."""
        *_, final = self.follow(submission_id, poll_s=poll_s, timeout_s=timeout_s)
        return final

    def leaderboard(
        self,
        dataset: str,
        *,
        fraction: float | None = None,
        task: str | None = None,
        recipe: str | None = None,
        format: Literal["json", "csv"] = "json",
    ) -> Any:
        """The raw board: parsed JSON, or the CSV text."""
        params = _params(fraction=fraction, task=task, recipe=recipe, format=format)
        resp = self._request("GET", f"/api/leaderboard/{dataset}", params=params)
        return resp.text if format == "csv" else resp.json()

    # --- organizer -----------------------------------------------------------------------

    def claim(
        self,
        worker: str,
        *,
        max_jobs: int = 10,
        lease_seconds: int = 600,
        dataset: str | None = None,
    ) -> builtins.list[ClaimedSubmission]:
        body = ClaimRequest(
            worker=worker, max_jobs=max_jobs, lease_seconds=lease_seconds, dataset=dataset
        )
        return self._list(
            ClaimedSubmission, "POST", "/api/organizer/claim", json=body.model_dump(mode="json")
        )

    def heartbeat(
        self,
        submission_id: int,
        lease_token: str,
        *,
        lease_seconds: int = 600,
        job_id: str | None = None,
        job_state: str | None = None,
    ) -> LeaseStatus:
        body = Heartbeat(
            lease_token=lease_token, lease_seconds=lease_seconds, job_id=job_id, job_state=job_state
        )
        return self._json(
            LeaseStatus,
            "POST",
            f"/api/organizer/submissions/{submission_id}/heartbeat",
            json=body.model_dump(mode="json"),
        )

    def download_file(self, submission_id: int, dest: Path) -> Path:
        """The submission's stored .npy, streamed to ``dest``."""
        url = f"{self.base_url}/api/organizer/submissions/{submission_id}/file"
        try:
            with self._http.stream("GET", url, headers=self._headers) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error(resp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with dest.open("wb") as f:
                    for chunk in resp.iter_bytes(1 << 20):
                        f.write(chunk)
        except httpx.TransportError as err:
            raise ServerUnreachable(f"cannot reach {self.base_url}: {err}") from None
        return dest

    def post_result(
        self, submission_id: int, lease_token: str, result: EvalResult
    ) -> SubmissionPublic:
        body = ResultPost(lease_token=lease_token, result=result)
        return self._json(
            SubmissionPublic,
            "POST",
            f"/api/organizer/submissions/{submission_id}/result",
            json=body.model_dump(mode="json"),
        )

    def fail(
        self,
        submission_id: int,
        lease_token: str,
        *,
        kind: Literal["user", "infra"],
        message: str,
        log_tail: str | None = None,
    ) -> SubmissionPublic:
        body = FailurePost(
            lease_token=lease_token, kind=kind, message=message[:10_000],
            log_tail=log_tail[-100_000:] if log_tail else None,
        )  # fmt: skip
        return self._json(
            SubmissionPublic,
            "POST",
            f"/api/organizer/submissions/{submission_id}/fail",
            json=body.model_dump(mode="json"),
        )

    def moderate(
        self,
        submission_id: int,
        action: Literal[
            "requeue", "cancel", "hide", "unhide", "disqualify", "requalify", "rescore"
        ],
        reason: str,
    ) -> SubmissionPublic:
        return self._json(
            SubmissionPublic,
            "POST",
            f"/api/organizer/submissions/{submission_id}/{action}",
            json=AdminAction(reason=reason).model_dump(),
        )

    def requeue(self, submission_id: int, reason: str) -> SubmissionPublic:
        return self.moderate(submission_id, "requeue", reason)

    def hide(self, submission_id: int, reason: str) -> SubmissionPublic:
        return self.moderate(submission_id, "hide", reason)

    def unhide(self, submission_id: int, reason: str) -> SubmissionPublic:
        return self.moderate(submission_id, "unhide", reason)

    def disqualify(self, submission_id: int, reason: str) -> SubmissionPublic:
        return self.moderate(submission_id, "disqualify", reason)

    def rescore(self, submission_id: int, reason: str) -> SubmissionPublic:
        """Evaluate a scored submission again (its scores leave the boards until then)."""
        return self.moderate(submission_id, "rescore", reason)

    def post_references(
        self,
        results: Sequence[EvalResult],
        *,
        kind: Literal["oracle", "baseline"] = "oracle",
        team: str | None = None,
        name: str | None = None,
    ) -> ReferencesRecorded:
        """Record results without a subset file (the oracle, seed-averaged baselines) as
        unranked reference rows; idempotent. ``team`` defaults to the server's (``oracle``),
        ``name`` labels the row."""
        extra = {"team": team} if team else {}
        body = ReferencePost(kind=kind, name=name, results=list(results), **extra)
        return self._json(
            ReferencesRecorded,
            "POST",
            "/api/organizer/references",
            json=body.model_dump(mode="json"),
        )

    def list_all(
        self,
        *,
        state: State | None = None,
        dataset: str | None = None,
        team: str | None = None,
        limit: int = 100,
    ) -> builtins.list[SubmissionPublic]:
        params = _params(state=state, dataset=dataset, team=team, limit=limit)
        return self._list(SubmissionPublic, "GET", "/api/organizer/submissions", params=params)


def _params(**kw: Any) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, State) else v) for k, v in kw.items() if v is not None}


def _error(resp: httpx.Response) -> ApiError:
    try:
        body = resp.json()
        problems = body.get("problems") if isinstance(body, dict) else None
    except ValueError:
        problems = None
    if not isinstance(problems, list):
        problems = [
            {"code": f"http_{resp.status_code}", "message": resp.text[:500] or resp.reason_phrase}
        ]
    retry = resp.headers.get("retry-after")
    return ApiError(
        resp.status_code,
        problems,
        retry_after=float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
    )
