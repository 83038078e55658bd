"""HTML pages from Jinja2 templates, for the server and for static reports alike.

    html = render_board(page=page, links=ServerLinks())      # served at /datasets/demo?...
    html = render_board(page=page, links=StaticLinks())      # written as a file by a report
    copy_static(out_dir)                                     # style.css + sort.js next to it

Pages work without JavaScript (the optional script only sorts table columns) and load nothing
from outside the host: styles and script are files of this package, fonts are the system's,
plots are inline SVG. Links go through a ``Links`` object so the same templates serve both
the live server (query strings) and a static site (flat file names).
"""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from leaderboard import plots
from leaderboard.intervals import GROUP_NOTE, rank_label
from leaderboard.views import BoardPage, DatasetInfo, SubmissionView, TeamView

STATIC_DIR = Path(__file__).parent / "static"


class Links(Protocol):
    """Where each page lives; ``None`` from ``submission`` means "not published, no link"."""

    def home(self) -> str: ...
    def board(
        self,
        dataset: str,
        *,
        fraction: float,
        recipe: str,
        version: str,
        task: str | None = None,
        all_entries: bool = False,
    ) -> str: ...
    def export(
        self,
        dataset: str,
        fmt: str,
        *,
        fraction: float,
        recipe: str,
        version: str,
        task: str | None = None,
        all_entries: bool = False,
    ) -> str: ...
    def submission(self, sid: int) -> str | None: ...
    def team(self, name: str) -> str: ...
    def static(self, path: str) -> str: ...


class ServerLinks:
    """Root-relative URLs of the live server."""

    def home(self) -> str:
        return "/"

    def board(self, dataset: str, **kw: Any) -> str:
        return f"/datasets/{quote(dataset, safe='')}?{_query(**kw)}"

    def export(self, dataset: str, fmt: str, **kw: Any) -> str:
        return f"/api/leaderboard/{quote(dataset, safe='')}?{_query(**kw)}&format={fmt}"

    def submission(self, sid: int) -> str | None:
        return f"/submissions/{sid}"

    def team(self, name: str) -> str:
        return f"/teams/{quote(name, safe='')}"

    def static(self, path: str) -> str:
        return f"/static/{path}"


def _query(
    *,
    fraction: float,
    recipe: str,
    version: str,
    task: str | None = None,
    all_entries: bool = False,
) -> str:
    q: dict[str, str] = {"fraction": f"{fraction:g}", "recipe": recipe, "version": version}
    if task:
        q["task"] = task
    if all_entries:
        q["all"] = "1"
    return urlencode(q)


class StaticLinks:
    """Flat, relative file names: every page sits in one directory next to ``static/``."""

    def __init__(self, published: set[int] | None = None) -> None:
        self.published = published

    def home(self) -> str:
        return "index.html"

    def board(self, dataset: str, **kw: Any) -> str:
        return board_stem(dataset, **kw) + ".html"

    def export(self, dataset: str, fmt: str, **kw: Any) -> str:
        return board_stem(dataset, **kw) + f".{fmt}"

    def submission(self, sid: int) -> str | None:
        if self.published is not None and sid not in self.published:
            return None
        return f"submission-{sid}.html"

    def team(self, name: str) -> str:
        return f"team-{slug(name)}.html"

    def static(self, path: str) -> str:
        return f"static/{path}"


def slug(text: str) -> str:
    """A file-name-safe, collision-free name: readable part + short hash of the exact text."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:40] or "x"
    return f"{readable}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def board_stem(
    dataset: str,
    *,
    fraction: float,
    recipe: str,
    version: str,
    task: str | None = None,
    all_entries: bool = False,
) -> str:
    parts = ["board", dataset, f"{fraction:g}", recipe, f"v{version}"]
    parts += [task] if task else []
    parts += ["all"] if all_entries else []
    return slug("--".join(parts))


# --- formatting (Jinja filters) ------------------------------------------------------------


def fmt_num(v: float | None) -> str:
    """Metric values: 3 decimals in the usual ranges, scientific when tiny, 1 when large."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a >= 100:
        return f"{v:.1f}"
    if a >= 0.01 or a == 0:
        return f"{v:.3f}"
    return f"{v:.2e}"


def fmt_pm(mean: float | None, std: float | None) -> Markup:
    """``mean ± std`` with the std de-emphasised; no ``±`` part when std is 0 or unknown."""
    if mean is None:
        return Markup("–")
    # Both parts are formatted numbers (digits, sign, point, exponent): nothing to escape, and
    # skipping Markup.format matters on boards of thousands of cells.
    if not std:
        return Markup(fmt_num(mean))
    return Markup(f'{fmt_num(mean)}<span class="pm"> ± {fmt_std(std)}</span>')


def fmt_ci(mean: float | None, std: float | None, ci: tuple[float, float] | None) -> Markup:
    """``mean [low, high]`` where a 95% interval is known (it includes the seeds' spread, so
    no ± beside it), else :func:`fmt_pm`."""
    if mean is None or ci is None:
        return fmt_pm(mean, std)
    return Markup(f'{fmt_num(mean)}<span class="ci"> [{fmt_num(ci[0])}, {fmt_num(ci[1])}]</span>')


def fmt_std(std: float) -> str:
    """A std next to a 3-decimal mean: 3 decimals too, unless it would read as zero."""
    a = abs(std)
    if a >= 100:
        return f"{std:.1f}"
    return f"{std:.3f}" if a >= 0.0005 else f"{std:.1e}"


def fmt_fraction(f: float) -> str:
    return f"{f * 100:g}%"


def fmt_time(dt: datetime | None) -> str:
    return "–" if dt is None else dt.strftime("%Y-%m-%d %H:%M UTC")


def fmt_date(dt: datetime | None) -> str:
    return "–" if dt is None else dt.strftime("%Y-%m-%d")


def breakable(text: str) -> Markup:
    """Identifiers like ``balanced_accuracy`` may wrap after an underscore in narrow headers."""
    return Markup("_<wbr>").join(text.split("_"))


def fmt_int(v: int | None) -> str:
    return "–" if v is None else f"{v:,}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("leaderboard", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=fmt_num,
        fraction=fmt_fraction,
        time=fmt_time,
        date=fmt_date,
        int=fmt_int,
        breakable=breakable,
    )
    env.globals.update(pm=fmt_pm, ci=fmt_ci, rank_label=rank_label, group_note=GROUP_NOTE,
                       palette=plots.palette, zip=zip)  # fmt: skip
    return env


def _render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


# --- pages ---------------------------------------------------------------------------------


def render_home(
    *,
    datasets: Sequence[DatasetInfo],
    links: Links,
    not_hosted: Sequence[str] = (),
    generated_at: datetime | None = None,
) -> str:
    return _render("home.html", datasets=datasets, links=links, not_hosted=not_hosted,
                   generated_at=generated_at)  # fmt: skip


Pill = tuple[str, str, bool]  # label, href, current


@dataclass(frozen=True)
class BoardNav:
    """The board's switches (links, so they work without JavaScript)."""

    fractions: list[Pill]
    recipes: list[Pill]
    tasks: list[Pill]
    entries: list[Pill]


def board_nav(page: BoardPage, links: Links) -> BoardNav:
    ds, key, all_e = page.dataset, page.board.key, page.board.all_entries
    here: dict[str, Any] = dict(
        fraction=key.fraction, recipe=key.recipe, version=key.recipe_version, task=key.task
    )

    def to(**change: Any) -> str:
        return links.board(ds.name, **{**here, "all_entries": all_e, **change})

    recipes = page.recipes or ((key.recipe, key.recipe_version),)
    multi_version = len({r for r, _ in recipes}) < len(recipes)
    return BoardNav(
        fractions=[
            (fmt_fraction(f), to(fraction=f), math.isclose(f, key.fraction)) for f in ds.fractions
        ],
        recipes=[
            (
                f"{r} v{v}" if multi_version else r,
                to(recipe=r, version=v),
                (r, v) == (key.recipe, key.recipe_version),
            )
            for r, v in recipes
        ],
        tasks=[("all tasks", to(task=None), key.task is None)]
        + [
            (t.name, to(task=t.name), key.task == t.name)
            for t in ds.tasks
            if t.phase.public or page.organizer
        ],
        entries=[
            ("best per team", to(all_entries=False), not all_e),
            ("all entries", to(all_entries=True), all_e),
        ],
    )


def render_board(*, page: BoardPage, links: Links, generated_at: datetime | None = None) -> str:
    ds, board = page.dataset, page.board
    metric = ds.primary_metric + (" ↑" if ds.higher_is_better else " ↓")
    chart = plots.line_chart(
        page.series,
        x_label="fraction of the pool (log scale)",
        y_label=f"mean {ds.primary_metric} over tasks",
        title=f"{ds.name}: {ds.primary_metric} vs fraction",
    )
    return _render(
        "board.html",
        page=page,
        ds=ds,
        board=board,
        entries=board.entries[: page.limit],
        metric=metric,
        chart=Markup(chart),
        nav=board_nav(page, links),
        key=board.key,
        here=dict(
            fraction=board.key.fraction,
            recipe=board.key.recipe,
            version=board.key.recipe_version,
            task=board.key.task,
            all_entries=board.all_entries,
        ),
        links=links,
        generated_at=generated_at,
    )


def render_submission(
    *, sub: SubmissionView, links: Links, generated_at: datetime | None = None
) -> str:
    bars = [
        plots.Bar(s.task, s.mean[sub.primary_metric], s.std.get(sub.primary_metric, 0.0), s.ci95)
        for s in sub.scores
        if sub.primary_metric in s.mean
    ]
    markers = [plots.Marker(label, vals) for label, vals in sorted(sub.references.items())]
    chart = plots.bar_chart(
        bars,
        value_label=sub.primary_metric
        + (" (higher is better)" if sub.higher_is_better else " (lower is better)"),
        title=f"submission {sub.id}: {sub.primary_metric} per task",
        markers=markers,
    )
    metrics = sorted({m for s in sub.scores for m in s.mean})
    if sub.primary_metric in metrics:  # primary first
        metrics.remove(sub.primary_metric)
        metrics.insert(0, sub.primary_metric)
    return _render(
        "submission.html",
        sub=sub,
        metrics=metrics,
        chart=Markup(chart),
        markers=markers,
        links=links,
        generated_at=generated_at,
    )


def render_team(*, team: TeamView, links: Links, generated_at: datetime | None = None) -> str:
    return _render("team.html", team=team, links=links, generated_at=generated_at)


def render_not_found(*, message: str, links: Links) -> str:
    return _render("not_found.html", message=message, links=links, generated_at=None)


def copy_static(out_dir: Path) -> None:
    """Copy the stylesheet and script next to static pages (``out_dir/static/``)."""
    dest = out_dir / "static"
    dest.mkdir(parents=True, exist_ok=True)
    for f in STATIC_DIR.iterdir():
        if f.is_file():
            shutil.copyfile(f, dest / f.name)
