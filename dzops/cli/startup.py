"""Python's cyclic garbage collector, held off while a command starts.

Start-up imports typer, pydantic, paramiko and dzops' own modules and loads the inventory: some
hundred thousand objects that live as long as the process. Left on, the collector walks them over
and over as they pile up and frees next to nothing: about 30 ms of the 0.3 s before a backup's
first login, all of it on the one thread that then holds Python's lock. So `main` holds it off
until the inventory is in (`Settings.load_inventory`); what start-up built is then frozen out of
every later collection and the collector runs as usual. A command that loads no inventory gets it
back after RELEASE_AFTER_S all the same. Once per process: a program that calls `main` again and
again (the test suite) freezes its heap once, not at every call.
"""

from __future__ import annotations

import gc
import threading

RELEASE_AFTER_S = 1.0

_lock = threading.Lock()
_held_once = False  # held already in this process (and maybe released)
_timer: threading.Timer | None = None


def hold_collector() -> None:
    """Collector off, back on at the latest RELEASE_AFTER_S from now. Leaves alone a collector
    someone else (an embedding program, a test harness) already turned off."""
    global _held_once, _timer
    with _lock:
        if _held_once or not gc.isenabled():
            return
        _held_once = True
        gc.disable()
        _timer = threading.Timer(RELEASE_AFTER_S, release_collector)
        _timer.daemon = True
        _timer.start()


def release_collector() -> None:
    """What start-up built frozen out of every later collection, and the collector on again, if
    `hold_collector` turned it off and nothing released it yet."""
    global _timer
    with _lock:
        if _timer is None:
            return
        _timer.cancel()
        _timer = None
        gc.freeze()
        gc.enable()
