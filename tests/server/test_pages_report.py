"""``tdc-harness report leaderboard``: the pages as a static site, from a database URL."""

from __future__ import annotations

import csv
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session

from harness.cli.main import main
from server.context import ServerContext
from server.db import make_engine, migrate
from server.services.auth import create_team
from tests.infra.html_probe import external, parse
from tests.server.board_seed import World, build_world
from tests.server.conftest import make_settings


@pytest.fixture
def seeded(
    tmp_path: Path, server_configs: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, World]:
    url = f"sqlite:///{tmp_path / 'tdc.db'}"
    settings = make_settings(
        tmp_path, server_configs=server_configs, data_root=data_root, database_url=url
    )
    engine = make_engine(url)
    migrate(engine)
    ctx = ServerContext.from_settings(settings)
    with Session(engine) as db:
        ctx.catalog.sync(db)
        create_team(db=db, name="ops")
    world = build_world(engine, ctx)
    engine.dispose()
    for key, value in {
        "TDC_CONFIGS_DIR": server_configs,
        "TDC_DATA_ROOT": data_root,
        "TDC_STORAGE_DIR": tmp_path / "storage",
    }.items():
        monkeypatch.setenv(key, str(value))
    return url, world


def test_static_site_is_complete_and_self_contained(
    tmp_path: Path, seeded: tuple[str, World]
) -> None:
    url, world = seeded
    out = tmp_path / "site"
    assert main(["report", "leaderboard", "--out", str(out), "--database-url", url]) == 0
    pages = sorted(out.glob("*.html"))
    assert (out / "index.html") in pages and (out / "static" / "style.css").exists()
    for html_path in pages:
        page = parse(html_path.read_text())
        assert external(page.urls) == [], html_path.name
        for link in page.urls:
            if link.startswith("data:"):
                continue
            target = out / urlsplit(link).path
            assert target.exists(), f"{html_path.name} links to missing {link}"
    # the hidden submission is not published; the public ones are
    assert not (out / f"submission-{world.ids['epsilon']}.html").exists()
    assert (out / f"submission-{world.ids['alpha_all']}.html").exists()
    # the 10% board of the static site ranks like the server's page
    home = parse((out / "index.html").read_text())
    board_link = next(u for u in home.urls if u.startswith("board--tiny--0.1--linear_probe--v1-"))
    board = parse((out / board_link).read_text()).tables[0]
    assert board.column("Rank") == ["ref", "1", "2", "ref"]
    assert [c.split()[0] for c in board.column("Team / method")] == [
        "oracle",
        "alpha",
        "beta",
        "random_filter",
    ]
    rows = list(csv.DictReader((out / board_link.replace(".html", ".csv")).open()))
    assert [r["label"] for r in rows] == ["oracle", "alpha", "beta", "random_filter"]
    assert "test2" not in board.headers  # public view: the hidden test is left out


def test_organizer_site_includes_hidden_tests(tmp_path: Path, seeded: tuple[str, World]) -> None:
    url, world = seeded
    out = tmp_path / "internal"
    assert (
        main(["report", "leaderboard", "--out", str(out), "--database-url", url, "--organizer"])
        == 0
    )
    assert (out / f"submission-{world.ids['epsilon']}.html").exists()
    home = parse((out / "index.html").read_text())
    board_link = next(u for u in home.urls if u.startswith("board--tiny--0.1--linear_probe--v1-"))
    assert "test2" in parse((out / board_link).read_text()).tables[0].headers


def test_bad_database_url_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["report", "leaderboard", "--out", str(tmp_path / "x"), "--database-url", "nope://"]
    )
    assert code != 0
