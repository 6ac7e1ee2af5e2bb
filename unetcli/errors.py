"""Errors that reach the user as one clear line and a documented exit code.

Exit codes (documented in the README):
    0: everything asked for was done (files skipped because their output exists count as done).
    1: the run went through but some input files failed (each named with its reason), or an export failed
       its verification (nothing is left at the output path).
    2: usage or set-up error before any work: bad option, unknown model, missing or corrupt weights,
       CUDA asked for but not available, output folder not writable.
    130: interrupted (Ctrl-C; SIGTERM for train): predict finished or discarded the files in flight and left
       nothing half-written; train wrote its checkpoint (``--resume RUN`` continues).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UnetcliError(Exception):
    """Base class of the errors the CLI prints as ``error: <message>`` and turns into ``exit_code``."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(UnetcliError):
    """A bad option or set-up problem found before any work was done (exit code 2)."""


class WeightsError(UnetcliError):
    """Weights missing, unreadable, of the wrong architecture, or failing their sha256 check (exit code 2)."""


class ExportError(UnetcliError):
    """An export that the exporter could not write, or whose file failed its verification (exit code 1).

    The file is removed before this is raised, so nothing unverified is left at the output path.
    """

    exit_code = EXIT_SOME_FAILED


class TrainingInterrupted(UnetcliError):
    """``train`` was stopped by Ctrl-C or SIGTERM after writing its checkpoint (exit code 130); the message says
    where it stopped and the command that continues."""

    exit_code = EXIT_INTERRUPTED


class InputError(Exception):
    """One input file cannot be used (unreadable, corrupt, unsupported); the batch goes on without it.

    The message names what is wrong; the engine prefixes the file name.
    """
