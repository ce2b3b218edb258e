"""Atomic file output: write to a temp file in the target directory, fsync, rename.

A reader (or a re-run after a kill) sees either the old file, the complete
new one, or nothing; never a partial file under the final name.

:func:`check_output_dir` and :func:`check_output_file` make sure, before any
work, that such a write can happen where an output is to go: a run must not
compute for minutes and then fail on its first write.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, IO, Iterator, Union

from .errors import UserError

__all__ = ["atomic_write", "atomic_write_text", "atomic_path", "check_output_dir",
           "check_output_file"]

PathLike = Union[str, os.PathLike]


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    For libraries that insist on opening the file themselves (larcv, h5py).
    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    # mkstemp makes 0600 files; outputs get the usual permissions (umask applies).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: PathLike, write: Callable[[IO], None], binary: bool = True) -> None:
    """Call ``write(stream)`` on a temporary file, then rename it to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb" if binary else "w", newline="" if not binary else None) as stream:
            write(stream)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda stream: stream.write(text), binary=False)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (where a mkdir would start)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def _require_writable(directory: Path, target: Path, what: str) -> None:
    """Raise UserError unless a file can be created in ``directory`` (for ``target``)."""
    if not directory.is_dir():
        raise UserError(f"cannot write {what} {target}: {directory} is a file, not a directory")
    # os.access first: it answers for the real user without touching anything; the
    # probe file then catches what it cannot see (read-only mounts, ACLs, quotas).
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {what} {target}: no write permission in {directory}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=directory)
    except OSError as err:
        raise UserError(f"cannot write {what} {target}: {err.strerror} in {directory}") from None
    os.close(fd)
    os.unlink(probe)


def check_output_dir(path: PathLike, what: str = "output directory") -> None:
    """Refuse, before any work, an output directory that cannot be written.

    Parameters
    ----------
    path : str or PathLike
        The directory; it may not exist yet (then its nearest existing ancestor
        must be writable, so that it can be created).
    what : str
        How the error message names it.

    Raises
    ------
    UserError
        ``path`` is an existing file, or nothing can be written there.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot write {what} {path}: it is an existing file, not a directory "
                        f"(give a directory; it is created when missing)")
    _require_writable(_nearest_existing(path), path, what)


def check_output_file(path: PathLike, overwrite: bool = True, what: str = "output file") -> None:
    """Refuse, before any work, an output file that cannot be written.

    Parameters
    ----------
    path : str or PathLike
        The file to be written (its directory may not exist yet).
    overwrite : bool
        When False an existing ``path`` is refused with a message naming ``--overwrite``.
    what : str
        How the error message names it.

    Raises
    ------
    UserError
        ``path`` is a directory, exists (without ``overwrite``), or cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {what} {path}: it is a directory (give a file name)")
    if path.exists() and not overwrite:
        raise UserError(f"{what} {path} exists; use --overwrite to replace it, or another name")
    _require_writable(_nearest_existing(path.parent), path, what)
