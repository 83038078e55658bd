"""Settings shared by the harness and the server: one pydantic-settings class, ``TDC_`` prefix.

    settings = HarnessSettings()                 # reads TDC_DATA_ROOT, TDC_CONFIGS_DIR, ...
    settings = HarnessSettings(data_root=tmp)    # tests pass values explicitly

The server's ``Settings`` extends this class, so one environment configures both.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def default_configs_dir() -> Path:
    """The ``configs/`` directory next to the packages (the repository checkout)."""
    return Path(__file__).resolve().parent.parent / "configs"


class HarnessSettings(BaseSettings):
    """Where data, configs, runs and local checkpoints live. Paths may be relative to the cwd."""

    model_config = SettingsConfigDict(env_prefix="TDC_", env_file=".env", extra="ignore")

    data_root: Path = Path("data")
    configs_dir: Path = default_configs_dir()
    runs_dir: Path = Path("runs")
    # Local open_clip checkpoint for real datasets; nothing is ever downloaded.
    clip_checkpoint: Path | None = None
    # Local backbone weights for finetune recipes, keyed by backbone name in recipes.yaml.
    weights_dir: Path = Path("weights")
