"""``harness.archive.extract_zip``: a server's zip is unpacked only inside the destination."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import pytest

from harness.archive import UnsafeArchive, extract_zip


def make_zip(path: Path, members: dict[str, bytes], *, mode: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def test_a_site_unpacks_with_its_folders(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "ok.zip",
        {"index.html": b"<html>", "static/style.css": b"body{}", "static/": b"", "./a.csv": b"x"},
    )
    out = tmp_path / "site"
    written = extract_zip(archive, out)
    root = out.resolve()
    assert written == [root / "index.html", root / "static" / "style.css", root / "a.csv"]
    assert (out / "static" / "style.css").read_bytes() == b"body{}"


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../evil.html", "static/../../evil", "C:/evil", "a\\..\\evil", ""]
)
def test_names_that_escape_are_refused_before_writing(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "bad.zip", {"index.html": b"ok", name: b"evil"})
    out = tmp_path / "site"
    with pytest.raises(UnsafeArchive):
        extract_zip(archive, out)
    assert not out.exists(), "nothing is written when any member is unsafe"
    assert not (tmp_path / "evil.html").exists()


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "link.zip", {"x": b"/etc/passwd"}, mode=stat.S_IFLNK | 0o777)
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        extract_zip(archive, tmp_path / "site")


def test_an_existing_symlink_under_the_destination_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "site"
    out.mkdir()
    (out / "static").symlink_to(outside, target_is_directory=True)
    archive = make_zip(tmp_path / "ok.zip", {"static/style.css": b"body{}"})
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        extract_zip(archive, out)
    assert list(outside.iterdir()) == []


def test_zip_bomb_guard(tmp_path: Path) -> None:
    big = make_zip(tmp_path / "big.zip", {"a": b"0" * 100_000, "b": b"0" * 100_000})
    assert big.stat().st_size < 5_000  # compresses well: the sizes unpacked are what count
    with pytest.raises(UnsafeArchive, match="unpacks to 200,000 bytes"):
        extract_zip(big, tmp_path / "site", max_total_bytes=150_000)
    assert extract_zip(big, tmp_path / "site", max_total_bytes=200_000)
    many = make_zip(tmp_path / "many.zip", {f"f{i}": b"" for i in range(11)})
    with pytest.raises(UnsafeArchive, match="11 files"):
        extract_zip(many, tmp_path / "many", max_files=10)


def test_a_member_larger_than_its_header_says_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "lying.zip", {"a": b"0" * 100_000})
    data = bytearray(archive.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[22:26] = data[central + 24 : central + 28] = struct.pack("<I", 10)  # claims 10 bytes
    archive.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchive, match="corrupt"):
        extract_zip(archive, tmp_path / "site", max_total_bytes=1_000)
    assert (tmp_path / "site" / "a").stat().st_size <= 10


def test_duplicates_and_non_zips_are_refused(tmp_path: Path) -> None:
    dup = tmp_path / "dup.zip"
    with zipfile.ZipFile(dup, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("index.html", b"1")
        zf.writestr("index.html", b"2")
    with pytest.raises(UnsafeArchive, match="twice"):
        extract_zip(dup, tmp_path / "site")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"<html>502 Bad Gateway</html>")
    with pytest.raises(UnsafeArchive, match="not a zip archive"):
        extract_zip(junk, tmp_path / "site")
