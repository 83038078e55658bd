"""Planning keys each (dataset, embedding set) apart: experiments reading different sets of
one dataset must not share score keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.embed.research_import import ImportedParams
from harness.embed.sets import identity, write_set
from harness.selection.config import load_baselines
from harness.settings import HarnessSettings, default_configs_dir
from harness.specs import BenchmarkSpecs, load_benchmark
from harness.sweep.config import Experiment
from harness.sweep.plan import plan_sweep
from tests.conftest import TINY_SET, build_tiny_dataset


def test_two_sets_of_one_dataset_plan_apart(tmp_path: Path) -> None:
    ds = build_tiny_dataset(tmp_path / "data")
    rng = np.random.default_rng(1)
    arrays = {}
    for split in ds.spec.split_names():
        x = rng.normal(size=(ds.split_size(split), 8)).astype(np.float32)
        arrays[split] = {"image": x, "text": x, "text_nolabel": x}
    other = write_set(ds, "other", arrays, ident=identity("imported", ImportedParams(), "other"))
    shipped = load_benchmark(default_configs_dir())
    specs = BenchmarkSpecs(datasets={"tiny": ds.spec}, recipes=shipped.recipes)
    base = {"datasets": ("tiny",), "methods": {"random_filter": {}},
            "recipes": ("linear_probe",), "fractions": (0.1,)}  # fmt: skip
    experiments = [Experiment(name="default", **base),
                   Experiment(name="other", embeddings="other", **base)]  # fmt: skip
    settings = HarnessSettings(data_root=tmp_path / "data", runs_dir=tmp_path / "runs")
    plan = plan_sweep(
        experiments, settings=settings, specs=specs, baselines=load_baselines(default_configs_dir())
    )
    sha = "0" * 64
    embedding = {}
    for name, keys in plan.experiments.items():
        job = plan.trainings[keys[0]]
        embedding[name] = {k.embedding for k in plan.score_keys(job, sha)}
    assert embedding["other"] == {other["fingerprint"]}
    assert embedding["default"] == {ds.dir.embedding_set(TINY_SET).read_manifest()["fingerprint"]}
    assert embedding["other"] != embedding["default"]
