"""Inventory write-back: atomic (a crash leaves the old file), locked (two runs at once both land), style kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dzops.inventory import edit

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq3yVrd2X5l1Yxq8nJm3Gm3a1bqJq8cX9nEJ2sQ1m5w {}@punakha"


@pytest.fixture()
def inv(tmp_path: Path) -> Path:
    root = tmp_path / "inventory"
    shutil.copytree(SAMPLE, root)
    return root


def links_file(root: Path) -> Path:
    return root / "group_vars/all/wan_links.yml"


def test_write_back_keeps_comments_flow_style_and_mode(inv: Path) -> None:
    path = links_file(inv)
    path.chmod(0o644)
    assert edit.write_wan_subnets(inv, {"hq-talo": "10.30.255.36/30"}) == path
    text = path.read_text()
    assert text.startswith("---\n# WAN circuits from each gewog centre")
    assert "    a: {host: punakha-hq-rtr1, interface: eth1}\n" in text
    assert text.count("subnet: 10.30.255.36/30") == 1
    assert path.stat().st_mode & 0o777 == 0o644  # a tracked file keeps the mode git gave it
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("failing", ["os.replace", "os.fsync"], ids=["rename", "fsync"])
def test_a_crash_mid_write_back_leaves_the_old_file_intact(inv: Path, monkeypatch: pytest.MonkeyPatch,
                                                           failing: str) -> None:
    path = links_file(inv)
    original = path.read_bytes()

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(failing, interrupted)
    with pytest.raises(KeyboardInterrupt):
        edit.write_wan_subnets(inv, {"hq-talo": "10.30.255.36/30"})
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(p.name for p in (SAMPLE / "group_vars/all").iterdir())


def test_two_concurrent_write_backs_in_threads_both_land(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = edit.atomic_write

    def slow_write(path: Path, data: str, **kwargs: object) -> Path:
        time.sleep(0.3)  # both runs have read the file by now, unless the lock keeps the second out
        return real_write(path, data, **kwargs)

    monkeypatch.setattr(edit, "atomic_write", slow_write)
    runs = [threading.Thread(target=edit.write_wan_subnets, args=(inv, {name: subnet}))
            for name, subnet in (("hq-talo", "10.30.255.36/30"), ("hq-barp", "10.30.255.0/30"))]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    text = links_file(inv).read_text()
    assert "subnet: 10.30.255.36/30" in text and "subnet: 10.30.255.0/30" in text


CHILD = """
import sys, time
from pathlib import Path
from dzops.inventory import edit
real = edit.atomic_write
def slow(path, data, **kw):
    time.sleep(0.3)
    return real(path, data, **kw)
edit.atomic_write = slow
login = sys.argv[2]
edit.add_user(Path(sys.argv[1]), {"login": login, "name": login.title(), "email": f"{login}@punakha.gov.bt",
                                  "role": "readonly", "ssh_keys": [sys.argv[3]]})
"""


def test_two_concurrent_write_backs_in_processes_both_land(inv: Path) -> None:
    from dzops.inventory.loader import load_inventory

    runs = [subprocess.Popen([sys.executable, "-c", CHILD, str(inv), login, KEY.format(login)])
            for login in ("tashi", "dechen")]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    logins = {u.login for u in load_inventory(inv).users}
    assert {"tashi", "dechen"} <= logins
