"""The ``unetcli`` Typer app: wires the commands, nothing else (one file per command, as in rembg and Typer's docs).

The app is built on first use (``unetcli.cli.app`` or :func:`main`), so that ``unetcli --version`` answers without
importing torch or the commands.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from unetcli import __version__, console
from unetcli.errors import EXIT_INTERRUPTED, UnetcliError

#: The commands in the order ``unetcli --help`` lists them: (name, module under unetcli.cli, function).
COMMANDS = (("models", "models"), ("summary", "summary"), ("env", "env"), ("train", "train"),
            ("predict", "predict"), ("compare", "compare"), ("export", "export"))

_APP = None
#: Set by :func:`skip_teardown`: :func:`main` ends the process without the interpreter's teardown.
_SKIP_TEARDOWN = False


def _clean_errors(command):
    """Print an :class:`UnetcliError` as one ``error:`` line (``interrupted:`` for exit code 130) on stderr and exit
    with its code (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UnetcliError as exc:
            label = "[yellow]interrupted:[/]" if exc.exit_code == EXIT_INTERRUPTED else "[bold red]error:[/]"
            console.err.print(f"{label} {escape(exc.message)}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _print_version(value: bool) -> None:
    if value:
        console.out.print(f"unetcli {__version__}")
        raise typer.Exit()


def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False) -> None:
    """Train and run U-Net image models on folders of photos."""


def _build_app():
    """The Typer app with every command registered (imports the commands, and with them torch)."""
    app = typer.Typer(
        name="unetcli",
        help="Train and run U-Net image models (colorize, decolorize, segment) on folders of photos.\n\n"
             "Exit codes: 0 done, 1 some files failed (or an export failed its check), 2 usage or set-up error, "
             "130 interrupted.",
        no_args_is_help=True,
        add_completion=True,
        rich_markup_mode="markdown",
        pretty_exceptions_show_locals=False,
    )
    for name, module in COMMANDS:
        command = getattr(importlib.import_module(f"unetcli.cli.{module}"), name)
        app.command(name)(_clean_errors(command))
    app.callback()(_root)
    return app


def __getattr__(name: str):
    """``unetcli.cli.app``: the Typer app, built on first access."""
    if name == "app":
        global _APP
        if _APP is None:
            _APP = _build_app()
        return _APP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def skip_teardown() -> None:
    """Called by a command whose files are all written and closed (``predict`` before its final line; ``train`` in a
    torchrun rank): when it ends, :func:`main` flushes stdout and stderr and ends the process with ``os._exit`` and
    the command's exit code, skipping the interpreter's teardown (freeing every module and torch's operator
    registrations: about 0.5 s of CPU, a quarter of a one-photo run; in a torchrun rank it can abort in gloo's
    destructor). Only :func:`main` acts on it, and only for the process's own command line (the console script,
    ``python -m unetcli``); ``main(argv)`` called from Python code and the app run in-process (Typer's
    ``CliRunner``) exit normally."""
    global _SKIP_TEARDOWN
    _SKIP_TEARDOWN = True


def _exit_now(code) -> None:
    """``os._exit(code)`` once stdout and stderr are flushed; returns (the normal exit follows) if the code is not
    an int or a stream cannot be flushed (a closed pipe: Python's own exit reports that)."""
    if code is not None and not isinstance(code, int):
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(code or 0)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (also ``python -m unetcli``)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--version" in args and all(a.startswith("-") for a in args):  # no command named: answer before torch loads
        console.out.print(f"unetcli {__version__}")
        return
    try:
        __getattr__("app")(args=args, prog_name="unetcli")
    except SystemExit as exc:
        if _SKIP_TEARDOWN and argv is None:  # the process's own command line, not a call from Python code
            _exit_now(exc.code)
        raise
