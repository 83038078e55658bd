"""The client side's settings: how ``tdc-submit`` and the harness reach the server.

    settings = ClientSettings()     # TDC_SERVER, TDC_TOKEN, TDC_TOKEN_FILE, TDC_CACHE_DIR, ...
    url = settings.server_url(flag) # --server, else TDC_SERVER, else http://127.0.0.1:8000
    token = settings.load_token()   # TDC_TOKEN, else the token file (refused if others can read)
    settings.cache_dir              # TDC_CACHE_DIR, else $XDG_CACHE_HOME/tdc, else ~/.cache/tdc
    settings = ClientSettings(token="tdc_x", cache_dir=tmp)   # tests pass values explicitly
    settings = load_settings(ClientSettings)  # in a command: a bad value is a ConfigError

The token file is ``TDC_TOKEN_FILE``, else ``$XDG_CONFIG_HOME/tdc/token`` (default
``~/.config/tdc/token``): one line, mode 600. Like ssh with a private key, a file that the
group or others may read or write is refused rather than used. ``TDC_ORGANIZER_TOKEN`` is the
organizer's token for the harness's server commands (``evaluate-pending``, ``--post``).

Only the environment is read (no ``.env``: a token belongs in the mode-600 token file); an
empty variable counts as unset. Command-line flags win over both (the caller passes them).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from submissions.errors import ConfigError, TdcError

DEFAULT_SERVER = "http://127.0.0.1:8000"

S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **values: Any) -> S:
    """``cls(**values)`` for a command: an invalid setting is a ConfigError naming its variable
    (``TDC_PORT: Input should be a valid integer``), not a traceback."""
    try:
        return cls(**values)
    except ValidationError as err:
        prefix = str(cls.model_config.get("env_prefix") or "")
        problems = [f"{_variable(cls, e['loc'], prefix)}: {e['msg']}" for e in err.errors()]
        raise ConfigError(f"invalid setting: {'; '.join(problems)}") from None


def _variable(cls: type[BaseSettings], loc: tuple[int | str, ...], prefix: str) -> str:
    name = str(loc[0]) if loc else "?"
    # A field read under its own alias (XDG_CONFIG_HOME) has no prefix.
    return f"{prefix}{name}".upper() if name in cls.model_fields else name


class TokenError(TdcError):
    """No usable token: none configured, or a token file others can read."""

    code = "token"


class ClientSettings(BaseSettings):
    """A client's configuration (fields settable as ``TDC_<NAME>``; the XDG ones unprefixed)."""

    model_config = SettingsConfigDict(
        env_prefix="TDC_", extra="ignore", env_ignore_empty=True, validate_by_name=True
    )

    # The XDG base directories (``XDG_CONFIG_HOME``, ``XDG_CACHE_HOME``): where the defaults live.
    xdg_config_home: Path = Field(
        default_factory=lambda: Path.home() / ".config", validation_alias="XDG_CONFIG_HOME"
    )
    xdg_cache_home: Path = Field(
        default_factory=lambda: Path.home() / ".cache", validation_alias="XDG_CACHE_HOME"
    )
    server: str = DEFAULT_SERVER
    token: SecretStr | None = None
    token_file: Path = Field(default_factory=lambda d: d["xdg_config_home"] / "tdc" / "token")
    organizer_token: SecretStr | None = None
    # The pool-UID cache (revalidated by ETag).
    cache_dir: Path = Field(default_factory=lambda d: d["xdg_cache_home"] / "tdc")

    @field_validator("token", "organizer_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("token_file", "cache_dir")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()

    def server_url(self, flag: str | None = None) -> str:
        """``flag`` (``--server``), else ``TDC_SERVER``, else the local default."""
        return (flag or self.server).rstrip("/")

    def load_token(self) -> str:
        """The API token: ``TDC_TOKEN``, else the token file if only its owner can read it."""
        if self.token is not None:
            return self.token.get_secret_value()
        path = self.token_file
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise TokenError(
                f"no token: set TDC_TOKEN or write it to {path} (chmod 600); "
                "organizers issue tokens with `tdc-server issue-token TEAM`"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenError(
                f"refusing to read {path}: other users can access it "
                f"(mode {stat.S_IMODE(mode):03o}); run `chmod 600 {path}`"
            )
        token = path.read_text().strip()
        if not token:
            raise TokenError(f"{path} is empty")
        return token

    def organizer(self, flag: str | None = None) -> str | None:
        """``flag`` (``--token``), else ``TDC_ORGANIZER_TOKEN``; None when neither is set."""
        if flag:
            return flag
        return self.organizer_token.get_secret_value() if self.organizer_token else None
