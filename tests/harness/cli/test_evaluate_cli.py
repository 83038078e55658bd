"""``tdc-harness evaluate``: validate, train, score every task, print a table, write JSON."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.cli import main as cli
from harness.datasets import Dataset
from harness.settings import default_configs_dir
from submissions.schemas import EvalResult
from submissions.subset_file import write_subset_file


def use_configs(monkeypatch: pytest.MonkeyPatch, configs: Path, data_root: Path) -> None:
    monkeypatch.setenv("TDC_CONFIGS_DIR", str(configs))
    monkeypatch.setenv("TDC_DATA_ROOT", str(data_root))
    # Other command groups may still be in the making: load the ones that exist.
    present = tuple(m for m in cli.COMMAND_MODULES if importlib.util.find_spec(m))
    monkeypatch.setattr(cli, "COMMAND_MODULES", present)


@pytest.fixture
def env(tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Configs naming the tiny dataset (and the shipped recipes), and its data root."""
    configs = tmp_path / "configs"
    configs.mkdir()
    shutil.copy(default_configs_dir() / "recipes.yaml", configs / "recipes.yaml")
    spec = tiny_dataset.spec.model_dump(mode="json", exclude={"name"})
    (configs / "datasets.yaml").write_text(yaml.safe_dump({"datasets": {"tiny": spec}}))
    use_configs(monkeypatch, configs, tiny_dataset.dir.root.parent)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["evaluate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_prints_every_task_and_writes_the_result(
    env: Path, tiny_dataset: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_subset_file(env / "sub.npy", tiny_dataset.uids("train")[::4])
    out_json = env / "out" / "result.json"
    code, out, err = run(
        capsys, str(path), "-d", "tiny", "-f", "0.25", "--seeds", "0,1", "--out", str(out_json)
    )
    assert code == 0, err
    result = EvalResult.model_validate_json(out_json.read_text())
    assert result.subset_size == 75 and result.recipe == "linear_probe"
    assert result.manifest.seeds == [0, 1] and [t.task for t in result.tasks] == ["test1", "test2"]
    assert "test1" in out and "test2" in out and "accuracy" in out and "±" in out
    assert f"{result.tasks[0].mean['accuracy']:.4f}" in out


def test_evaluate_one_task_with_a_named_recipe(
    env: Path, tiny_dataset: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_subset_file(env / "sub.npy", tiny_dataset.uids("train")[:30])
    code, out, _ = run(capsys, str(path), "-d", "tiny", "-f", "0.1", "-t", "test2",
                       "-r", "linear_probe")  # fmt: skip
    assert code == 0 and "test2" in out and "test1" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "0.1"], "budget"),  # 31 UIDs > budget 30 (message from validation)
        (["-f", "0.25", "--seeds", "a,b"], "--seeds"),
        (["-f", "0.25", "-r", "linear_prob"], "Did you mean 'linear_probe'"),
    ],
)
def test_user_errors_exit_2_with_the_reason(
    env: Path,
    tiny_dataset: Dataset,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    path = write_subset_file(env / "sub.npy", tiny_dataset.uids("train")[:31])
    code, _, err = run(capsys, str(path), "-d", "tiny", *args)
    assert code == 2
    assert message in err, err


@pytest.mark.slow
def test_demo_submission_scored_on_all_four_tasks_matches_sklearn(
    demo_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The research recipe on the real demo: our probe's accuracy = sklearn's, within 0.3 pp."""
    from sklearn.linear_model import LogisticRegression

    use_configs(monkeypatch, default_configs_dir(), demo_dataset.dir.root.parent)
    rows = np.sort(np.random.default_rng(0).choice(demo_dataset.pool_size, 430, replace=False))
    path = write_subset_file(tmp_path / "sub.npy", demo_dataset.uids("train")[rows])
    code, _, err = run(capsys, str(path), "-d", "demo", "-f", "0.1", "-o", str(tmp_path / "r.json"))
    assert code == 0, err
    result = EvalResult.model_validate_json((tmp_path / "r.json").read_text())
    assert [t.task for t in result.tasks] == ["test1", "test2", "test3", "test4"]
    pool = np.array(demo_dataset.embeddings("train"))[rows]
    labels = demo_dataset.split("train")["label"].to_numpy()[rows]
    sk = LogisticRegression(C=0.75, max_iter=1000).fit(pool, labels)
    for task in result.tasks:
        split = demo_dataset.spec.task(task.task).test
        x, y = np.array(demo_dataset.embeddings(split)), demo_dataset.split(split)["label"]
        assert task.test_size == len(y)
        assert abs(task.mean["accuracy"] - (sk.predict(x) == y.to_numpy()).mean()) <= 0.003
