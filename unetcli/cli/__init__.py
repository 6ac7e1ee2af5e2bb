"""The ``unetcli`` Typer app: wires the commands, nothing else (one file per command, as in rembg and Typer's docs)."""

from __future__ import annotations

import functools

import typer

from unetcli import __version__, console
from unetcli.cli.export import export
from unetcli.cli.models import models
from unetcli.cli.predict import predict
from unetcli.cli.summary import summary
from unetcli.cli.train import train
from rich.markup import escape

from unetcli.errors import EXIT_INTERRUPTED, UnetcliError


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


app = typer.Typer(
    name="unetcli",
    help="Train and run U-Net image models (colorize, decolorize, segment) on folders of photos.\n\n"
         "Exit codes: 0 done, 1 some files failed (or an export failed its check), 2 usage or set-up error, "
         "130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
for _name, _command in (("models", models), ("summary", summary), ("train", train), ("predict", predict),
                         ("export", export)):
    app.command(_name)(_clean_errors(_command))


def _version(value: bool) -> None:
    if value:
        console.out.print(f"unetcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Train and run U-Net image models on folders of photos."""


def main() -> None:
    """Console-script entry point."""
    app()
