"""Where ``tdc-submit`` finds its token, its server and its cache.

    token = load_token()        # TDC_TOKEN, else the token file (refused if others can read it)
    url = server_url(None)      # --server, else TDC_SERVER, else http://127.0.0.1:8000
    cache_dir()                 # TDC_CACHE_DIR, else $XDG_CACHE_HOME/tdc, else ~/.cache/tdc

The token file is ``TDC_TOKEN_FILE``, else ``$XDG_CONFIG_HOME/tdc/token`` (default
``~/.config/tdc/token``): one line, mode 600. Like ssh with a private key, a file that the
group or others may read or write is refused rather than used.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from submissions.errors import TdcError

DEFAULT_SERVER = "http://127.0.0.1:8000"


class TokenError(TdcError):
    """No usable token: none configured, or a token file others can read."""

    code = "token"


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    base = env.get(var)
    return Path(base) if base else Path.home() / fallback


def token_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("TDC_TOKEN_FILE")
    if explicit:
        return Path(explicit).expanduser()
    return _xdg(env, "XDG_CONFIG_HOME", ".config") / "tdc" / "token"


def load_token(env: Mapping[str, str] | None = None) -> str:
    """The API token: ``TDC_TOKEN``, else the token file if only its owner can read it."""
    env = os.environ if env is None else env
    if env.get("TDC_TOKEN", "").strip():
        return env["TDC_TOKEN"].strip()
    path = token_file(env)
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


def server_url(cli_value: str | None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (cli_value or env.get("TDC_SERVER") or DEFAULT_SERVER).rstrip("/")


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("TDC_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return _xdg(env, "XDG_CACHE_HOME", ".cache") / "tdc"
