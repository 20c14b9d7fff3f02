"""Session-wide fixtures: ONE virtual lab of the sample inventory for every lab-marked test.

The lab starts in factory state. `provisioned_lab` provisions it once (WAN links, then access
points) and keeps the first run's results, so tests assert on what provisioning did without
provisioning again. Tests that inject faults put things back before they end.

Set DZOPS_TEST_LAB_PREFIX / DZOPS_TEST_LAB_OCTET to run two test sessions side by side.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.labkit import SAMPLE, LabHandle, sample_lab


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs root and shares the session's virtual lab")
    # The inventory load cache and other private state of the commands under test stay in the
    # session's own folder (subprocesses inherit it), never in the officer's ~/.local/state/dzops.
    if "DZOPS_STATE_DIR" not in os.environ:
        os.environ["DZOPS_STATE_DIR"] = tempfile.mkdtemp(prefix="dzops-test-state-")
        config.add_cleanup(lambda: shutil.rmtree(os.environ.pop("DZOPS_STATE_DIR"), ignore_errors=True))


@pytest.fixture(scope="session")
def punakha_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHandle]:
    if os.geteuid() != 0:
        pytest.fail("lab tests build network namespaces and need root (run ./scripts/test.sh as root)")
    prefix = os.environ.get("DZOPS_TEST_LAB_PREFIX", "dzt")
    octet = int(os.environ.get("DZOPS_TEST_LAB_OCTET", "99"))
    # Every session proves teardown (skipped only when up() itself failed: that error comes first).
    with sample_lab(tmp_path_factory.mktemp("punakha-lab"), SAMPLE, prefix, octet) as handle:
        yield handle


@dataclass
class Provisioned:
    handle: LabHandle
    wan_results: list[Any] = field(default_factory=list)  # LinkResult of the first provision-wan --all
    extra: dict[str, Any] = field(default_factory=dict)  # other capabilities' first-run results


@pytest.fixture(scope="session")
def provisioned_lab(punakha_lab: LabHandle) -> Provisioned:
    """The lab after `provision-wan --all` from factory state (run once per session)."""
    from dzops.execute.wan import provision_wan
    from dzops.inventory.edit import write_wan_subnets
    from dzops.plan.wan import links_in_scope

    inventory = punakha_lab.inventory()
    results = provision_wan(inventory, links_in_scope(inventory), verify_timeout=120)
    write_wan_subnets(punakha_lab.inventory_dir, {r.link: r.subnet for r in results if r.verified and r.subnet})
    provisioned = Provisioned(handle=punakha_lab, wan_results=results)
    # Access points after the WAN: `extra["ap"]` holds the first provision-ap --all's HostResults.
    from dzops.execute.ap import provision_ap
    from dzops.plan.ap import access_points_in_scope

    inventory = punakha_lab.inventory()
    provisioned.extra["ap"] = provision_ap(inventory, access_points_in_scope(inventory), verify_timeout=120)
    return provisioned
