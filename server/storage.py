"""Content-addressed file storage and the streaming multipart receiver for uploads.

    storage = Storage(settings.storage_dir)
    staged = await receive_upload(request, storage=storage, max_bytes=cap, max_field_bytes=4096)
    try:
        ...validate staged.path...
        final = storage.commit(staged)          # <root>/subsets/ab/<sha256>.npy, fsynced
    finally:
        staged.discard()                        # no-op after commit

An upload is written chunk by chunk to ``<root>/tmp`` while its sha256 is computed, and is
never held in memory; past the byte cap the temp file is deleted and ``PayloadTooLarge``
raised. Committing is an atomic rename, so a crash leaves either nothing or a whole file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio

from server.errors import InvalidRequest, PayloadTooLarge, Unavailable, UnsupportedMedia

if TYPE_CHECKING:
    from starlette.requests import Request

log = logging.getLogger(__name__)

MAX_PARTS = 16
# Multipart framing around the file: boundaries, part headers and the small fields.
FRAMING_ALLOWANCE = 64 * 1024


class Storage:
    """Files under ``root``: ``subsets/<ab>/<sha256>.npy`` (immutable) and ``tmp/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.subsets_dir = self.root / "subsets"
        self.cache_dir = self.root / "cache"
        for d in (self.tmp_dir, self.subsets_dir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.subsets_dir / sha256[:2] / f"{sha256}.npy"

    def new_temp(self) -> Path:
        return self.tmp_dir / f"{uuid.uuid4().hex}.part"

    def commit(self, staged: StagedUpload) -> Path:
        """Move a staged file to its content address (kept if identical bytes exist)."""
        final = self.path_for(staged.sha256)
        if final.exists():
            staged.discard()
            return final
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged.path, final)
            _fsync_dir(final.parent)
        except OSError as err:  # read-only, full, gone: the caller writes no row for it
            raise unwritable(err) from None
        staged.committed = True
        return final

    def sweep_tmp(self, *, older_than_s: float = 3600) -> int:
        """Delete temp files left by a crash; returns how many."""
        cutoff, n = time.time() - older_than_s, 0
        for p in self.tmp_dir.glob("*.part"):
            if p.stat().st_mtime < cutoff:
                p.unlink(missing_ok=True)
                n += 1
        return n


def unwritable(err: OSError) -> Unavailable:
    log.error("storage not writable: %s", err)
    return Unavailable(
        f"the server cannot store uploads right now ({err.strerror or err}); nothing was "
        "kept: send the same upload again later"
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class StagedUpload:
    """A received upload: the file in ``tmp/``, its sha256 and size, the form's text fields."""

    path: Path
    sha256: str = ""
    nbytes: int = 0
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    committed: bool = False

    def discard(self) -> None:
        if not self.committed:
            try:
                self.path.unlink(missing_ok=True)
            except OSError as err:  # e.g. storage gone read-only: `tdc-server check` finds it
                log.warning("cannot remove %s: %s", self.path, err)


class _Receiver:
    """python-multipart callbacks writing the ``file`` part to disk under a byte cap."""

    def __init__(self, staged: StagedUpload, *, max_bytes: int, max_field_bytes: int) -> None:
        self.staged, self.max_bytes, self.max_field_bytes = staged, max_bytes, max_field_bytes
        self.hash = hashlib.sha256()
        self.out: IO[bytes] | None = None
        self.parts = 0
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""
        self.name: str | None = None
        self.is_file = False
        self.buf = bytearray()

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidRequest(f"too many form parts (at most {MAX_PARTS})")
        self.disposition, self.name, self.is_file = b"", None, False
        self.buf = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]
        if len(self.header_value) > self.max_field_bytes:
            raise InvalidRequest("multipart header too long")

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, opts = parse_options_header(self.disposition)
        if b"name" not in opts:
            raise InvalidRequest("a form part lacks its name")
        self.name = opts[b"name"].decode("utf-8", "replace")
        self.is_file = self.name == "file"
        if self.is_file:
            if self.out is not None:
                raise InvalidRequest("more than one 'file' part")
            filename = opts.get(b"filename")
            self.staged.filename = filename.decode("utf-8", "replace") if filename else None
            self.out = self.staged.path.open("wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if not self.is_file:
            if len(self.buf) + len(chunk) > self.max_field_bytes:
                raise InvalidRequest(f"form field {self.name!r} is too long")
            self.buf.extend(chunk)
            return
        self.staged.nbytes += len(chunk)
        if self.staged.nbytes > self.max_bytes:
            raise PayloadTooLarge(f"the file is larger than the limit of {self.max_bytes} bytes")
        self.hash.update(chunk)
        assert self.out is not None  # opened in on_headers_finished of a file part
        self.out.write(chunk)

    def on_part_end(self) -> None:
        if not self.is_file and self.name is not None:
            if self.name in self.staged.fields:
                raise InvalidRequest(f"form field {self.name!r} given twice")
            self.staged.fields[self.name] = self.buf.decode("utf-8", "replace")

    def finish(self) -> None:
        if self.out is None:
            raise InvalidRequest("the form has no 'file' part")
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()
        self.staged.sha256 = self.hash.hexdigest()

    def close(self) -> None:
        if self.out is not None and not self.out.closed:
            self.out.close()


async def receive_upload(
    request: Request, *, storage: Storage, max_bytes: int, max_field_bytes: int
) -> StagedUpload:
    """Stream a multipart/form-data body to a temp file; 413 past ``max_bytes``, nothing left."""
    boundary = _boundary(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FRAMING_ALLOWANCE:
        raise PayloadTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
    staged = StagedUpload(path=storage.new_temp())
    rx = _Receiver(staged, max_bytes=max_bytes, max_field_bytes=max_field_bytes)
    try:
        await _feed(request, boundary, rx)
        await anyio.to_thread.run_sync(rx.finish)  # fsync off the event loop
    except BaseException as err:
        with contextlib.suppress(OSError):
            rx.close()
        staged.discard()
        if isinstance(err, OSError):
            raise unwritable(err) from None
        raise
    return staged


async def _feed(request: Request, boundary: bytes, rx: _Receiver) -> None:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser

    callbacks = {
        name: getattr(rx, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as err:
        raise InvalidRequest(f"malformed multipart body: {err}") from None


def _boundary(content_type: str) -> bytes:
    from python_multipart.multipart import parse_options_header

    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        raise UnsupportedMedia("the upload must be multipart/form-data")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise InvalidRequest("multipart/form-data without a valid boundary")
    return boundary
