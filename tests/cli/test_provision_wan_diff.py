"""`provision-wan --check --diff` shows each changed router's diff once, naming the links behind it.

Run against the fake FRR network of tests/execute/test_wan_results.py: no lab, real CLI.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dzops.execute import wan
from dzops.inventory.loader import load_inventory
from tests.execute.test_wan_results import HQ, FakeNetwork
from tests.labkit import copy_sample_inventory


def _run(argv: list[str], inventory_dir: Path) -> tuple[int | None, str, str]:
    from dzops.cli.app import main

    code = None
    saved = sys.argv
    with CliRunner().isolation(env={"DZOPS_INVENTORY": str(inventory_dir)}) as (out, err, _):
        sys.argv = ["dzops", *argv]
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.argv = saved
        return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.fixture()
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    inventory_dir = copy_sample_inventory(tmp_path / "inventory", 93, tmp_path / "state")
    network = FakeNetwork(sorted(load_inventory(inventory_dir).devices))
    monkeypatch.setattr(wan, "driver_for", network.driver)
    return inventory_dir


@pytest.mark.parametrize("argv", [["--check", "provision-wan", "--all"], ["--check", "--diff", "provision-wan", "--all"]],
                         ids=["check", "check-diff"])
def test_the_hubs_diff_appears_once_naming_every_link(sample: Path, argv: list[str]) -> None:
    code, stdout, stderr = _run(argv, sample)
    assert code in (None, 0), stderr
    links = [link.name for link in load_inventory(sample).wan_links]
    headers = re.findall(r"^--- (\S+) \(links?: ([^)]*)\)$", stdout, re.M)
    by_host = {host: names.split(", ") for host, names in headers}
    assert [host for host, _ in headers].count(HQ) == 1, stdout
    assert by_host[HQ] == links  # every link of the hub, in inventory order
    spokes = {host for host, _ in headers} - {HQ}
    assert len(spokes) == len(links) and all(len(by_host[h]) == 1 for h in spokes)
    # The hub's whole diff is printed once: not once per link any more.
    hub_diff = stdout.split(f"--- {HQ} ")[1].split("\n", 1)[1].split("\n--- ")[0]
    assert hub_diff.count("eth11") and stdout.count(hub_diff) == 1
    assert all(f"to {link.b.host} " in hub_diff for link in load_inventory(sample).wan_links)
