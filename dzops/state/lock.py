"""Advisory locks (flock(2)) for files and jobs: two runs never interleave their writes.

flock locks belong to an open file description, so two threads of one process exclude each other
(each opens its own), and a child process that inherits the descriptor holds the lock with its
parent. That is how a job lock passes down: cron's `flock -n LOCK dzops schedule run JOB` and
`schedule run`, which starts `dzops JOB` as a child, both hand the locked descriptor on; the
child finds it among its open descriptors and adopts it instead of waiting for itself.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dzops.exceptions import AlreadyRunning
from dzops.state.files import PRIVATE_FILE, private_dir

_guard = threading.Lock()
_own_fds: set[int] = set()  # descriptors this module opened: never "inherited"
_held_jobs: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of a held job lock -> its descriptor

_POLL_S = 0.05


def _open(path: Path) -> int:
    if path.is_dir():
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    with _guard:
        _own_fds.add(fd)
    return fd


def _close(fd: int) -> None:
    with _guard:
        _own_fds.discard(fd)
    os.close(fd)  # closing the last descriptor of the description drops the lock


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def holder(path: Path) -> str:
    """Who holds a lock, as its file says ('pid N'), for messages."""
    try:
        text = Path(path).read_text(errors="replace").strip()[:32]
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "another run"


@contextmanager
def file_lock(path: Path, what: str, *, timeout: float | None = 60.0) -> Iterator[None]:
    """Hold an exclusive lock on `path` (a lock file, created 0600, or a directory) for the block.

    Waits up to `timeout` seconds (None: as long as it takes; 0: not at all), then raises
    AlreadyRunning naming what is locked.
    """
    path = Path(path)
    fd = _open(path)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while not _try(fd):
                if time.monotonic() >= deadline:
                    raise AlreadyRunning(f"{what}: {path} is locked by another dzops run "
                                         f"(waited {timeout:g} s)")
                time.sleep(_POLL_S)
        yield
    finally:
        _close(fd)


def _inherited(key: tuple[int, int]) -> int | None:
    """A descriptor this process inherited on the same lock file that holds (or can take) the lock."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        fd = int(name)
        with _guard:
            if fd in _own_fds:
                continue
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == key and _try(fd):
            return fd
    return None


def held_job_locks() -> tuple[int, ...]:
    """Descriptors of the job locks this process holds: `pass_fds` for a child that runs under them."""
    with _guard:
        return tuple(_held_jobs.values())


@contextmanager
def job_lock(path: Path, job: str) -> Iterator[int]:
    """Hold the lock of a job (patch, drift, backup) for the block, or raise AlreadyRunning at once.

    Yields the locked descriptor, so a child process can be handed the lock (`pass_fds`). A lock
    the process already holds (nested use, or inherited from a parent that holds it) is reused.
    The holder's pid is written into the file for the message another run prints.
    """
    path = Path(path)
    fd = _open(path)
    info = os.fstat(fd)
    key = (info.st_dev, info.st_ino)
    with _guard:
        nested = _held_jobs.get(key)
    if nested is not None:
        _close(fd)
        yield nested
        return
    locked = _try(fd)
    adopted = None if locked else _inherited(key)
    if not locked and adopted is None:
        _close(fd)
        raise AlreadyRunning(f"{job} is already running ({holder(path)} holds {path})")
    held = fd if locked else adopted
    assert held is not None
    # Through our own descriptor: an inherited one may be read-only (flock(1) opens O_RDONLY).
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    if adopted is not None:
        _close(fd)
    with _guard:
        _held_jobs[key] = held
    try:
        yield held
    finally:
        with _guard:
            _held_jobs.pop(key, None)
        if adopted is None:
            _close(held)
