"""The leaderboard as a static site: the server's pages, written as files for plain hosting.

    files = write_static_site(db=db, pages=PageService(ctx), out=Path("site"))
    # site/index.html, site/board-...html/.csv/.json, site/submission-7.html, site/team-...html,
    # site/static/style.css + sort.js

Every link is relative and points at a written file; exports sit next to their board. Public
visibility by default (hidden tests and hidden submissions left out); ``organizer=True`` writes
the organizers' view, which must not be published.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from leaderboard import render
from leaderboard.export import board_csv, board_public
from leaderboard.phases import utcnow
from leaderboard.render import StaticLinks
from server.models import Submission, Team
from server.services import public_rows
from server.services.boards import recipe_versions
from server.services.page_data import PageService

log = logging.getLogger(__name__)


def write_static_site(
    *,
    db: Session,
    pages: PageService,
    out: Path,
    organizer: bool = False,
    now: datetime | None = None,
) -> list[Path]:
    """Write every page and export under ``out``; the written paths."""
    now = now or utcnow()
    out.mkdir(parents=True, exist_ok=True)
    render.copy_static(out)
    viewer = public_rows.ORGANIZER if organizer else public_rows.PUBLIC
    stmt = select(Submission)
    if not organizer:
        stmt = stmt.where(*public_rows.ON_PUBLIC_BOARDS)
    subs = db.exec(stmt.order_by(col(Submission.id))).all()
    published = {s.id for s in subs if s.id is not None}
    links = StaticLinks(published=published)
    written = [
        _write(
            out / "index.html",
            render.render_home(
                datasets=pages.home(db=db, organizer=organizer, now=now),
                links=links,
                not_hosted=pages.not_hosted(db=db),
                generated_at=now,
            ),
        )
    ]
    for name in pages.ctx.catalog.names():
        written += _boards(db, pages, out, links, name, organizer=organizer, now=now)
    for sid in sorted(published):
        sub = pages.submission(db=db, submission_id=sid, viewer=viewer, now=now)
        html = render.render_submission(sub=sub, links=links, generated_at=now)
        written.append(_write(out / str(links.submission(sid)), html))
    team_ids = {s.team_id for s in subs}
    for team in db.exec(select(Team).where(col(Team.id).in_(team_ids))).all():
        team_view = pages.team(db=db, name=team.name, viewer=viewer, now=now)
        html = render.render_team(team=team_view, links=links, generated_at=now)
        written.append(_write(out / links.team(team.name), html))
    log.info("wrote %d files to %s", len(written), out)
    return written


def _boards(
    db: Session,
    pages: PageService,
    out: Path,
    links: StaticLinks,
    dataset: str,
    *,
    organizer: bool,
    now: datetime,
) -> list[Path]:
    spec = pages.ctx.catalog.spec(dataset)
    present = recipe_versions(db=db, dataset=dataset)
    default = (spec.default_recipe, pages.recipe_version(spec.default_recipe))
    tasks: list[str | None] = [None, *pages.visible(spec, organizer=organizer, now=now)]
    written: list[Path] = []
    for recipe, version in sorted({default, *present}):
        for fraction in spec.fractions:
            for task in tasks:
                for all_entries in (False, True):
                    page = pages.board_page(
                        db=db,
                        dataset=dataset,
                        fraction=fraction,
                        recipe=recipe,
                        version=version,
                        task=task,
                        all_entries=all_entries,
                        organizer=organizer,
                        now=now,
                    )
                    where = dict(
                        fraction=fraction,
                        recipe=recipe,
                        version=version,
                        task=task,
                        all_entries=all_entries,
                    )
                    html = render.render_board(page=page, links=links, generated_at=now)
                    written.append(_write(out / links.board(dataset, **where), html))
                    csv_text = board_csv(page.board, budget=page.budget)
                    written.append(_write(out / links.export(dataset, "csv", **where), csv_text))
                    js = board_public(page.board, budget=page.budget).model_dump_json(indent=1)
                    written.append(_write(out / links.export(dataset, "json", **where), js))
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
