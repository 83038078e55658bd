"""report results, tune and tracking: variants chosen on query sets, numbers from the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from harness.cli.main import main
from harness.settings import default_configs_dir
from harness.specs import load_benchmark
from harness.sweep.report import summarize
from tests.harness.sweep.conftest import SweepEnv

GRID: dict[str, Any] = {
    "name": "grid",
    "datasets": ["demo"],
    "methods": {"image_alignment": {"aggregate": ["mean", "max"]}, "random_filter": {}},
    "recipes": ["linear_probe"],
    "fractions": [0.1],
    "tasks": ["test1", "test3"],
}


def frame_row(params: str, query: float, test: float, seed: int) -> dict[str, Any]:
    return {"dataset": "demo", "method": "m", "base_recipe": "linear_probe", "fraction": 0.1,
            "task": "test1", "params": params, "recipe": "linear_probe", "selection_seed": seed,
            "train_seed": 0, "test.accuracy": test, "query.accuracy": query}  # fmt: skip


def test_a_variant_best_on_test_but_not_on_query_is_not_chosen() -> None:
    frame = pd.DataFrame([
        frame_row('{"k":1}', query=0.90, test=0.50, seed=0),
        frame_row('{"k":1}', query=0.80, test=0.52, seed=1),
        frame_row('{"k":2}', query=0.60, test=0.95, seed=0),
        frame_row('{"k":2}', query=0.62, test=0.97, seed=1),
    ])  # fmt: skip
    specs = load_benchmark(default_configs_dir())
    honest = summarize(frame, specs=specs, select_on="query").iloc[0]
    assert honest["params"] == '{"k":1}' and honest["test_mean"] == pytest.approx(0.51)
    assert honest["test_std"] == pytest.approx(0.0141421, rel=1e-4) and honest["n"] == 2
    peeked = summarize(frame, specs=specs, select_on="test").iloc[0]
    assert peeked["params"] == '{"k":2}' and honest["candidates"] == 2


def test_report_matches_the_store(sweep_env: SweepEnv, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(sweep_env.write([GRID])), "--executor", "debug"]) == 0
    out = sweep_env.tmp / "report"
    assert main(["report", "results", "--out", str(out)]) == 0
    csv = pd.read_csv(out / "results.csv")
    assert sorted(csv["method"].unique()) == ["image_alignment", "random_filter"]
    # Recompute every reported mean from the raw records: trainings -> store JSON files.
    raw: dict[tuple[str, str, str], list[float]] = {}
    for path in (sweep_env.runs / "sweep/trainings").glob("*/*.json"):
        rec = json.loads(path.read_text())
        sel = json.loads(next((sweep_env.runs / "sweep/selections").glob(
            f"*/{rec['selection']}.json")).read_text())  # fmt: skip
        params = json.dumps(sel["params"], sort_keys=True, separators=(",", ":"))
        for task, seeds in rec["scores"].items():
            for digest in seeds.values():
                score = json.loads((sweep_env.runs / "results" / digest[:2] / f"{digest}.json")
                                   .read_text())  # fmt: skip
                raw.setdefault((sel["method"], params, task), []).append(
                    score["metrics"]["accuracy"]
                )
    for row in csv.itertuples():
        values = raw[(row.method, row.params, row.task)]
        assert row.test_mean == pytest.approx(sum(values) / len(values), abs=1e-12)
    assert (out / "fraction-demo-linear_probe.png").stat().st_size > 5000
    assert (out / "methods-demo-linear_probe.png").stat().st_size > 5000
    html = (out / "results.html").read_text()
    assert "query-split score" in html and "<strong>" in html and "<img src=" in html
    assert main(["report", "results", "--out", str(out), "--select-on", "test"]) == 0
    assert "for analysis only" in (out / "results.md").read_text()
    assert main(["report", "results", "--out", str(out), "--sweep", "nope"]) == 2
    assert "no sweep named 'nope' has run here (sweeps: grid)" in capsys.readouterr().err


def test_tune_writes_what_baseline_reads(
    sweep_env: SweepEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = sweep_env.tmp / "tuned.yaml"
    args = ["tune", "image_alignment", "-d", "demo", "-t", "test1", "-f", "0.1",
            "--grid", "aggregate=mean,max", "-o", str(chosen)]  # fmt: skip
    assert main(args) == 0
    doc = yaml.safe_load(chosen.read_text())
    means = {json.loads(c["params"])["aggregate"]: c["query_mean"] for c in doc["candidates"]}
    assert doc["params"]["aggregate"] == max(means, key=lambda k: means[k])
    assert "query split of test1" in doc["selected_by"]
    sub = sweep_env.tmp / "s.npy"
    assert main(["baseline", "image_alignment", "-d", "demo", "-f", "0.1", "-t", "test1",
                 "--params-file", str(chosen), "-o", str(sub), "--json"]) == 0  # fmt: skip
    meta = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert meta["params"]["aggregate"] == doc["params"]["aggregate"]
    sweep = sweep_env.write(
        [{**GRID, "methods": {"image_alignment": {"params_file": str(chosen)}}}]
    )
    assert main(["sweep", str(sweep), "--dry-run"]) == 0
    assert main(["tune", "image_alignment", "-d", "demo", "-t", "test1", "-f", "0.1"]) == 2


def test_wandb_logs_offline(sweep_env: SweepEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    small = {**GRID, "methods": {"random_filter": {}}}
    assert main(["sweep", str(sweep_env.write([small])), "--executor", "debug",
                 "--wandb", "tdc-test"]) == 0  # fmt: skip
    runs = list((sweep_env.runs / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_queries_not_tests_pick_the_report_variant_end_to_end(
    sweep_env: SweepEnv, tmp_path: Path
) -> None:
    assert main(["sweep", str(sweep_env.write([GRID])), "--executor", "debug"]) == 0
    out = tmp_path / "r"
    assert main(["report", "results", "--out", str(out)]) == 0
    picked = pd.read_csv(out / "results.csv")
    picked = picked[picked["method"] == "image_alignment"]
    assert (picked["candidates"] == 2).all()
    md = (out / "results.md").read_text()
    assert "## Chosen variants" in md and "aggregate" in md
