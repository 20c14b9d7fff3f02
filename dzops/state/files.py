"""Atomic file replacement and private (owner-only) directories and files.

An atomic write goes to a temporary file in the target's own directory (same filesystem, so the
rename is atomic), is flushed and fsync'ed, renamed over the target, and the directory is fsync'ed
so the rename itself survives a power cut. Readers see the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None) -> Path:
    """Replace `path` with `data` atomically; returns the path.

    `mode` None keeps an existing file's permission bits (an inventory file stays as git left it)
    and gives a new file 0600; an existing file keeps its owner where the process may chown, and a
    symlink keeps pointing at its (replaced) target. On any failure the old file is untouched and
    no temporary is left.
    """
    path = Path(path)
    if path.is_symlink():  # an inventory file linked from elsewhere stays a link: its target is replaced
        path = path.resolve()
    try:
        existing: os.stat_result | None = path.stat()
    except FileNotFoundError:
        existing = None
    if mode is None:
        mode = stat.S_IMODE(existing.st_mode) if existing else PRIVATE_FILE
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".dzops-tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            if existing is not None and (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
                # root editing an officer's checkout must not leave a root-owned file behind
                with contextlib.suppress(PermissionError):
                    os.fchown(fh.fileno(), existing.st_uid, existing.st_gid)
            os.fchmod(fh.fileno(), mode)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
    return path


def write_private(path: Path, data: str | bytes) -> Path:
    """An owner-only (0600) file, written atomically."""
    return atomic_write(path, data, mode=PRIVATE_FILE)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) owner-only (0700); an existing `path` is made 0700 too.

    Reports, backups and queued mail hold device configurations and addresses: nobody else on the
    machine reads them. Existing parents are left as they are (they may be shared, like /var/lib).
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another run may create it at the same moment
            directory.mkdir(mode=PRIVATE_DIR)
        os.chmod(directory, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return path
