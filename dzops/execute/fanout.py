"""One thread pool for every multi-device run: how many devices at once, and who is watching.

Every collector and driver phase that works on many devices calls `fan_out`. The CLI opens a
`run_scope(forks, observer)` around a command, so the officer's `--forks` bounds every pool of
that run (a WAN run fans out to connect, apply, verify and close: each phase obeys the same
number) and the observer hears which device each worker starts on. What each device ended with
stays the callee's result (HostResult, LinkResult, ...): a failed device is a result, not an
exception of the run.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

DEFAULT_FORKS = 10  # the lab notes measure no gain past ~10 concurrent SSH sessions on 2 cores

T = TypeVar("T")
R = TypeVar("R")


class Observer(Protocol):
    def started(self, item: str) -> None:
        """A worker begins on this device (or link): the 'current device' of a progress display."""


@dataclass(frozen=True)
class _Scope:
    forks: int
    observer: Observer | None


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("dzops_fanout_scope", default=None)


@contextmanager
def run_scope(forks: int = DEFAULT_FORKS, observer: Observer | None = None) -> Iterator[None]:
    """Every fan_out inside the block uses `forks` workers at most and reports to `observer`."""
    if forks < 1:
        raise ValueError(f"forks must be at least 1, not {forks}")
    token = _scope.set(_Scope(forks, observer))
    try:
        yield
    finally:
        _scope.reset(token)


def current_forks(default: int = DEFAULT_FORKS) -> int:
    """The run's forks, else `default`.

    >>> current_forks()
    10
    >>> with run_scope(forks=3):
    ...     current_forks()
    3
    """
    scope = _scope.get()
    return scope.forks if scope is not None else default


def fan_out(fn: Callable[[T], R], items: Iterable[T], forks: int | None = None) -> list[R]:
    """fn over items on a bounded thread pool, results in item order.

    The run's forks (see run_scope) win over `forks`, which is the caller's default: the officer's
    number is the one that must hold for the whole run. An exception of fn propagates once every
    started call has finished.

    >>> fan_out(lambda n: n * n, [1, 2, 3])
    [1, 4, 9]
    """
    items = list(items)
    scope = _scope.get()
    workers = scope.forks if scope is not None else (forks or DEFAULT_FORKS)
    observer = scope.observer if scope is not None else None

    def one(item: T) -> R:
        if observer is not None:
            observer.started(str(item))
        return fn(item)

    # Workers run in a copy of the caller's context, so a fan-out inside a worker keeps the scope.
    contexts = [contextvars.copy_context() for _ in items]
    with ThreadPoolExecutor(max_workers=min(workers, max(1, len(items)))) as pool:
        return list(pool.map(lambda pair: pair[0].run(one, pair[1]), zip(contexts, items, strict=True)))
