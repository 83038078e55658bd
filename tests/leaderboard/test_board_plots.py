"""SVG plots: well-formed, escaped, and geometrically faithful to the numbers."""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET

import pytest

from leaderboard.plots import (
    Bar,
    Marker,
    Point,
    Series,
    bar_chart,
    fraction_series,
    line_chart,
    nice_ticks,
)
from tests.leaderboard.lb_samples import make_boards, make_rows

NS = {"s": "http://www.w3.org/2000/svg"}


@pytest.mark.parametrize(
    ("lo", "hi"), [(0.43, 0.97), (0, 1), (12.5, 380.0), (0.001, 0.0042), (0.5, 0.5)]
)
def test_nice_ticks_cover_range_with_round_steps(lo: float, hi: float) -> None:
    t = nice_ticks(lo, hi)
    assert t[0] <= lo and t[-1] >= hi and 3 <= len(t) <= 12
    steps = {round(b - a, 12) for a, b in itertools.pairwise(t)}
    assert len(steps) == 1
    (step,) = steps
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5, 10)


def test_line_chart_is_valid_escaped_svg_with_one_line_per_series() -> None:
    series = [
        Series(
            "<script>x</script>",
            (Point(0.05, 0.6, 0.02), Point(0.1, 0.7, 0.0), Point(0.25, 0.8, 0.01)),
        ),
        Series("random", (Point(0.05, 0.5), Point(0.1, 0.55)), reference=True),
    ]
    svg = line_chart(series, x_label="fraction", y_label="acc & more")
    root = ET.fromstring(svg)  # parses: everything is escaped
    assert root.find(".//s:script", NS) is None
    assert len(root.findall(".//s:polyline", NS)) == 2
    assert len(root.findall(".//s:g[@class='series']", NS)) == 2
    # error bars only where err > 0
    assert len(root.findall(".//s:g[@class='series']/s:path", NS)) == 2
    # higher values are drawn higher (smaller y), x increases with the fraction
    circles = root.findall(".//s:circle", NS)
    ys = [float(c.get("cy")) for c in circles]  # type: ignore[arg-type]
    xs = [float(c.get("cx")) for c in circles]  # type: ignore[arg-type]
    assert ys[0] > ys[1] > ys[2] and xs[0] < xs[1] < xs[2]
    # log scale: 0.05 -> 0.1 and 0.1 -> 0.2 would be equal steps; 0.1 -> 0.25 is log10(2.5)/log10(2)
    assert (xs[2] - xs[1]) / (xs[1] - xs[0]) == pytest.approx(1.3219, rel=1e-2)


def test_intervals_are_bands_that_span_them() -> None:
    """A series whose points carry 95% intervals is drawn with a band from low to high (and
    no std whiskers); the y axis covers the bands."""
    band = Series("team", (Point(0.1, 0.6, 0.05, (0.5, 0.7)), Point(0.25, 0.8, 0.0, (0.7, 0.9))))
    root = ET.fromstring(line_chart([band], x_label="f", y_label="acc"))
    (polygon,) = root.findall(".//s:polygon[@class='ci']", NS)
    ys = [float(xy.split(",")[1]) for xy in polygon.get("points", "").split()]
    (circle_lo, circle_hi) = [float(c.get("cy")) for c in root.findall(".//s:circle", NS)]  # type: ignore[arg-type]
    assert max(ys) > circle_lo and min(ys) < circle_hi  # 0.5 below the first point, 0.9 above
    assert root.findall(".//s:g[@class='series']/s:path", NS) == []  # no whiskers
    labels = [t.text for t in root.findall(".//s:text", NS)]
    assert "0.5" in labels or "0.50" in labels  # the axis reaches the lowest bound


def test_bar_chart_lengths_are_proportional_to_values() -> None:
    svg = bar_chart(
        [Bar("test1", 0.8, 0.05), Bar("test2", 0.4)],
        value_label="accuracy",
        markers=[Marker("random_filter", {"test1": 0.5})],
    )
    root = ET.fromstring(svg)
    rects = root.findall(".//s:rect", NS)
    w = [float(r.get("width")) for r in rects]  # type: ignore[arg-type]
    assert w[0] / w[1] == pytest.approx(2.0, rel=1e-2)
    assert "0.800 ± 0.050" in svg and "0.400" in svg
    assert "random_filter: 0.5" in svg
    assert bar_chart([], value_label="x") == ""


def test_bar_whiskers_span_the_interval_when_there_is_one() -> None:
    svg = bar_chart([Bar("test1", 0.8, 0.01, (0.7, 0.9)), Bar("test2", 0.4, 0.05)],
                    value_label="accuracy")  # fmt: skip
    root = ET.fromstring(svg)
    whiskers = [p.get("d", "") for p in root.findall(".//s:path", NS)]
    rect = root.findall(".//s:rect", NS)[0]
    x, w = float(rect.get("x", 0)), float(rect.get("width", 0))
    lo, hi = (float(v) for v in re.match(r"M([\d.]+),[\d.]+H([\d.]+)", whiskers[0]).groups())  # type: ignore[union-attr]
    per_unit = w / 0.8  # bars start at 0
    assert (lo - x) / per_unit == pytest.approx(0.7, abs=0.01)
    assert (hi - x) / per_unit == pytest.approx(0.9, abs=0.01)
    assert "0.800 [0.700, 0.900]" in svg and "0.400 ± 0.050" in svg


def test_fraction_series_top_teams_and_all_references() -> None:
    boards = make_boards(make_rows())
    series = fraction_series(boards, top=2)
    labels = [(s.label, s.reference) for s in series]
    assert labels == [
        ("owls", False),
        ("<script>alert(1)</script>", False),
        ("image_alignment", True),
        ("oracle", True),
        ("random_filter", True),
    ]
    owls = series[0]
    assert [p.x for p in owls.points] == [0.05, 0.1, 0.25]
    by_f = {f: next(e for e in b.entries if e.label == "owls") for f, b in boards.items()}
    assert [p.y for p in owls.points] == [by_f[f].score for f in (0.05, 0.1, 0.25)]
    # "partial" has no complete entry, so no points and no line
    assert all(s.label != "partial" for s in fraction_series(boards, top=10))
