"""The one runner of the three console scripts: usage errors, TdcErrors and Ctrl-C become exit
codes and one message, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from submissions.cli_runner import Failure, Translate, run_app
from submissions.errors import ConfigError, TdcError

app = typer.Typer(name="demo-cli", no_args_is_help=True, add_completion=False)


@app.command()
def fine(n: int = 1) -> None:
    typer.echo(f"n={n}")


@app.command()
def broken(kind: str) -> None:
    if kind == "config":
        raise ConfigError("the config is bad: fix key x")
    if kind == "failure":
        raise Failure(7, "seven went wrong", ["  - detail one", "  - detail two"])
    if kind == "exit":
        raise typer.Exit(5)
    if kind == "interrupt":
        raise KeyboardInterrupt
    if kind == "abort":
        raise typer.Abort
    if kind == "system-exit":
        raise SystemExit("error: by hand")
    raise RuntimeError("a bug")


def run(
    capsys: pytest.CaptureFixture[str], *args: str, translate: Translate | None = None
) -> tuple[int, str, str]:
    code = run_app(app, list(args), prog_name="demo-cli", translate=translate)
    out, err = capsys.readouterr()
    return code, out, err


def test_success_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "fine", "--n", "3")[:2] == (0, "n=3\n")
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "Usage: demo-cli" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["fine", "--nosuchflag"], "No such option: --nosuchflag"),
        (["fine", "--n", "abc"], "Invalid value"),
        (["broken"], "Missing argument"),
    ],
    ids=["command", "option", "value", "argument"],
)
def test_usage_errors_exit_2_with_the_usage(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert needle in err and "Usage: demo-cli" in err and "Traceback" not in err


def test_no_arguments_print_the_help_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)  # no_args_is_help: as click, the help and a usage exit code
    assert code == 2 and "Usage: demo-cli" in out + err and "broken" in out + err


def test_tdc_error_exits_2_with_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "broken", "config") == (2, "", "error: the config is bad: fix key x\n")


def test_translate_gives_a_tdc_error_its_own_code(capsys: pytest.CaptureFixture[str]) -> None:
    def translate(err: TdcError) -> Failure | None:
        return Failure(9, f"translated: {err}") if isinstance(err, ConfigError) else None

    code, _, err = run(capsys, "broken", "config", translate=translate)
    assert (code, err) == (9, "error: translated: the config is bad: fix key x\n")


@pytest.mark.parametrize(
    ("kind", "code", "err"),
    [
        ("failure", 7, "error: seven went wrong\n  - detail one\n  - detail two\n"),
        ("exit", 5, ""),
        ("interrupt", 130, ""),
        ("abort", 130, "Aborted!\n"),
        ("system-exit", 1, "error: by hand\n"),
    ],
)
def test_other_ways_out(capsys: pytest.CaptureFixture[str], kind: str, code: int, err: str) -> None:
    assert run(capsys, "broken", kind) == (code, "", err)


def test_a_bug_keeps_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError, match="a bug"):
        run(capsys, "broken", "bug")


@pytest.mark.parametrize(
    ("module", "args", "needle"),
    [
        ("server.cli", ["nosuchcommand"], "No such command 'nosuchcommand'"),
        ("harness.cli", ["nosuchcommand"], "No such command 'nosuchcommand'"),
        ("submissions.cli", ["--nosuchflag"], "No such option: --nosuchflag"),
    ],
    ids=["tdc-server", "tdc-harness", "tdc-submit"],
)
def test_console_scripts_answer_a_bad_command_line_with_usage(
    module: str, args: list[str], needle: str
) -> None:
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and "Usage: tdc-" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("script", ["tdc-server", "tdc-harness"])
def test_an_invalid_setting_exits_2_naming_its_variable(
    script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A TdcError raised inside a command (here: a bad TDC_PORT) is exit 2 and its message."""
    from harness.cli.main import main as harness_main
    from server.cli import main as server_main

    monkeypatch.setenv("TDC_PORT", "not-a-port")
    code = server_main(["migrate"]) if script == "tdc-server" else harness_main(["datasets"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: invalid setting: TDC_PORT: Input should be a valid integer" in err
