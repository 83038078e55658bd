"""Server-side SVG plots: no plotting library, no script, no network; text is escaped.

    svg = line_chart(series, x_label="fraction of the pool", y_label="accuracy")
    svg = bar_chart(bars, value_label="accuracy", markers=[Marker("random_filter", {...})])
    series = fraction_series(boards_by_fraction, top=6)

Charts scale with their container (``viewBox`` + ``width: 100%``); legends are HTML, made by
the templates from :func:`palette`, so they stay readable on a phone where the SVG shrinks.
Colours are the Okabe-Ito palette (safe for the common colour-vision deficiencies); reference
series (baselines, oracles) are grey and dashed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

from leaderboard.ranking import Board

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
REFERENCE_COLOR = "#6B7280"
DASHES = ("6 4", "2 3", "10 3 2 3")
Scale = Callable[[float], float]
# A presentation attribute, not a style attribute: pages forbid inline styles (their CSP).
FONT = "system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    err: float = 0.0  # ± std over seeds, drawn as a whisker when there is no interval
    ci95: tuple[float, float] | None = None  # drawn as a band


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[Point, ...]
    reference: bool = False


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    err: float = 0.0  # ± std over seeds, the whisker when there is no interval
    ci95: tuple[float, float] | None = None

    def span(self) -> tuple[float, float] | None:
        """The whisker: the 95% interval, else ± the std, else none."""
        if self.ci95 is not None:
            return self.ci95
        return (self.value - self.err, self.value + self.err) if self.err > 0 else None

    def text(self) -> str:
        if self.ci95 is not None:
            return f"{self.value:.3f} [{self.ci95[0]:.3f}, {self.ci95[1]:.3f}]"
        return f"{self.value:.3f}" + (f" ± {self.err:.3f}" if self.err > 0 else "")


@dataclass(frozen=True)
class Marker:
    """A reference value per bar label (e.g. a baseline's score on each task)."""

    label: str
    values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Style:
    color: str
    dash: str | None


def palette(series: Sequence[Series]) -> list[Style]:
    """Colour and dash of each series, in order (the templates draw the legend from it)."""
    out: list[Style] = []
    n_team = n_ref = 0
    for s in series:
        if s.reference:
            out.append(Style(REFERENCE_COLOR, DASHES[n_ref % len(DASHES)]))
            n_ref += 1
        else:
            out.append(Style(PALETTE[n_team % len(PALETTE)], None))
            n_team += 1
    return out


def fraction_series(boards: Mapping[float, Board], *, top: int = 6) -> list[Series]:
    """Score vs fraction of the ``top`` participants (best rank over fractions) and of every
    reference method, from the dataset boards of one recipe."""
    best_rank: dict[str, int] = {}
    points: dict[tuple[str, bool], list[Point]] = {}
    for fraction in sorted(boards):
        for e in boards[fraction].entries:
            if e.score is None:
                continue
            points.setdefault((e.label, e.reference), []).append(
                Point(fraction, e.score, e.score_std or 0.0, e.score_ci95)
            )
            if e.rank is not None:
                best_rank[e.label] = min(best_rank.get(e.label, e.rank), e.rank)
    teams = sorted(best_rank, key=lambda t: (best_rank[t], t))[:top]
    out = [Series(t, tuple(points[(t, False)])) for t in teams]
    refs = sorted(label for label, ref in points if ref)
    return out + [Series(r, tuple(points[(r, True)]), reference=True) for r in refs]


def nice_ticks(lo: float, hi: float, *, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9)
    ticks = [round(first * step, 12)]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round((first + len(ticks)) * step, 12))
    return ticks


def _fmt_tick(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


@dataclass(frozen=True)
class _Frame:
    """Pixel geometry of a plot area inside a viewBox."""

    width: float
    height: float
    left: float = 64
    right: float = 16
    top: float = 16
    bottom: float = 52

    @property
    def inner_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def inner_h(self) -> float:
        return self.height - self.top - self.bottom


def _open_svg(width: float, height: float, title: str) -> list[str]:
    t = escape(title)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" '
        f'role="img" aria-label="{t}" class="chart" font-family="{FONT}">',
        f"<title>{t}</title>",
    ]


def line_chart(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    title: str = "",
    log_x: bool = True,
    width: int = 560,
    height: int = 320,
) -> str:
    """Lines with 95% interval bands (or ± std whiskers); x on a log scale (fractions) with a
    tick at every x present."""
    pts = [p for s in series for p in s.points]
    if not pts:
        return ""
    f = _Frame(width, height)
    xs = sorted({p.x for p in pts})
    tx = (lambda v: math.log10(v)) if log_x and xs[0] > 0 else (lambda v: v)
    x0, x1 = tx(xs[0]), tx(xs[-1])
    pad = (x1 - x0) * 0.06 or 0.5
    x0, x1 = x0 - pad, x1 + pad
    yt = nice_ticks(min(_extent(p)[0] for p in pts), max(_extent(p)[1] for p in pts))
    y0, y1 = yt[0], yt[-1]

    def px(v: float) -> float:
        return f.left + (tx(v) - x0) / (x1 - x0) * f.inner_w

    def py(v: float) -> float:
        return f.top + (1 - (v - y0) / ((y1 - y0) or 1)) * f.inner_h

    out = _open_svg(width, height, title or f"{y_label} vs {x_label}")
    out += _axes(f, [(px(x), _fmt_tick(x)) for x in xs], [(py(y), _fmt_tick(y)) for y in yt])
    out += _axis_labels(f, x_label, y_label)
    for s, st in zip(series, palette(series), strict=True):
        out += _line(s, st, px, py)
    out.append("</svg>")
    return "\n".join(out)


def _axes(
    f: _Frame, xticks: Sequence[tuple[float, str]], yticks: Sequence[tuple[float, str]]
) -> list[str]:
    out = ['<g class="grid" stroke="#E5E7EB" stroke-width="1">']
    out += [
        f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
        for y, _ in yticks
    ]
    out.append("</g>")
    out.append('<g font-size="15" fill="#374151">')
    bottom = f.top + f.inner_h
    out += [
        f'<text x="{x:.1f}" y="{bottom + 20:.1f}" text-anchor="middle">{escape(t)}</text>'
        for x, t in xticks
    ]
    out += [
        f'<text x="{f.left - 8}" y="{y + 5:.1f}" text-anchor="end">{escape(t)}</text>'
        for y, t in yticks
    ]
    out.append("</g>")
    out.append(
        f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{bottom}" y2="{bottom}" '
        'stroke="#9CA3AF"/>'
    )
    return out


def _axis_labels(f: _Frame, x_label: str, y_label: str) -> list[str]:
    cx = f.left + f.inner_w / 2
    cy = f.top + f.inner_h / 2
    return [
        f'<text x="{cx:.1f}" y="{f.height - 6}" text-anchor="middle" font-size="15" '
        f'fill="#111827">{escape(x_label)}</text>',
        f'<text transform="translate(16 {cy:.1f}) rotate(-90)" text-anchor="middle" '
        f'font-size="15" fill="#111827">{escape(y_label)}</text>',
    ]


def _line(s: Series, st: Style, px: Scale, py: Scale) -> list[str]:
    coords = [(px(p.x), py(p.y), p) for p in sorted(s.points, key=lambda p: p.x)]
    dash = f' stroke-dasharray="{st.dash}"' if st.dash else ""
    out = [f'<g class="series" data-label="{escape(s.label)}"><title>{escape(s.label)}</title>']
    out += _band(coords, st.color, py)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
    out.append(
        f'<polyline points="{path}" fill="none" stroke="{st.color}" stroke-width="2.5"{dash}/>'
    )
    for x, y, p in coords:
        if p.err > 0 and p.ci95 is None:
            lo, hi = py(p.y - p.err), py(p.y + p.err)
            out.append(
                f'<path d="M{x:.1f},{lo:.1f}V{hi:.1f}M{x - 4:.1f},{lo:.1f}h8'
                f'M{x - 4:.1f},{hi:.1f}h8" stroke="{st.color}" stroke-width="1.5" fill="none"/>'
            )
        out.append(_marker(x, y, st.color, square=s.reference))
    out.append("</g>")
    return out


def _extent(p: Point) -> tuple[float, float]:
    """What a point draws: its interval, or ± its std."""
    return p.ci95 if p.ci95 is not None else (p.y - p.err, p.y + p.err)


def _band(coords: list[tuple[float, float, Point]], color: str, py: Scale) -> list[str]:
    """The 95% interval as a translucent band over the points that have one (a single
    point: a whisker)."""
    have = [(x, p.ci95) for x, _, p in coords if p.ci95 is not None]
    if len(have) == 1:
        x, (lo, hi) = have[0]
        return [f'<path class="ci" d="M{x:.1f},{py(lo):.1f}V{py(hi):.1f}" stroke="{color}" '
                'stroke-width="6" stroke-opacity="0.25" fill="none"/>']  # fmt: skip
    if not have:
        return []
    upper = [f"{x:.1f},{py(hi):.1f}" for x, (_, hi) in have]
    lower = [f"{x:.1f},{py(lo):.1f}" for x, (lo, _) in reversed(have)]
    return [f'<polygon class="ci" points="{" ".join(upper + lower)}" fill="{color}" '
            'fill-opacity="0.15" stroke="none"/>']  # fmt: skip


def _marker(x: float, y: float, color: str, *, square: bool) -> str:
    if square:  # references: hollow squares, so they differ from teams without colour too
        return (
            f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="#fff" '
            f'stroke="{color}" stroke-width="2"/>'
        )
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}"/>'


def bar_chart(
    bars: Sequence[Bar],
    *,
    value_label: str,
    title: str = "",
    markers: Sequence[Marker] = (),
    width: int = 560,
) -> str:
    """Horizontal bars (one per task) with error whiskers, the value written in a column on the
    right, and reference markers (a vertical tick per marker and bar)."""
    if not bars:
        return ""
    row_h = 44
    f = _Frame(width, 24 + row_h * len(bars) + 44, left=88, right=120, top=12, bottom=44)
    spans = [b.span() or (b.value, b.value) for b in bars]
    vals = [hi for _, hi in spans] + [v for m in markers for v in m.values.values()]
    lo = min(0.0, *(low for low, _ in spans))
    ticks = nice_ticks(lo, max(vals))
    x0, x1 = ticks[0], ticks[-1]

    def px(v: float) -> float:
        return f.left + (v - x0) / ((x1 - x0) or 1) * f.inner_w

    out = _open_svg(width, f.height, title or f"{value_label} per task")
    bottom = f.top + f.inner_h
    out.append('<g stroke="#E5E7EB">')
    out += [f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{f.top}" y2="{bottom}"/>' for t in ticks]
    out.append('</g><g font-size="15" fill="#374151">')
    out += [
        f'<text x="{px(t):.1f}" y="{bottom + 20}" text-anchor="middle">{_fmt_tick(t)}</text>'
        for t in ticks
    ]
    out.append("</g>")
    styles = palette([Series(m.label, (), reference=True) for m in markers])
    for i, b in enumerate(bars):
        y_bar = f.top + 8 + i * row_h
        out += _bar(b, y=y_bar, h=row_h - 16, px=px, x_base=px(max(x0, 0.0)))
        # the value in a column right of the plot, clear of whiskers and reference ticks
        text = b.text()
        out.append(
            f'<text x="{f.width - f.right + 10:.1f}" y="{y_bar + (row_h - 16) / 2 + 5:.1f}" '
            f'font-size="15" fill="#111827">{escape(text)}</text>'
        )
        for m, st in zip(markers, styles, strict=True):
            if b.label in m.values:
                x = px(m.values[b.label])
                y = f.top + 4 + i * row_h
                out.append(
                    f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + row_h - 8}" '
                    f'stroke="{st.color}" stroke-width="2.5" stroke-dasharray="{st.dash}">'
                    f"<title>{escape(m.label)}: {m.values[b.label]:.4g}</title></line>"
                )
    out.append(
        f'<text x="{f.left + f.inner_w / 2:.1f}" y="{f.height - 6}" text-anchor="middle" '
        f'font-size="15" fill="#111827">{escape(value_label)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out)


def _bar(b: Bar, *, y: float, h: float, px: Scale, x_base: float) -> list[str]:
    x_end = px(b.value)
    left, w = min(x_base, x_end), abs(x_end - x_base)
    out = [
        f'<text x="{x_base - 10:.1f}" y="{y + h / 2 + 5:.1f}" text-anchor="end" font-size="15" '
        f'fill="#111827">{escape(b.label)}</text>',
        f'<rect x="{left:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="3" '
        f'fill="{PALETTE[0]}"><title>{escape(b.label)}: {escape(b.text())}</title></rect>',
    ]
    span = b.span()
    if span is not None:
        lo, hi = px(span[0]), px(span[1])
        cy = y + h / 2
        out.append(
            f'<path d="M{lo:.1f},{cy:.1f}H{hi:.1f}M{lo:.1f},{cy - 6:.1f}v12'
            f'M{hi:.1f},{cy - 6:.1f}v12" stroke="#111827" stroke-width="1.5" fill="none"/>'
        )
    return out
