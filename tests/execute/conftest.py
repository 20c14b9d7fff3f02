"""A second lab for this package: samples/wangdue from factory state, provisioned by dzops, for every
test on the Wangdue tree (test_wangdue_lab's main cycle, test_routing_lab's failover of the
dual-homed gewog). One build serves both: a Wangdue lab costs as much to build and converge as the
tests on it.

Lab names: `<DZOPS_TEST_LAB_PREFIX>m`, management 10.<DZOPS_TEST_LAB_OCTET_WANGDUE_CYCLE>.0.0/24
(else the session octet + 64, modulo 256), so it never meets the session's lab nor
test_remediate_lab's (`<prefix>c`, octet + 100). Package-scoped: removed, with the same leftover
check as the session's lab, once the tests of tests/execute are done (before tests/lab's stand-in
lab, `<prefix>s`, takes the same octet).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.labkit import WANGDUE, LabHandle, module_lab_names, sample_lab


@dataclass
class Cycle:
    handle: LabHandle
    root: Path
    wan: list[Any] = field(default_factory=list)  # LinkResults of the first provision-wan --all
    ap: list[Any] = field(default_factory=list)  # HostResults of the first provision-ap --all
    done: dict[str, Any] = field(default_factory=dict)  # later steps' outputs, for the steps after them

    def dzops(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dzops", *args], env=self.handle.env(), capture_output=True,
                              text=True, timeout=timeout)


def _operations_outside_the_lab(inventory_dir: Path, root: Path) -> None:
    """Backups and reports in the fixture's temp dir: the lab's state dir must be empty after teardown."""
    path = inventory_dir / "group_vars/all/operations.yml"
    text = re.sub(r"(?m)^backup_repository: .*$", f"backup_repository: {root / 'config-backups'}", path.read_text())
    path.write_text(re.sub(r"(?m)^report_dir: .*$", f"report_dir: {root / 'reports'}", text))


@pytest.fixture(scope="package")
def wangdue_cycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cycle]:
    """The Wangdue lab after `provision-wan --all` (subnets written back) and `provision-ap --all`."""
    if os.geteuid() != 0:
        pytest.fail("lab tests build network namespaces and need root")
    from dzops.execute.ap import provision_ap
    from dzops.execute.wan import provision_wan
    from dzops.inventory.edit import write_wan_subnets
    from dzops.plan.ap import access_points_in_scope
    from dzops.plan.wan import links_in_scope

    prefix, octet = module_lab_names("m", "DZOPS_TEST_LAB_OCTET_WANGDUE_CYCLE", 64)
    root = tmp_path_factory.mktemp("wangdue-cycle")
    with sample_lab(root, WANGDUE, prefix, octet) as handle:
        _operations_outside_the_lab(handle.inventory_dir, root)
        state = Cycle(handle=handle, root=root)
        inventory = handle.inventory()
        state.wan = provision_wan(inventory, links_in_scope(inventory), verify_timeout=150)
        write_wan_subnets(handle.inventory_dir, {r.link: r.subnet for r in state.wan if r.verified and r.subnet})
        inventory = handle.inventory()
        state.ap = provision_ap(inventory, access_points_in_scope(inventory), verify_timeout=120)
        yield state
