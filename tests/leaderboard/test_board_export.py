"""CSV and JSON exports hold the board exactly, and defuse spreadsheet formulas."""

from __future__ import annotations

import csv
import io

from leaderboard.export import BoardPublic, board_csv, board_public
from tests.leaderboard.lb_samples import make_boards, make_rows


def test_csv_matches_board() -> None:
    board = make_boards(make_rows())[0.1]
    text = board_csv(board, budget=430)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(board.entries)
    for r, e in zip(rows, board.entries, strict=True):
        assert r["rank"] == ("" if e.rank is None else str(e.rank))
        assert r["kind"] == e.kind
        assert (float(r["accuracy"]) if r["accuracy"] else None) == e.score
        for t in board.tasks:
            c = e.cells.get(t)
            assert r[t] == ("" if c is None else repr(c.mean))
        assert r["missing_tasks"] == ";".join(e.missing)
        assert r["budget"] == "430"
    assert [r["label"] for r in rows if r["kind"] == "submission"][:3] == [
        "owls",
        "<script>alert(1)</script>",
        "'=cmd|calc",  # would run as a formula in a spreadsheet without the quote
    ]


def test_json_roundtrips_and_matches_board() -> None:
    board = make_boards(make_rows())[0.25]
    pub = board_public(board, budget=1075)
    again = BoardPublic.model_validate_json(pub.model_dump_json())
    assert again == pub
    assert [(e.rank, e.label, e.score) for e in pub.entries] == [
        (e.rank, e.label, e.score) for e in board.entries
    ]
    partial = next(e for e in pub.entries if e.team == "partial")
    assert partial.missing_tasks == ["test3"] and partial.rank is None
    assert pub.tasks == ["test1", "test2", "test3"] and pub.primary_metric == "accuracy"
