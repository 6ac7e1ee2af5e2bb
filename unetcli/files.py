"""Writing files so that nothing is ever half-written or lost: atomic writes, a writable-folder probe, whole-line
appends, ``predict``'s output log and the removal of what a killed process left.

Every writer of unetcli (outputs, weights, model cards, checkpoints, metrics, exports) goes through
:func:`atomic_write`. The standard library has the pieces (``os.replace``, ``O_APPEND``) but no helper that ties
them to the clean-up of a killed writer's temporary files, hence this module.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image

from unetcli.errors import UsageError
from unetcli.imageio import printable

#: Encoder settings per output format. PNG: zlib level 1, OpenCV's ``imwrite`` default (Pillow's is 6): measured on
#: 1024-px photos, 4x faster to encode (44 vs 177 ms) for files about 11 % larger; still lossless.
SAVE_OPTIONS = {"PNG": {"compress_level": 1}}


def temporary_name(path: Path) -> Path:
    """The hidden temporary name beside ``path`` that :func:`atomic_write` writes first: ``.<name>.<pid>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block ends normally it is renamed to ``path``
    with ``os.replace`` (atomic on POSIX and Windows), so ``path`` is either its old self or complete, never
    half-written. On any error (or ``KeyboardInterrupt``) the temporary file is removed and the error re-raised.

    The one way every writer of unetcli (outputs, weights, model cards, checkpoints, metrics, exports) writes a file;
    :func:`remove_stale_temporaries` clears what a killed (``kill -9``) process left.

    Example:
        >>> with atomic_write(Path("out.json")) as tmp:  # doctest: +SKIP
        ...     tmp.write_text("{}")
    """
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` (and its parents) and prove a file can be written there, before any work: a read-only
    file system, missing permissions or a file in the way are found at once, not after the first hour.

    Args:
        folder: the output or run folder.
        what: how the message names it (``"output folder"``, ``"run folder"``).

    Raises:
        UsageError: ``{what} {folder} is not writable ({reason})``.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".unetcli-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{what} {printable(str(folder))} is not writable ({exc.strerror or exc})") from None


def save_atomic(im: Image.Image, path: Path, fmt: str, before_replace: Callable[[Path], None] | None = None,
                params: dict | None = None) -> None:
    """Write ``im`` to ``path`` so that ``path`` is either absent or complete, never half-written
    (:func:`atomic_write`); the parent folder is created. Encoder settings come from :data:`SAVE_OPTIONS`, then
    ``params`` (Pillow ``save`` keywords: ``quality``, ``exif``, ``icc_profile`` ...).

    ``before_replace(tmp)`` runs once the file is encoded, before it takes its name (``predict`` records the
    output in its :class:`OutputLog` there); if it raises, nothing is renamed and the temporary file is removed.

    Raises:
        OSError: the folder or file cannot be written (full disk, read-only file system, permission denied, a
            file where a folder should be); no file is left at ``path`` or beside it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        im.save(tmp, format=fmt, **SAVE_OPTIONS.get(fmt, {}), **(params or {}))
        if before_replace is not None:
            before_replace(tmp)


def append_line(fd: int, line: str) -> None:
    """Append one ASCII ``line`` (ending in a newline) to the file open on ``fd`` (``O_APPEND``) in one ``write``.

    Lines of concurrent writers (threads, processes sharing a file) never interleave (``O_APPEND``: each write
    lands whole at the end). A line that could not be written whole (full disk) is cut off again, so the file
    never holds a partial line.

    Raises:
        OSError: the line could not be written (nothing of it is left in the file when it could be removed).
    """
    data = line.encode("ascii")
    start = os.fstat(fd).st_size
    written = 0
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        with contextlib.suppress(OSError):
            if written and os.fstat(fd).st_size == start + written:  # no other writer appended meanwhile
                os.ftruncate(fd, start)
        raise


def open_append(path: Path) -> int:
    """An ``O_APPEND`` file descriptor for :func:`append_line` (the file is created if needed).

    Raises:
        OSError: the file cannot be opened for writing.
    """
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)


#: The record of what ``predict`` wrote into an OUTPUT folder: one JSON line per output written, at OUTPUT's root.
OUTPUT_LOG = ".unetcli-outputs.jsonl"


class OutputLog:
    """What made each output in an OUTPUT folder: ``OUTPUT/.unetcli-outputs.jsonl``, one JSON line per output
    written: its path (relative to OUTPUT), size and modification time (ns), and the ``made_by`` record (model,
    weights sha256, the options that change pixels).

    Why a log in OUTPUT rather than metadata inside each image: the images stay byte for byte what they were (and
    what every other tool writes); every format is covered, also those without metadata (BMP, GIF); checking an
    output is one ``stat``, not a decode; and a file that another program wrote or replaced has no matching record
    (size and mtime differ), so ``--overwrite`` can tell unetcli's own outputs from everything else. Lines are
    appended whole (:func:`append_line`), so threads, shards and concurrent runs sharing OUTPUT all add to one log,
    and a record is written before its output takes its name, so a ``kill -9`` never leaves an output without one.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / OUTPUT_LOG
        self.records: dict[str, list[dict]] = {}
        self._fd: int | None = None
        with contextlib.suppress(OSError):
            with open(self.path, "rb") as f:
                for raw in f:
                    with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
                        rec = json.loads(raw)
                        self.records.setdefault(rec["output"], []).append(rec)

    def _key(self, output: Path) -> str:
        return os.path.relpath(output, self.folder)

    def made_by(self, output: Path) -> dict | None:
        """The ``made_by`` record of the file now at ``output`` if unetcli wrote it (a record whose size and mtime
        match the file), else None (no file, or a file unetcli has no record of writing)."""
        try:
            st = os.stat(output)
        except OSError:
            return None
        for rec in reversed(self.records.get(self._key(output), [])):
            if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
                return rec.get("made_by")
        return None

    def record(self, output: Path, written: Path, made_by: dict) -> None:
        """Append the record of ``written`` (the encoded temporary file about to be renamed to ``output``).

        Raises:
            OSError: the log cannot be written (the caller then does not rename the output).
        """
        if self._fd is None:
            self._fd = open_append(self.path)
        st = os.stat(written)
        append_line(self._fd, json.dumps({"output": self._key(output), "size": st.st_size,
                                          "mtime_ns": st.st_mtime_ns, "made_by": made_by}) + "\n")

    def close(self) -> None:
        """Close the log file (it is opened on the first :meth:`record`)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _is_temporary_of(name: str, targets: set[str] | None) -> int | None:
    """The writer's PID if ``name`` is ``.<target>.<pid>.tmp`` (:func:`temporary_name`) for one of ``targets``
    (None: any), else None."""
    stem, _, suffix = name.rpartition(".")
    base, _, pid = stem.rpartition(".")
    if (name.startswith(".") and suffix == "tmp" and pid.isdigit() and len(base) > 1
            and (targets is None or base[1:] in targets)):
        return int(pid)
    return None


def _process_alive(pid: int) -> bool:
    """True if a process with this PID exists on this machine (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process (or an unknowable PID): keep its file
    return True


def remove_stale_temporaries(targets: list[Path] | None = None, *, folder: Path | None = None) -> int:
    """Delete the temporary files :func:`atomic_write` left when a process was killed (``kill -9``).

    Only files whose writer (the PID in the name) is gone are removed: another process writing into the same folder
    keeps its live temporary files (two runs sharing OUTPUT never break each other's writes). Call it before this
    process writes there: a file named with this process's own PID is then a dead predecessor's (PIDs repeat, e.g.
    in containers) and is removed.

    Args:
        targets: remove only ``.<target name>.<pid>.tmp`` next to one of these files, so nothing but a run's own
            would-be outputs is touched (``predict``).
        folder: remove every such temporary file in this folder (a training run's own folder).

    Returns:
        How many files were removed.
    """
    by_folder: dict[Path, set[str] | None] = {}
    for t in targets or []:
        names = by_folder.setdefault(t.parent, set())
        if names is not None:
            names.add(t.name)
    if folder is not None:
        by_folder[Path(folder)] = None
    removed = 0
    for where, names in by_folder.items():
        try:
            entries = list(os.scandir(where))
        except OSError:
            continue
        for entry in entries:
            pid = _is_temporary_of(entry.name, names)
            if pid is not None and (pid == os.getpid() or not _process_alive(pid)) \
                    and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
