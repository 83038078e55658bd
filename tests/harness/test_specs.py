"""The shipped YAML specs load, every name they use is registered, and typos fail loudly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from harness.datasets.preparers import DEFAULT_PREPARER, get_preparer
from harness.datasets.releases import RELEASE_PARAMS, release_params
from harness.embed.sets import validated_params
from harness.settings import default_configs_dir
from harness.specs import EmbeddingSpec, EmbeddingsSpec, load_benchmark
from submissions.errors import ConfigError, UnknownName

NINE = {
    "GeoDE", "iWildCam", "AutoArborist", "SelfDrivingCar", "FMoW",
    "FishDetection", "ReID", "CropHarvest", "COOS",
}  # fmt: skip


def test_shipped_yaml_validates() -> None:
    specs = load_benchmark(default_configs_dir())
    assert NINE | {"demo"} <= set(specs.datasets)
    for spec in specs.datasets.values():
        assert specs.recipe(spec.default_recipe).name == spec.default_recipe
        assert spec.split_names()[0] == spec.pool
        assert not Path(spec.path).is_absolute()


def test_every_preparer_and_embedder_named_in_the_yaml_exists() -> None:
    specs = load_benchmark(default_configs_dir())
    for spec in specs.datasets.values():
        get_preparer(spec.preparer or DEFAULT_PREPARER)
        if spec.release is not None:
            get_preparer(spec.release.builder)
            release_params(spec, RELEASE_PARAMS[spec.release.builder])  # rules typo-checked
        assert spec.embeddings is not None, spec.name
        for name, es in spec.embeddings.sets.items():
            validated_params(spec.name, name, es)  # unknown embedders and typos in params fail


def _bad_copy(tmp_path: Path, file: str, mutate: object) -> Path:
    configs = tmp_path / "configs"
    shutil.copytree(default_configs_dir(), configs)
    path = configs / file
    raw = yaml.safe_load(path.read_text())
    mutate(raw)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(raw))
    return configs


@pytest.mark.parametrize(
    ("file", "mutate", "key", "valid"),
    [
        (
            "datasets.yaml",
            lambda raw: raw["datasets"]["demo"].update(fractons=[0.1]),
            "datasets.demo.fractons",
            "fractions",
        ),
        (
            "datasets.yaml",
            lambda raw: raw["datasets"]["GeoDE"]["tasks"][0].update(hiden=True),
            "datasets.GeoDE.tasks.0.hiden",
            "hidden",
        ),
        (
            "recipes.yaml",
            lambda raw: raw["recipes"]["linear_probe"].update(sedes=[0]),
            "recipes.linear_probe.sedes",
            "seeds",
        ),
    ],
)
def test_unknown_key_names_file_key_and_valid_keys(
    tmp_path: Path, file: str, mutate: object, key: str, valid: str
) -> None:
    configs = _bad_copy(tmp_path, file, mutate)
    with pytest.raises(ConfigError) as err:
        load_benchmark(configs)
    text = str(err.value)
    assert str(configs / file) in text
    assert key in text
    assert "valid keys" in text and valid in text


def test_unknown_dataset_suggests_the_near_name() -> None:
    specs = load_benchmark(default_configs_dir())
    with pytest.raises(UnknownName, match="Did you mean 'GeoDE'"):
        specs.dataset("GeoDe")


def test_embedding_param_typo_fails_with_the_valid_keys(tmp_path: Path) -> None:
    from harness.datasets import Dataset, DatasetDir
    from harness.embed import embed_dataset
    from harness.settings import HarnessSettings

    spec = load_benchmark(default_configs_dir()).dataset("demo")
    bad = spec.model_copy(
        update={
            "embeddings": EmbeddingsSpec(
                default="pca", sets={"pca": EmbeddingSpec(embedder="pixel_pca", params={"dims": 8})}
            )
        }
    )
    ds = Dataset(spec=bad, dir=DatasetDir(tmp_path))
    with pytest.raises(ConfigError, match=r"dims.*valid keys: dim, ridge, size"):
        embed_dataset(ds=ds, settings=HarnessSettings(data_root=tmp_path))
