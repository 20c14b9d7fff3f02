"""`--limit` selects what it selects for Ansible: every pattern is checked against ansible-core's own
`ansible all --list-hosts --limit` on the sample inventory; typos are usage errors, never 'no host'."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dzops.exceptions import UsageError
from dzops.inventory.limit import select_hosts

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
ANSIBLE = Path(sys.executable).parent / "ansible"


@pytest.fixture(scope="module")
def inventory():  # type: ignore[no-untyped-def]
    from dzops.inventory.loader import load_inventory

    return load_inventory(SAMPLE)


def ansible_cli_selects(limit: str) -> set[str]:
    proc = subprocess.run([str(ANSIBLE), "all", "-i", str(SAMPLE / "hosts.yml"), "--list-hosts", "--limit", limit],
                          capture_output=True, text=True, check=True, timeout=60)
    return {line.strip() for line in proc.stdout.splitlines()[1:] if line.strip()}


def ansible_selects(limit: str) -> set[str]:
    """What `ansible all --list-hosts --limit LIMIT` does, in-process (an `ansible` process per pattern
    cost seconds each): ansible-core parses hosts.yml itself, nothing of dzops' loaded inventory, then
    `subset` and `list_hosts` as its ad-hoc CLI calls them. `test_the_oracle_is_ansibles_command_line`
    holds it to the real command."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=[str(SAMPLE / "hosts.yml")])
    manager.subset(limit)
    return {host.name for host in manager.list_hosts("all")}


LIMIT_FILE = "@{limit_file}"

PATTERNS = [
    ("a host", "gewog-talo-rtr1"),
    ("a group", "access_points"),
    ("comma list", "gewog-talo-rtr1,punakha-hq-srv1"),
    ("colon list", "servers:access_points"),
    ("intersection", "routers:&site_talo"),
    ("exclusion", "routers:!site_hq"),
    ("only exclusion", "!site_hq"),
    ("glob", "gewog-t*-ap1"),
    ("regex", "~gewog-(talo|guma)-.*"),
    ("subscript range", "routers[0:2]"),
    ("single subscript", "switches[-1]"),
    ("glob and exclusion", "gewog-*,!*-ap1"),
    ("limit file", LIMIT_FILE),
]


@pytest.mark.parametrize(("limit",), [(p,) for _, p in PATTERNS], ids=[name for name, _ in PATTERNS])
def test_limit_selects_what_ansible_selects(inventory, tmp_path: Path, limit: str) -> None:  # type: ignore[no-untyped-def]
    limit_file = tmp_path / "hosts.txt"
    limit_file.write_text("gewog-guma-sw1\nsite_talo\n")
    limit = limit.format(limit_file=limit_file)
    ours = select_hosts(inventory, limit)
    assert set(ours) == ansible_selects(limit)
    assert ours == [h for h in inventory.devices if h in set(ours)]  # inventory order, no duplicates
    assert ours  # every pattern above selects something: an empty answer would hide a bug


@pytest.mark.parametrize("limit", ["routers[0:2]", LIMIT_FILE, "gewog-*,!*-ap1"])
def test_the_oracle_is_ansibles_command_line(tmp_path: Path, limit: str) -> None:
    limit_file = tmp_path / "hosts.txt"
    limit_file.write_text("gewog-guma-sw1\nsite_talo\n")
    limit = limit.format(limit_file=limit_file)
    assert ansible_selects(limit) == ansible_cli_selects(limit) != set()


@pytest.mark.parametrize(("limit", "message"), [
    ("gewog-tallo-rtr1", "no host or group matches 'gewog-tallo-rtr1'"),
    ("routers,!site_nowhere", "no host or group matches '!site_nowhere'"),
    ("routers:&site_atlantis", "no host or group matches '&site_atlantis'"),
    ("routers[40]", "No hosts matched the subscripted pattern 'routers[40]'"),
    ("@/nonexistent/limit-file", "Unable to find limit file"),
    ("routers:&servers", "leaves no host to run on"),
    ("localhost", "no host or group matches 'localhost'"),
], ids=["typo", "excluded-typo", "intersected-typo", "subscript-past-end", "missing-file", "empty-intersection",
        "implicit-localhost"])
def test_limit_mistakes_are_usage_errors(inventory, limit: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError) as raised:
        select_hosts(inventory, limit)
    assert message in str(raised.value)


def test_no_limit_is_every_host(inventory) -> None:  # type: ignore[no-untyped-def]
    assert select_hosts(inventory, None) == list(inventory.devices)
