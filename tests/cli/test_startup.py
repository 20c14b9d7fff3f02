"""The collector held off while a command starts (dzops.cli.startup)."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dzops.cli import startup


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process-like start: nothing held yet; the collector as the test found it afterwards."""
    monkeypatch.setattr(startup, "_held_once", False)
    monkeypatch.setattr(startup, "_timer", None)
    was_enabled = gc.isenabled()
    yield
    if startup._timer is not None:
        startup._timer.cancel()
    gc.unfreeze()
    (gc.enable if was_enabled else gc.disable)()


def test_held_until_released_then_frozen_and_on(fresh: None) -> None:
    startup.hold_collector()
    assert not gc.isenabled()
    startup.release_collector()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    startup.release_collector()  # a second release changes nothing
    assert gc.isenabled()


def test_a_command_that_never_loads_an_inventory_gets_it_back_anyway(
        fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "RELEASE_AFTER_S", 0.05)
    startup.hold_collector()
    assert not gc.isenabled()
    deadline = time.monotonic() + 5
    while not gc.isenabled() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gc.isenabled()


def test_once_per_process_and_never_over_someone_elses_choice(fresh: None) -> None:
    startup.hold_collector()
    startup.release_collector()
    startup.hold_collector()  # main() called again in the same process: left on
    assert gc.isenabled()

    startup._held_once = False
    gc.disable()  # the embedding program turned it off itself
    startup.hold_collector()
    startup.release_collector()
    assert not gc.isenabled()  # still its choice, not turned on by us


def test_a_backup_loads_its_inventory_with_the_collector_off_and_runs_with_it_on(tmp_path: Path) -> None:
    """The whole path in a process of its own: main() holds, Settings.load_inventory releases."""
    probe = (
        "import gc, sys\n"
        "from dzops.cli import output, startup\n"
        "startup.RELEASE_AFTER_S = 600  # only the load may release it here, however slow the machine\n"
        "seen = {}\n"
        "real = output.Settings.load_inventory\n"
        "def load(self, *a, **k):\n"
        "    seen.setdefault('before', gc.isenabled())\n"
        "    inventory = real(self, *a, **k)\n"
        "    seen['after'] = gc.isenabled(); seen['frozen'] = gc.get_freeze_count() > 0\n"
        "    raise SystemExit(0)\n"
        "output.Settings.load_inventory = load\n"
        "import atexit; atexit.register(lambda: print(seen))\n"
        "sys.argv = ['dzops', '--check', 'backup']\n"
        "from dzops.cli.app import main; main()\n"
    )
    env = {"DZOPS_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.stdout.strip().splitlines()[-1:] == ["{'before': False, 'after': True, 'frozen': True}"], \
        (done.stdout[-500:], done.stderr[-2000:])
