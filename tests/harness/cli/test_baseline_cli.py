"""``tdc-harness baseline``: list, run into a file that validates, fail clearly on mistakes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.cli.main import main
from harness.datasets import Dataset
from harness.selection import method_names
from harness.settings import default_configs_dir
from harness.validation import load_and_validate
from submissions.subset_file import read_subset_file
from tests.conftest import TINY_SET


@pytest.fixture(scope="module")
def env_dirs(tiny_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A configs dir naming the tiny dataset, and a data root with a copy of it."""
    base = tmp_path_factory.mktemp("cli")
    data, configs = base / "data", base / "configs"
    shutil.copytree(
        tiny_dataset.dir.root,
        data / tiny_dataset.spec.path,
        ignore=shutil.ignore_patterns("images", "index"),
    )
    emb = data / tiny_dataset.spec.path / "embeddings" / TINY_SET / tiny_dataset.spec.pool
    shutil.copy(emb / "clip_score.npy", emb / "clip_score_nolabel.npy")
    configs.mkdir()
    for name in ("recipes.yaml", "baselines.yaml"):
        shutil.copy(default_configs_dir() / name, configs / name)
    spec = tiny_dataset.spec.model_dump(mode="json", exclude={"name"})
    (configs / "datasets.yaml").write_text(yaml.safe_dump({"datasets": {"tiny": spec}}))
    return {"data": data, "configs": configs, "runs": base / "runs"}


@pytest.fixture
def cli_env(env_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("TDC_DATA_ROOT", str(env_dirs["data"]))
    monkeypatch.setenv("TDC_CONFIGS_DIR", str(env_dirs["configs"]))
    monkeypatch.setenv("TDC_RUNS_DIR", str(env_dirs["runs"]))
    return env_dirs


def opened(env: dict[str, Path]) -> Dataset:
    from harness.specs import load_benchmark

    return Dataset.open(load_benchmark(env["configs"]).dataset("tiny"), data_root=env["data"])


def test_list_shows_every_method_and_its_needs(
    cli_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["baseline", "--list"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip()]
    lines = {r[0]: r[1] for r in rows if r[0] in method_names()}  # descriptions may wrap
    assert len(lines) == 16
    assert lines["random_filter"] == "no" and lines["image_alignment"] == "yes"
    assert lines["match_dist"] == "labels"


@pytest.mark.parametrize(
    ("method", "task"),
    [("image_alignment", "test1"), ("match_dist", "test2"), ("clip_score", None)],
)
def test_run_writes_a_file_that_validates(
    cli_env: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    method: str,
    task: str | None,
) -> None:
    out = tmp_path / "sub.npy"
    args = ["baseline", method, "--dataset", "tiny", "--fraction", "0.25", "-o", str(out)]
    assert main(args + (["--task", task] if task else [])) == 0
    assert "wrote 75 UIDs (budget 75" in capsys.readouterr().out
    ds = opened(cli_env)
    report = load_and_validate(out, ds=ds, fraction=0.25, task=task)
    assert report.size == 75
    assert read_subset_file(out).kind == "str"
    check = ["validate", str(out), "--dataset", "tiny", "--fraction", "0.25"]
    assert main(check + (["--task", task] if task else [])) == 0


def test_default_output_path_and_same_seed_same_bytes(cli_env: dict[str, Path]) -> None:
    args = ["baseline", "tsds", "-d", "tiny", "-f", "0.1", "-t", "test1", "--seed", "4"]
    assert main(args) == 0
    path = cli_env["runs"] / "selections" / "tiny-tsds-f0.1-test1-s4.npy"
    first = path.read_bytes()
    assert main(args) == 0
    assert path.read_bytes() == first
    assert main([*args[:-1], "5"]) == 0
    other = cli_env["runs"] / "selections" / "tiny-tsds-f0.1-test1-s5.npy"
    assert not np.array_equal(np.load(other), np.load(path))


def test_param_override_and_json(
    cli_env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    args = ["baseline", "text_alignment", "-d", "tiny", "-f", "0.1", "-t", "test1"]
    assert main([*args, "-p", "captions=label", "-p", "aggregate=max", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert meta["params"] == {"captions": "label", "aggregate": "max"}
    assert meta["size"] == meta["budget"] == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["baseline", "random_filtr", "-d", "tiny", "-f", "0.1"], "Did you mean 'random_filter'"),
        (["baseline", "tsds", "-d", "tiny", "-f", "0.1", "-t", "test1", "-p", "tmp=1"], "tmp"),
        (["baseline", "tsds", "-d", "tiny", "-f", "0.1"], "needs a task"),
        (["baseline", "random_filter", "-d", "tiny", "-f", "0.3"], "not allowed"),
        (["baseline", "tsds", "-d", "tiny", "-f", "0.1", "-t", "test9"], "unknown task"),
        (["baseline", "random_filter", "-d", "tiny"], "--fraction"),
        (["baseline", "tsds", "-d", "tiny", "-f", "0.1", "-t", "test1", "-p", "k"], "KEY=VALUE"),
    ],
)
def test_mistakes_exit_2_with_a_message(
    cli_env: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert message in captured.err + captured.out
    assert not (cli_env["runs"] / "selections" / "tiny-random_filter-f0.3-all-s0.npy").exists()
