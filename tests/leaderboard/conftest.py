"""Fixtures of the leaderboard tests; the sample data lives in ``lb_samples``."""

from __future__ import annotations

import pytest

from leaderboard.plots import fraction_series
from leaderboard.views import BoardPage
from tests.leaderboard.lb_samples import make_boards, make_info, make_rows


@pytest.fixture()
def sample_page() -> BoardPage:
    rows = make_rows()
    boards = make_boards(rows)
    return BoardPage(
        dataset=make_info(boards),
        board=boards[0.1],
        budget=430,
        recipes=(("linear_probe", "1"),),
        series=tuple(fraction_series(boards)),
    )
