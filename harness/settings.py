"""Settings shared by the harness and the server: one pydantic-settings class, ``TDC_`` prefix.

    settings = HarnessSettings()                 # reads TDC_DATA_ROOT, TDC_CONFIGS_DIR, ...
    settings = HarnessSettings(data_root=tmp)    # tests pass values explicitly

The server's ``Settings`` extends this class, so one environment configures both. The
client side's settings (server URL, tokens) are ``submissions.config.ClientSettings``.
Library code receives these values as arguments; only commands and app factories build a
settings object.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where local backbone checkpoints live unless TDC_WEIGHTS_DIR says otherwise (library code
# that is not given a directory uses this, never the environment).
DEFAULT_WEIGHTS_DIR = Path("weights")


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
    weights_dir: Path = DEFAULT_WEIGHTS_DIR
    # The local server's port: `tdc-server serve` and the server `tdc-harness demo` starts.
    port: int = Field(8000, gt=0, lt=65536)
