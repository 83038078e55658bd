"""``ClientSettings``: where a client finds its server, its token and its cache (flag > env >
file > default), and the token file's mode-600 rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from submissions.config import DEFAULT_SERVER, ClientSettings, TokenError, load_settings
from submissions.errors import ConfigError

VARS = ("TDC_SERVER", "TDC_TOKEN", "TDC_TOKEN_FILE", "TDC_ORGANIZER_TOKEN", "TDC_CACHE_DIR",
        "XDG_CONFIG_HOME", "XDG_CACHE_HOME")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def test_defaults_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = ClientSettings()
    home = tmp_path / "home"
    assert s.server_url() == DEFAULT_SERVER
    assert s.token_file == home / ".config" / "tdc" / "token"
    assert s.cache_dir == home / ".cache" / "tdc"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    s = ClientSettings()
    assert s.token_file == tmp_path / "cfg" / "tdc" / "token"
    assert s.cache_dir == tmp_path / "cache" / "tdc"


def test_flag_beats_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ClientSettings().server_url("http://flag:1/") == "http://flag:1"
    monkeypatch.setenv("TDC_SERVER", "https://env.example.org/")
    s = ClientSettings()
    assert s.server_url(None) == "https://env.example.org"
    assert s.server_url("http://flag:1") == "http://flag:1"
    monkeypatch.setenv("TDC_ORGANIZER_TOKEN", "tdc_org")
    assert ClientSettings().organizer("tdc_flag") == "tdc_flag"
    assert ClientSettings().organizer(None) == "tdc_org"


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("TDC_SERVER", "TDC_TOKEN_FILE", "TDC_CACHE_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(var, "")
    monkeypatch.setenv("TDC_TOKEN", "   ")
    monkeypatch.setenv("TDC_ORGANIZER_TOKEN", "")
    s = ClientSettings()
    assert s.server_url() == DEFAULT_SERVER and s.organizer() is None and s.token is None
    assert s.token_file == tmp_path / "home" / ".config" / "tdc" / "token"


def test_token_env_beats_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tdc_from_file\n")
    os.chmod(token_file, 0o600)
    monkeypatch.setenv("TDC_TOKEN_FILE", str(token_file))
    assert ClientSettings().load_token() == "tdc_from_file"
    monkeypatch.setenv("TDC_TOKEN", " tdc_from_env \n")
    assert ClientSettings().load_token() == "tdc_from_env"
    assert "tdc_from_env" not in repr(ClientSettings())  # a secret: never in a log line


def test_the_token_file_must_be_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    s = ClientSettings(token_file=token_file)
    with pytest.raises(TokenError, match=r"no token: set TDC_TOKEN or write it to .*chmod 600"):
        s.load_token()
    token_file.write_text("tdc_x\n")
    for mode in (0o644, 0o640, 0o604, 0o660):
        os.chmod(token_file, mode)
        with pytest.raises(TokenError, match=f"mode {mode:03o}.*run `chmod 600 {token_file}`"):
            s.load_token()
    os.chmod(token_file, 0o600)
    assert s.load_token() == "tdc_x"
    token_file.write_text("\n")
    with pytest.raises(TokenError, match="is empty"):
        s.load_token()


def test_home_is_expanded_and_no_dotenv_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("TDC_TOKEN=tdc_from_dotenv\nTDC_SERVER=http://dotenv:1\n")
    monkeypatch.setenv("TDC_CACHE_DIR", "~/tdc-cache")
    s = ClientSettings()
    assert s.cache_dir == tmp_path / "home" / "tdc-cache"
    assert s.token is None and s.server_url() == DEFAULT_SERVER


def test_load_settings_names_the_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.settings import HarnessSettings

    monkeypatch.setenv("TDC_PORT", "80x")
    with pytest.raises(ConfigError, match="invalid setting: TDC_PORT: Input should be"):
        load_settings(HarnessSettings)
    monkeypatch.setenv("TDC_PORT", "8123")
    assert load_settings(HarnessSettings).port == 8123
