"""Unpacking a zip from a server without trusting it (the static leaderboard site).

    files = extract_zip(Path("site.zip"), Path("site"))        # the paths written
    extract_zip(path, out, max_total_bytes=1 << 28, max_files=10_000)

Every member is checked before anything is written: absolute names, drive letters,
backslashes, ``..`` components, symbolic links and other special files, encrypted or duplicate
members all raise :class:`UnsafeArchive`; so do more than ``max_files`` files or more than
``max_total_bytes`` once unpacked (declared sizes are checked up front and the bytes actually
inflated are counted again while writing, so a lying header cannot fill the disk; a member
whose data does not match its header stops the unpacking there). Nothing is written through a
symbolic link that already exists under the destination.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from submissions.errors import TdcError

MAX_TOTAL_BYTES = 1 << 30  # 1 GiB unpacked
MAX_FILES = 100_000
_CHUNK = 1 << 20


class UnsafeArchive(TdcError):
    """A zip member that would escape the destination, or an archive too large to unpack."""

    code = "unsafe_archive"


def extract_zip(
    archive: Path,
    dest: Path,
    *,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
) -> list[Path]:
    """Unpack the regular files of ``archive`` under ``dest``; the paths written, in order."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise UnsafeArchive(f"{archive} is not a zip archive: {err}") from None
    with zf:
        members = _checked_members(zf, max_total_bytes=max_total_bytes, max_files=max_files)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        written: list[Path] = []
        budget = max_total_bytes
        for info, rel in members:
            target = _target(root, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            budget = _copy(zf, info, target, budget=budget)
            if budget < 0:
                raise UnsafeArchive(f"{archive} unpacks to more than {max_total_bytes:,} bytes")
            written.append(target)
    return written


def _copy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, budget: int) -> int:
    """Inflate one member into ``target``; the budget left (negative: stopped over it)."""
    try:
        with zf.open(info) as src, target.open("wb") as out:
            while chunk := src.read(_CHUNK):
                budget -= len(chunk)
                if budget < 0:
                    return budget
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # CRC or size not as declared
        raise UnsafeArchive(f"zip member {info.filename!r} is corrupt: {err}") from None
    return budget


def _checked_members(
    zf: zipfile.ZipFile, *, max_total_bytes: int, max_files: int
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    seen: set[PurePosixPath] = set()
    for info in zf.infolist():
        rel = member_path(info)
        if rel is None:  # a directory entry: directories are made as files need them
            continue
        if rel in seen:
            raise UnsafeArchive(f"zip member {info.filename!r} appears twice")
        seen.add(rel)
        members.append((info, rel))
    if len(members) > max_files:
        raise UnsafeArchive(f"the archive holds {len(members):,} files (at most {max_files:,})")
    declared = sum(info.file_size for info, _ in members)
    if declared > max_total_bytes:
        raise UnsafeArchive(
            f"the archive unpacks to {declared:,} bytes (at most {max_total_bytes:,})"
        )
    return members


def member_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The relative path of a regular-file member; None for a directory; UnsafeArchive else."""
    name = info.filename
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise UnsafeArchive(f"zip member {name!r} is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchive(f"zip member {name!r} is not a regular file")
    if info.flag_bits & 0x1:
        raise UnsafeArchive(f"zip member {name!r} is encrypted")
    if not name or "\\" in name or "\x00" in name:
        raise UnsafeArchive(f"zip member {name!r} has an unusable name")
    if name.startswith("/") or PureWindowsPath(name).drive:
        raise UnsafeArchive(f"zip member {name!r} has an absolute path")
    rel = PurePosixPath(name)
    if ".." in rel.parts:
        raise UnsafeArchive(f"zip member {name!r} points outside the destination ('..')")
    if info.is_dir() or kind == stat.S_IFDIR:
        return None
    if not rel.parts or rel.parts == (".",):
        raise UnsafeArchive(f"zip member {name!r} has an unusable name")
    return rel


def _target(root: Path, rel: PurePosixPath) -> Path:
    """``root / rel``, refusing to pass through (or overwrite) an existing symbolic link."""
    cur = root
    for part in rel.parts:
        cur = cur / part
        if cur.is_symlink():
            raise UnsafeArchive(f"refusing to write through the symbolic link {cur}")
    return cur
