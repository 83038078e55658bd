"""The leaderboard as a static site: ``tdc-harness report leaderboard`` against a live server
(``GET /api/site.zip`` over loopback HTTP), and ``tdc-server report`` from the database."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlmodel import Session

from harness.cli.main import main
from server.context import ServerContext
from server.db import make_engine, migrate
from server.live import LiveServer, free_port
from server.services.auth import create_team, get_team, issue_token
from tests.infra.html_probe import external, parse
from tests.server.board_seed import World, build_world
from tests.server.conftest import make_settings
from tests.server.helpers import live_env


@dataclass(frozen=True)
class Site:
    url: str
    world: World
    tokens: dict[str, str]
    env: dict[str, str]


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, server_configs: Path, data_root: Path
) -> Iterator[Site]:
    """The standard board world in a SQLite file, served by a real server on 127.0.0.1."""
    root = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{root / 'tdc.db'}"
    settings = make_settings(
        root, server_configs=server_configs, data_root=data_root, database_url=url
    )
    engine = make_engine(url)
    migrate(engine)
    ctx = ServerContext.from_settings(settings)
    tokens = {}
    with Session(engine) as db:
        ctx.catalog.sync(db)
        tokens["ops"], _ = issue_token(
            db=db, team=create_team(db=db, name="ops"), scope="organizer"
        )
    world = build_world(engine, ctx)
    with Session(engine) as db:
        team = get_team(db=db, name="alpha")
        tokens["alpha"], _ = issue_token(db=db, team=team, scope="participant")
    engine.dispose()
    env = live_env(root, url=url, server_configs=server_configs, data_root=data_root)
    with LiveServer.start(env=env, log_path=root / "server.log") as server:
        yield Site(server.url, world, tokens, env)


@pytest.fixture(autouse=True)
def _no_ambient_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TDC_TOKEN", "TDC_ORGANIZER_TOKEN", "TDC_SERVER"):
        monkeypatch.delenv(var, raising=False)


def report(out: Path, server: str, *extra: str) -> int:
    return main(["report", "leaderboard", "--out", str(out), "--server", server, *extra])


def board_link(out: Path) -> str:
    home = parse((out / "index.html").read_text())
    return next(u for u in home.urls if u.startswith("board--tiny--0.1--linear_probe--v1-"))


def assert_self_contained(out: Path) -> None:
    pages = sorted(out.glob("*.html"))
    assert (out / "index.html") in pages and (out / "static" / "style.css").exists()
    for html_path in pages:
        page = parse(html_path.read_text())
        assert external(page.urls) == [], html_path.name
        for link in page.urls:
            if link.startswith("data:"):
                continue
            assert not urlsplit(link).netloc and not link.startswith("/"), link  # relative
            target = out / urlsplit(link).path
            assert target.exists(), f"{html_path.name} links to missing {link}"


def test_static_site_is_complete_and_self_contained(
    tmp_path: Path, live: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    assert report(out, live.url) == 0
    written = sum(1 for p in out.rglob("*") if p.is_file())
    assert f"wrote {written} files to {out}" in capsys.readouterr().out
    assert_self_contained(out)
    # the hidden submission is not published; the public ones are
    assert not (out / f"submission-{live.world.ids['epsilon']}.html").exists()
    assert (out / f"submission-{live.world.ids['alpha_all']}.html").exists()
    # the 10% board of the static site ranks like the server's page
    link = board_link(out)
    board = parse((out / link).read_text()).tables[0]
    assert board.column("Rank") == ["ref", "1", "2", "ref"]
    assert [c.split()[0] for c in board.column("Team / method")] == [
        "oracle",
        "alpha",
        "beta",
        "random_filter",
    ]
    rows = list(csv.DictReader((out / link.replace(".html", ".csv")).open()))
    assert [r["label"] for r in rows] == ["oracle", "alpha", "beta", "random_filter"]
    assert "test2" not in board.headers  # public view: the hidden test is left out


def test_organizer_site_includes_hidden_tests(tmp_path: Path, live: Site) -> None:
    out = tmp_path / "internal"
    assert report(out, live.url, "--organizer", "--token", live.tokens["ops"]) == 0
    assert_self_contained(out)
    assert (out / f"submission-{live.world.ids['epsilon']}.html").exists()
    assert "test2" in parse((out / board_link(out)).read_text()).tables[0].headers


def test_organizer_token_comes_from_the_environment(
    tmp_path: Path, live: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TDC_ORGANIZER_TOKEN", live.tokens["ops"])
    monkeypatch.setenv("TDC_SERVER", live.url)
    out = tmp_path / "internal"
    assert main(["report", "leaderboard", "--out", str(out), "--organizer"]) == 0
    assert (out / f"submission-{live.world.ids['epsilon']}.html").exists()


def test_a_participant_gets_no_organizer_view(
    tmp_path: Path, live: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nope"
    assert report(out, live.url, "--organizer", "--token", live.tokens["alpha"]) == 2
    assert "organizer token" in capsys.readouterr().err
    assert not out.exists()
    assert report(out, live.url, "--organizer") == 2  # no token at all: refused before asking
    auth = {"Authorization": f"Bearer {live.tokens['alpha']}"}
    site = f"{live.url}/api/site.zip"
    assert httpx.get(site, params={"organizer": 1}, headers=auth).status_code == 403
    assert httpx.get(site, params={"organizer": 1}).status_code == 401
    public = httpx.get(site, headers=auth)
    assert public.status_code == 200 and public.headers["content-type"] == "application/zip"


def test_unreachable_server_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report(tmp_path / "x", f"http://127.0.0.1:{free_port()}") == 2
    assert "cannot reach" in capsys.readouterr().err


def test_server_cli_writes_the_same_site_from_the_database(
    tmp_path: Path, live: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.cli import main as server_main

    for key, value in live.env.items():
        monkeypatch.setenv(key, value)
    direct, downloaded = tmp_path / "direct", tmp_path / "downloaded"
    assert server_main(["report", "--out", str(direct)]) == 0
    assert report(downloaded, live.url) == 0
    assert_self_contained(direct)

    def names(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}

    assert names(direct) == names(downloaded)
    assert server_main(["report", "--out", str(tmp_path / "org"), "--organizer"]) == 0
    assert (tmp_path / "org" / f"submission-{live.world.ids['epsilon']}.html").exists()
