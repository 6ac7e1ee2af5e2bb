"""Finding the input images of a command: a file, a folder (recursively), a glob, or a list of paths
(``--files-from``), as sorted ``(file, relative path)`` pairs whose relative paths the outputs mirror.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from PIL import Image

from unetcli.errors import UsageError
from unetcli.imageio import printable, special_file_kind

def is_image_name(path: Path) -> bool:
    """True if the extension is one Pillow opens (``.jpg``, ``.png``, ``.tif``, ``.webp``, ``.gif`` ...)."""
    return path.suffix.lower() in _readable_extensions()


_READABLE: set[str] | None = None


def _readable_extensions() -> set[str]:
    global _READABLE
    if _READABLE is None:
        _READABLE = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return _READABLE


def collect_inputs(source: str, recursive: bool = False,
                   unreadable: list[tuple[Path, str]] | None = None) -> list[tuple[Path, Path]]:
    """Expand an INPUT argument into sorted ``(file, relative path)`` pairs.

    Args:
        source: a file (taken whatever its extension), a folder (its image files; sub-folders with
            ``recursive``), or a glob pattern (``photos/*.jpg``, ``**`` allowed). Hidden files are skipped.
            Special files (FIFOs, sockets, devices) with an image name are taken like files: reading them
            (:func:`~unetcli.imageio.read_photo`) reports them without opening them.
        recursive: descend into sub-folders. Symlinked folders are followed once; a symlink loop is detected
            by real path and not entered twice.
        unreadable: if given, each sub-folder that cannot be listed (permission denied ...) is appended as
            ``(folder, reason)``; otherwise such folders are skipped.

    Returns:
        Pairs sorted by relative path; the relative path is what the output mirrors (for a folder, the path
        below it; for a glob, the path below its fixed leading part; for a file, its name).

    Raises:
        UsageError: nothing matched, INPUT is a special file, or the INPUT folder itself cannot be listed.
    """
    p = Path(source)
    items: list[tuple[Path, Path]] = []
    if p.is_file():
        items = [(p, Path(p.name))]
    elif p.is_dir():
        seen: set[str] = set()
        failed: list[OSError] = []
        for root, dirs, files in os.walk(p, followlinks=recursive, onerror=failed.append):
            real = os.path.realpath(root)
            if real in seen:
                dirs[:] = []
                continue
            seen.add(real)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
            for name in files:
                f = Path(root) / name
                if not name.startswith(".") and is_image_name(f):
                    items.append((f, f.relative_to(p)))
        for exc in failed:
            if os.path.abspath(exc.filename or p) == os.path.abspath(p):
                raise UsageError(f"input {source!r}: cannot list the folder "
                                 f"({(exc.strerror or str(exc)).lower()})")
            if unreadable is not None:
                reason = (exc.strerror or str(exc)).lower()
                unreadable.append((Path(exc.filename), f"cannot list the folder ({reason}): its files were not read"))
        if unreadable:
            return sorted(items, key=lambda pair: str(pair[1]))
    elif p.exists():
        raise UsageError(f"input {source!r}: {special_file_kind(p.stat().st_mode)}; expected an image file, "
                         f"a folder or a glob")
    elif _has_magic(source):
        fixed = _leading_fixed_parts(source)
        base = Path(*fixed) if fixed else Path(".")
        for match in glob.glob(source, recursive=True):
            f = Path(match)
            if f.exists() and not f.is_dir() and not f.name.startswith("."):
                items.append((f, f.relative_to(base) if f.is_relative_to(base) else Path(f.name)))
    else:
        raise UsageError(f"input {source!r}: no such file or folder")
    if not items:
        raise UsageError(f"input {source!r}: no image files found"
                         + ("" if recursive or not p.is_dir() else " (add --recursive for sub-folders)"))
    return sorted(items, key=lambda pair: str(pair[1]))


def collect_listed(paths: list[str], base: str) -> list[tuple[Path, Path]]:
    """Files named in a list (``--files-from``) -> sorted ``(file, relative path)`` pairs, like :func:`collect_inputs`.

    Args:
        paths: file paths as listed (relative ones are relative to the current folder, as ``find`` prints
            them). Every listed path is taken whatever its extension, hidden or not; duplicates are dropped. A
            path that does not exist is kept: it fails as its own file ("file not found"), the batch goes on.
        base: the folder the outputs mirror the listed paths relative to (``find photos ...`` -> ``photos``).

    Returns:
        Pairs sorted by relative path.

    Raises:
        UsageError: ``base`` is not a folder, the list is empty, or a listed path is not inside ``base``.
    """
    root = Path(base)
    if not root.is_dir():
        raise UsageError(f"input {base!r}: with --files-from, INPUT is the folder that the outputs mirror the "
                         f"listed paths relative to, and must be an existing folder (e.g. .)")
    root_abs = os.path.abspath(root)
    items: list[tuple[Path, Path]] = []
    seen: set[str] = set()
    outside: list[str] = []
    for listed in paths:
        absolute = os.path.abspath(listed)
        if absolute in seen:
            continue
        seen.add(absolute)
        rel = os.path.relpath(absolute, root_abs)
        if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
            outside.append(listed)
            continue
        items.append((Path(listed), Path(rel)))
    if outside:
        raise UsageError(f"--files-from: {len(outside)} listed path(s) are not inside INPUT folder "
                         f"{printable(base)}, e.g. "
                         f"{outside[0]!r}; pass a folder that holds them all (e.g. / for absolute paths)")
    if not items:
        raise UsageError("--files-from: the list names no files")
    return sorted(items, key=lambda pair: str(pair[1]))


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def _leading_fixed_parts(pattern: str) -> list[str]:
    parts = []
    for part in Path(pattern).parts:
        if _has_magic(part):
            break
        parts.append(part)
    return parts
