"""Helpers for tests that need the virtual lab of the sample inventory.

Only the management network lives in the root namespace, so a test lab differs from a demo lab
(or another developer's lab) by its prefix and its management /24; everything else stays as in
the shipped sample.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "inventory"  # Punakha: one hub, eleven spokes
WANGDUE = ROOT / "samples" / "wangdue"  # a two-level hub, a dual-homed gewog, three-hop thin spurs
SAMPLE_MGMT = "10.30.0."


def smtp_port(mgmt_octet: int) -> int:
    """Loopback is shared by every lab: each test lab's SMTP server gets a port of its own."""
    return 20000 + mgmt_octet


def sample_paths(sample: Path) -> tuple[str, str]:
    """A sample's management network as a text prefix ("10.30.0.") and its state directory.

    Read from the sample itself (group_vars/all), so any sample with a /24 management network
    and its state under one directory can be copied.

    >>> sample_paths(SAMPLE), sample_paths(WANGDUE)
    (('10.30.0.', '/var/lib/dzops/punakha'), ('10.60.0.', '/var/lib/dzops/wangdue'))
    """
    import yaml

    pools = yaml.safe_load((sample / "group_vars/all/dzongkhag.yml").read_text())["address_pools"]
    network = str(pools["management"]).split("/")[0]
    known_hosts = yaml.safe_load((sample / "group_vars/all/connection.yml").read_text())["dzops_known_hosts"]
    return network.rsplit(".", 1)[0] + ".", str(Path(known_hosts).parent)


def copy_sample_inventory(dest: Path, mgmt_octet: int, state_dir: Path, sample: Path = SAMPLE) -> Path:
    """A private copy of a sample whose management network is 10.<mgmt_octet>.0.0/24 and whose state is state_dir."""
    mgmt_was, state_was = sample_paths(sample)
    shutil.copytree(sample, dest)
    mgmt = f"10.{mgmt_octet}.0."
    for path in list(dest.glob("host_vars/*.yml")) + [dest / "group_vars/all/dzongkhag.yml"]:
        path.write_text(path.read_text().replace(mgmt_was, mgmt))
    connection = dest / "group_vars/all/connection.yml"
    connection.write_text(connection.read_text().replace(f"{state_was}/known_hosts", str(state_dir / "known_hosts")))
    operations = dest / "group_vars/all/operations.yml"
    operations.write_text(operations.read_text().replace(state_was, str(state_dir))
                          .replace("smtp_port: 8025", f"smtp_port: {smtp_port(mgmt_octet)}"))
    return dest


def module_lab_names(suffix: str, octet_variable: str, offset: int,
                     environ: Mapping[str, str] = os.environ) -> tuple[str, int]:
    """Prefix and management octet of a module's own lab, beside the session's (whose names it extends).

    The octet is `octet_variable` if set, else the session's octet plus `offset` (modulo 256), so
    the session's lab and every module's lab can be up at once without meeting. The session's
    prefix is cut so the whole stays within a lab prefix's six characters.

    >>> module_lab_names("m", "OCTET_CYCLE", 64, {"DZOPS_TEST_LAB_PREFIX": "h16", "DZOPS_TEST_LAB_OCTET": "61"})
    ('h16m', 125)
    >>> module_lab_names("w", "OCTET_W", 128, {"OCTET_W": "62", "DZOPS_TEST_LAB_PREFIX": "abcdef"})
    ('abcdew', 62)
    """
    prefix = environ.get("DZOPS_TEST_LAB_PREFIX", "dzt")[:6 - len(suffix)] + suffix
    octet = environ.get(octet_variable) or (int(environ.get("DZOPS_TEST_LAB_OCTET", "99")) + offset) % 256
    return prefix, int(octet)


@contextmanager
def sample_lab(root: Path, sample: Path, prefix: str, octet: int, *, configured: bool = False) -> Iterator[LabHandle]:
    """A lab of a sample under `root`, up while the block runs, then down with its teardown proven.

    The same checks as the session lab's fixture: what is left after `down()` (namespaces, links,
    mounts, processes, files) fails the block.
    """
    from dzops.inventory.loader import load_inventory
    from dzops.lab.builder import Lab
    from dzops.lab.from_inventory import spec_from_inventory

    state_root = root / "state"
    inventory_dir = copy_sample_inventory(root / "inventory", octet, state_root / prefix, sample)
    kwargs = {"configured": True} if configured else {}
    lab = Lab(spec_from_inventory(load_inventory(inventory_dir), prefix, state_root=state_root, **kwargs))
    try:
        status = lab.up()
        assert status.healthy, [n.name for n in status.nodes if not n.healthy]
        yield LabHandle(lab=lab, inventory_dir=inventory_dir, state_dir=state_root / prefix)
    finally:
        pids = lab_pids(prefix, state_root / prefix)
        lab.down()
    leftovers = lab_leftovers(prefix, state_root / prefix, pids)
    if leftovers:
        raise AssertionError(f"lab '{prefix}' teardown left: " + "; ".join(leftovers))


@dataclass
class LabHandle:
    lab: Any  # dzops.lab.builder.Lab
    inventory_dir: Path
    state_dir: Path

    def inventory(self) -> Any:
        from dzops.inventory.loader import load_inventory

        return load_inventory(self.inventory_dir)

    def env(self) -> dict[str, str]:
        """Environment for running `dzops` against this lab in a subprocess."""
        return {**os.environ, "DZOPS_INVENTORY": str(self.inventory_dir), "DZOPS_LAB_PREFIX": self.lab.spec.prefix,
                "DZOPS_LAB_STATE": str(self.state_dir.parent)}


def lab_pids(prefix: str, state_dir: Path) -> set[int]:
    """Every process of a running lab: recorded in its state file or inside one of its namespaces.

    Taken before teardown, so `lab_leftovers` can prove each one gone (a process can outlive the
    deletion of its network namespace, and then nothing else names it).
    """
    import json
    import subprocess

    pids: set[int] = set()
    try:
        state = json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    # Daemon PIDs in the state file are those of each node's own PID namespace: the netns scan
    # below finds them as the machine numbers them.
    for node in state.get("nodes", {}).values():
        pids.add(node.get("holder_pid") or 0)
    pids.update(record.get("pid", 0) for record in state.get("services", {}).values())
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for ns in (n for n in listed if n.startswith(f"{prefix}-")):
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        pids.update(int(tok) for tok in out.split() if tok.isdigit())
    pids.discard(0)
    # PIDs wrap (pid_max 32768) and other labs keep starting processes: remember each one's start
    # time, so a number reused after teardown is not taken for this lab's survivor.
    _STARTS.update({pid: _start_time(pid) for pid in pids})
    return pids


_STARTS: dict[int, str | None] = {}


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if pid in _STARTS and _STARTS[pid] != stat.rsplit(")", 1)[1].split()[19]:
        return False  # the number now belongs to a process started after the lab's was recorded
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def lab_leftovers(prefix: str, state_dir: Path, pids: set[int] | frozenset[int] = frozenset()) -> list[str]:
    """What remains of a lab after `down()`: namespaces, root links, mounts, processes, files.

    Checked independently of dzops.lab (no use of its helpers): this is the proof that teardown works.
    """
    import subprocess

    mine = f"{prefix}-"
    found = [f"netns {n}" for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                   text=True).stdout.split() if n.startswith(mine)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name.startswith(mine):
            found.append(f"root link {name}")
    where = str(state_dir)
    for line in Path("/proc/mounts").read_text().splitlines():
        source, target = line.split()[:2]
        if where in source.replace("\\040", " ") or where in target.replace("\\040", " "):
            found.append(f"mount {target}")
    found += [f"process {pid} (recorded before teardown)" for pid in sorted(pids) if _alive(pid)]
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            places = [os.readlink(proc / "cwd"), os.readlink(proc / "root")]
        except OSError:
            continue  # exited meanwhile, or a kernel thread
        if any(p == where or p.startswith(where + "/") for p in places) or where in cmdline:
            if _alive(int(proc.name)):
                found.append(f"process {proc.name}: {cmdline.strip()[:120]}")
    # The sample keeps the Dzongkhag's own state beside the lab's: the database of health history
    # and run ledger that the tests' dzops runs wrote there is the officer's, not the lab's.
    files = sorted(p.name for p in state_dir.iterdir() if not p.name.startswith("dzops.sqlite")) \
        if state_dir.exists() else []
    if files:
        found.append(f"files under {state_dir}: {files}")
    return found
