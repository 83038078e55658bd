"""The static leaderboard site as one zip archive (what ``GET /api/site.zip`` serves).

    data = site_zip(db=db, pages=pages, organizer=False)    # bytes of a .zip
    # index.html, board-...html/.csv/.json, submission-7.html, team-...html, static/...

The site is built by :func:`server.services.static_site.write_static_site` into a temporary
directory and packed with relative names (forward slashes, no directories, no links), so a
client can unpack it anywhere and open ``index.html``.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from server.services.page_data import PageService
from server.services.static_site import write_static_site


def site_zip(
    *, db: Session, pages: PageService, organizer: bool = False, now: datetime | None = None
) -> bytes:
    """Every page and export of the static site, zipped (deflate)."""
    with tempfile.TemporaryDirectory(prefix="tdc-site-") as tmp:
        root = Path(tmp)
        write_static_site(db=db, pages=pages, out=root, organizer=organizer, now=now)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                zf.write(path, path.relative_to(root).as_posix())
        return buf.getvalue()
