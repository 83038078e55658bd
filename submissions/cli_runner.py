"""The one runner of the console scripts: a Typer app in, an exit code out, no tracebacks.

    def main(argv: list[str] | None = None) -> int:       # tdc-submit, tdc-harness, tdc-server
        return run_app(app, argv, prog_name="tdc-server")

What leaves a command, and what the user sees:

- a usage error (unknown command or option, bad value, missing argument): click's usage
  message on stderr, exit 2 (``--help`` and ``typer.Exit(n)``: exit n);
- a :class:`Failure` raised by a command: ``error: <message>`` and its detail lines, its code;
- a :class:`~submissions.errors.TdcError`: ``translate(err)`` if given and it returns a
  Failure (``tdc-submit`` has a code per kind of failure), else ``error: <message>``, exit 2;
- Ctrl-C: exit 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import typer

from submissions.errors import TdcError

USAGE_EXIT = 2  # a bad command line, as click's usage errors; also a TdcError's default
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a Ctrl-C


class Failure(Exception):
    """Leave with ``code`` after printing ``error: message`` (and ``details``) on stderr."""

    def __init__(self, code: int, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, list(details)


Translate = Callable[[TdcError], "Failure | None"]


def run_app(
    app: typer.Typer,
    argv: Sequence[str] | None = None,
    *,
    prog_name: str,
    translate: Translate | None = None,
) -> int:
    """Run ``app`` on ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # Without standalone mode, click returns the code of a typer.Exit (and of Ctrl-C).
        rv = app(args=args, prog_name=prog_name, standalone_mode=False)
    except Failure as failure:
        return _report(failure)
    except TdcError as err:
        return _report((translate(err) if translate else None) or Failure(USAGE_EXIT, str(err)))
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT
    except SystemExit as exc:
        return _system_exit(exc)
    except Exception as exc:
        code = _click_exit(exc)
        if code is None:
            raise
        return code
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


def _report(failure: Failure) -> int:
    typer.echo(f"error: {failure.message}", err=True)
    for line in failure.details:
        typer.echo(line, err=True)
    return failure.code


def _system_exit(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return int(exc.code or 0)
    typer.echo(str(exc.code), err=True)  # ``raise SystemExit("message")``: as Python does
    return 1


def _click_exit(exc: Exception) -> int | None:
    """The exit code of click's exceptions (Typer ships its own click; these are its names)."""
    if isinstance(exc, typer.Exit):
        return int(exc.exit_code)
    if isinstance(exc, typer.Abort):
        typer.echo("Aborted!", err=True)
        return INTERRUPTED_EXIT
    # Usage errors are TyperExceptions with show(), which prints the usage and the message.
    show = getattr(exc, "show", None)
    if isinstance(exc, typer.TyperException) and callable(show):
        show()
        return int(getattr(exc, "exit_code", USAGE_EXIT))
    return None
