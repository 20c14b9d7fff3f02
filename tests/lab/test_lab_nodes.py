"""Pure parts of the node builder: per-kind files, the confinement argv and process records (no lab)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dzops.exceptions import LabError
from dzops.lab import netns, routers
from dzops.lab.spec import LabInterface, LabNode

STOCK_DAEMONS = """\
# comment=yes stays
bgpd=no
ospfd=no
ospf6d=no
staticd=no
vtysh_enable=yes
zebra_options="  -A 127.0.0.1 -s 90000000"
"""


def _node(kind: str, *interfaces: LabInterface) -> LabNode:
    return LabNode(name=f"t-{kind}", kind=kind, mgmt_address="10.9.0.5/24", login_user="admin",  # type: ignore[arg-type]
                   login_password="not-used", interfaces=interfaces)


@pytest.mark.parametrize(("kind", "on"), [
    ("router", {"ospfd", "staticd"}),  # zebra has no yes/no line in Debian's file: always started
    ("switch", set()),
    ("ap", set()),
])
def test_frr_daemons_file_switches_on_exactly_the_nodes_daemons(kind: str, on: set[str]) -> None:
    lines = routers.frr_daemons_file(_node(kind), STOCK_DAEMONS).splitlines()
    assert {line.split("=")[0] for line in lines if line.endswith("=yes")} == on | {"vtysh_enable"}
    assert "# comment=yes stays" in lines and 'zebra_options="  -A 127.0.0.1 -s 90000000"' in lines


def test_sshd_dropin_listens_on_the_management_address_only() -> None:
    text = routers.sshd_dropin(_node("router"))
    assert "ListenAddress 10.9.0.5\n" in text and "PermitRootLogin no\n" in text
    assert "ForceCommand" not in text  # routers give a normal shell: no lab-only wrapper


@pytest.mark.parametrize(("kind", "listens"), [
    ("server", ["10.9.0.5", "192.168.1.2"]),  # its services face its LAN too: the gewogs reach them there
    ("router", ["10.9.0.5"]),  # routers' LAN addresses come from frr.conf; dzops reaches them over management
])
def test_sshd_dropin_listen_addresses(kind: str, listens: list[str]) -> None:
    text = routers.sshd_dropin(_node(kind, LabInterface("eth0", ("192.168.1.2/24",)), LabInterface("eth1")))
    assert [line.split()[1] for line in text.splitlines() if line.startswith("ListenAddress ")] == listens


@pytest.mark.parametrize(("kind", "expected"), [
    ("server", ["eth0", "192.168.1.2/24", "eth1", "-"]),
    ("router", ["eth0", "-", "eth1", "-"]),  # routers get their addresses from frr.conf
])
def test_setup_pairs(kind: str, expected: list[str]) -> None:
    node = _node(kind, LabInterface("eth0", ("192.168.1.2/24",)), LabInterface("eth1"))
    assert routers.setup_pairs(node) == expected


@pytest.mark.parametrize(("keep", "dropped_sys_admin"), [((), True), (("sys_admin",), False)])
def test_confined_argv_drops_machine_wide_capabilities(keep: tuple[str, ...], dropped_sys_admin: bool) -> None:
    argv = netns.confined_argv(["/usr/sbin/sshd"], keep)
    bounding = argv[argv.index("--bounding-set") + 1].split(",")
    assert {"-mknod", "-sys_module", "-sys_rawio", "-sys_ptrace"} <= set(bounding)
    assert ("-sys_admin" in bounding) is dropped_sys_admin
    assert argv[-1] == "/usr/sbin/sshd" and "env" in argv[argv.index("--") + 1]


def test_process_records_need_the_same_pid_start_time_and_boot() -> None:
    record = netns.proc_record(os.getpid())
    assert record["start"] == netns.start_time(os.getpid()) and record["boot"] == netns.boot_id()
    assert netns.record_matches(record) and netns.checked_pid(record, "me") == os.getpid()
    for stale in ({**record, "start": record["start"] - 1}, {**record, "boot": "x"}, {**record, "pid": 0}, None):
        assert not netns.record_matches(stale)
        with pytest.raises(LabError, match="refusing to signal or enter it"):
            netns.checked_pid(stale, "me")


def test_start_time_reads_field_22_after_a_command_name_with_spaces(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fields = " ".join(str(n) for n in range(3, 53)).replace("3 ", "S ", 1)  # field 3 is the state
    stat = tmp_path / "stat"
    stat.write_text(f"4242 (evil ) (name) {fields}\n")
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: real(stat if str(self) == "/proc/4242/stat"
                                                                        else self, *a, **k))
    assert netns.start_time(4242) == 22
