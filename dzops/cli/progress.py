"""What a multi-device run shows while it runs, on stderr.

- stderr is a terminal: one Rich progress bar (done, failed, total, the device being worked on);
  with `-v` each device's messages are printed above the bar too.
- stderr is not a terminal (cron, CI, a pipe): one plain line per device event, `  host: message`.
- `--json`: nothing; stdout carries the JSON and stderr only the command's own summary lines.

One object serves every command: `step(subject, message)` is the `(subject, message)` callback
the execute layer already takes, `started(item)` is the fan-out observer (the current device),
and `ansible_event(event)` follows playbook runs task by task.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from dzops.scrub import egress

FAILED_WORDS = ("failed", "unreachable", "rolled back", "rolled_back", "skipped")


def is_failure(message: str) -> bool:
    """Whether a device's final message says it failed.

    >>> [is_failure(m) for m in ("collected", "unreachable: no route", "failed: x", "[2/9] skipped, x", "verified")]
    [False, True, True, True, False]
    """
    import re

    return re.sub(r"^\[\d+/\d+\] ", "", message).lower().startswith(FAILED_WORDS)


def choose_mode(json_output: bool, stream: TextIO | None = None) -> str:
    """'off' with --json, 'bar' on a terminal, else 'lines'.

    >>> import io
    >>> choose_mode(True), choose_mode(False, io.StringIO())
    ('off', 'lines')
    """
    if json_output:
        return "off"
    stream = stream if stream is not None else sys.stderr
    return "bar" if stream.isatty() else "lines"


class RunProgress:
    """Progress of one run over `units` (the devices, links or access points the run is about)."""

    def __init__(self, label: str, units: Iterable[str], mode: str, *, verbose: int = 0,
                 final: Callable[[str, str], bool] | None = None, stream: TextIO | None = None) -> None:
        self.label = label
        self.units = list(dict.fromkeys(units))
        self.mode = mode
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stderr
        # Which messages end a unit: by default every message about a unit is its last one.
        self.final = final or (lambda _subject, _message: True)
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.current = ""
        self.began: dict[str, float] = {}  # unit -> its first worker or message; with `ended`, the
        self.ended: dict[str, float] = {}  # per-device durations the run ledger keeps
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None

    # -- lifetime ---------------------------------------------------------------------------------
    def __enter__(self) -> RunProgress:
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                TextColumn("{task.fields[current]}"),
                console=Console(file=self.stream, highlight=False), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=len(self.units) or None, failed=0, current="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.stop()

    # -- events -----------------------------------------------------------------------------------
    def started(self, item: str) -> None:
        """Fan-out observer: a worker begins on `item`."""
        with self._lock:
            self.current = item
            if item in self.units:
                self.began.setdefault(item, time.monotonic())
        self._refresh()

    def step(self, subject: str, message: str) -> None:
        """A message about one device (or link): shown, and counted when it ends that unit."""
        with self._lock:
            self.current = subject
            if subject in self.units:
                self.began.setdefault(subject, time.monotonic())
            if subject in self.units and self.final(subject, message) and subject not in self.done:
                self.done.add(subject)
                self.ended[subject] = time.monotonic()
                if is_failure(message):
                    self.failed.add(subject)
        if self.mode == "lines":
            self._line(f"  {subject}: {message}")
        elif self.mode == "bar" and self.verbose:
            self._bar.console.print(egress(f"  {subject}: {message}"), markup=False, highlight=False)
        self._refresh()

    def ansible_event(self, event: Any) -> None:
        """One playbook task result of one host (dzops.execute.ansible.TaskEvent)."""
        if event.status == "skipped" or not event.task:
            return
        with self._lock:
            self.current = event.host
            if event.status in ("failed", "unreachable"):
                self.failed.add(event.host)
        detail = ""
        if event.status in ("failed", "unreachable") and event.result.get("msg"):
            detail = " - " + str(event.result["msg"]).strip().splitlines()[0][:200]
        if self.mode == "lines":
            self._line(f"  {event.host}: {event.task}: {event.status}{detail}")
        elif self.mode == "bar" and self.verbose:
            self._bar.console.print(egress(f"  {event.host}: {event.task}: {event.status}{detail}"), markup=False,
                                    highlight=False)
        self._refresh()

    def finish(self, outcomes: Iterable[tuple[str, str]]) -> None:
        """The run's final (unit, status) pairs: every unit counts as done, the failed ones as failed."""
        with self._lock:
            for unit, status in outcomes:
                self.done.add(unit)
                self.ended.setdefault(unit, time.monotonic())
                if status in ("failed", "unreachable", "rolled_back"):
                    self.failed.add(unit)
            self.current = ""
        self._refresh()

    # -- output -----------------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(egress(text) + "\n")  # stderr is an exit: a task's msg can quote a secret
            self.stream.flush()

    def _refresh(self) -> None:
        if self._bar is None:
            return
        with self._lock:
            done, failed, current = len(self.done & set(self.units)), len(self.failed), self.current
        self._bar.update(self._task, completed=done, failed=failed, current=current)


@contextmanager
def progress_for(settings: Any, label: str, units: Iterable[str], *,
                 final: Callable[[str, str], bool] | None = None) -> Iterator[RunProgress]:
    """The run's progress display, also set as the fan-out observer with the run's forks."""
    from dzops.execute.fanout import run_scope

    progress = RunProgress(label, units, choose_mode(settings.json), verbose=settings.verbose, final=final)
    with progress, run_scope(forks=settings.forks, observer=progress):
        yield progress
    from dzops.cli.runs import record_durations

    record_durations({unit: round(progress.ended[unit] - began, 3) for unit, began in progress.began.items()
                      if unit in progress.ended})
