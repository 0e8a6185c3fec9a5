"""Crash-safe file writes: the one helper every module uses for files it must not lose."""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, never half.

    The temp file is created with ``mode`` from its first byte (secrets are never
    readable by others, even for an instant), fsynced, renamed over ``path``,
    and the directory is fsynced so the rename survives a power cut.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have removed bits we want (0644 for public files)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_directory(path.parent)


def private_dir(directory: Path) -> Path:
    """Create ``directory`` (with parents) if needed and make it 0700: only its owner may enter it.

    Parents created here are 0700 too (``mkdir(parents=True)`` would give them the umask's
    default). On systems without POSIX modes (Windows) the mode is left to the OS.
    """
    directory = Path(directory)
    missing, probe = [], directory
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
    if os.name == "posix":
        os.chmod(directory, 0o700)
    return directory


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing; make an existing one 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if os.name == "posix":
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
