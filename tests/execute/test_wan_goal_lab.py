"""provision-wan's goal on real FRR: from each gewog LAN the HQ servers answer, or the run says where it breaks.

The session's Punakha lab: the first provisioning checked every gewog's goal; a server cut off its
LAN, or a service that stopped listening, fails a re-provisioned link, which is rolled back with
the first hop that fails (or the closed port) named. Everything is put back before each test ends.
The same on the Wangdue sample's three-hop spurs, with a hop in the middle cut, is in
test_wangdue_lab.py.

A failed goal is only reported once the deadline passes, so these runs get a bound long enough
for the link's own checks to pass on a busy machine first: the goal is then what fails.
"""

from __future__ import annotations

import pytest

from dzops.execute.wan import provision_wan
from dzops.plan.wan import goal_checks
from tests.execute.test_wan_lab import running, with_link

pytestmark = pytest.mark.lab

HQ, TALO, SERVER, WEB = "punakha-hq-rtr1", "gewog-talo-rtr1", "punakha-hq-srv1", "punakha-hq-web1"
TALO_LAN = "10.31.9.1"
# seconds: a goal that fails runs to its end, so every second here is waited in full; the link's own
# checks (the change is only its description: OSPF stays Full) pass within a few seconds, even on a
# busy machine
BOUND = 20


def test_the_first_run_checked_every_gewogs_goal(provisioned_lab) -> None:
    inventory = provisioned_lab.handle.inventory()
    goals = goal_checks(inventory)
    assert len(goals) == len([s for s in inventory.sites.values() if s.kind == "gewog"])
    for result in provisioned_lab.wan_results:
        gewog = inventory.wan_link(result.link).b.host
        lan = goals[gewog][0].source
        assert result.verified and result.checks[-1].startswith(f"{gewog} LAN {lan} reaches HQ:"), \
            (result.link, result.checks)
        # every HQ server, each with its declared port
        assert [f"{c.server} {c.target} (ping, tcp/22)" in result.checks[-1] for c in goals[gewog]] == [True, True]


def _reprovision_talo(provisioned_lab, circuit: str, bound: float = BOUND):  # noqa: ANN001, ANN202
    """hq-talo with another circuit id: a real change, so the link is verified (and its goal checked) again."""
    inventory = with_link(provisioned_lab.handle.inventory(), "hq-talo", circuit_id=circuit)
    [result] = provision_wan(inventory, ["hq-talo"], verify_timeout=bound)
    return result


def _link_checks_passed(result) -> None:  # noqa: ANN001
    """The link itself came up (interfaces, OSPF, pings both ways): only the goal failed."""
    assert result.failed_check.startswith(f"{TALO} LAN {TALO_LAN} reaches HQ:"), (result.error, result.checks)
    assert any("OSPF neighbour" in c for c in result.checks)
    assert any(c.endswith(f"ping {TALO} LAN {TALO_LAN}") for c in result.checks), result.checks


def test_a_server_cut_off_its_lan_fails_the_goal_names_it_and_rolls_back(provisioned_lab) -> None:
    lab = provisioned_lab.handle.lab
    before = {n: running(lab, n) for n in (HQ, TALO)}
    inventory = provisioned_lab.handle.inventory()
    address = inventory.devices[SERVER].interfaces["eth0"].address.ip
    web = inventory.devices[WEB].interfaces["eth0"].address.ip
    # Cut at the switch: the server only loses carrier and keeps its routes (its default route
    # would be gone for good if its own interface went down).
    cable = next(c for c in inventory.lan_links if SERVER in (c.a.host, c.b.host))
    switch_end = cable.a if cable.b.host == SERVER else cable.b
    lab.set_link(switch_end.host, switch_end.interface, False)
    try:
        result = _reprovision_talo(provisioned_lab, "BT-PNK-6001")
    finally:
        lab.set_link(switch_end.host, switch_end.interface, True)
    assert (result.status, result.rolled_back, result.verified) == ("rolled_back", True, False), result.error
    _link_checks_passed(result)
    # the WAN hop and HQ's LAN gateway answered: the first that fails is the server itself
    assert (f"{SERVER} {address} does not answer ping from {TALO_LAN}; "
            f"first hop that fails: {SERVER} {address} (server)") in result.error, result.error
    assert f"{WEB} {web} does not answer" not in result.error  # the other server answered
    assert f"{WEB} {web} answers ping but not" not in result.error
    assert {n: running(lab, n) for n in before} == before


def test_a_stopped_service_fails_the_goal_by_its_port(provisioned_lab) -> None:
    lab = provisioned_lab.handle.lab
    before = {n: running(lab, n) for n in (HQ, TALO)}
    web = provisioned_lab.handle.inventory().devices[WEB].interfaces["eth0"].address.ip
    lab.stop_daemon(WEB, "sshd")
    try:
        result = _reprovision_talo(provisioned_lab, "BT-PNK-6002")
    finally:
        lab.start_daemon(WEB, "sshd")
    assert (result.status, result.rolled_back) == ("rolled_back", True), result.error
    _link_checks_passed(result)
    assert f"{WEB} {web} answers ping but not tcp/22 from {TALO_LAN}" in result.error, result.error
    assert "first hop that fails" not in result.error
    assert {n: running(lab, n) for n in before} == before


def test_with_everything_back_the_same_change_verifies_with_its_goal(provisioned_lab) -> None:
    result = _reprovision_talo(provisioned_lab, "BT-PNK-6003", bound=120)
    try:
        assert (result.status, result.verified) == ("changed", True), result.error
        assert result.checks[-1].startswith(f"{TALO} LAN {TALO_LAN} reaches HQ:"), result.checks
    finally:
        # back to the inventory's own circuit id, so the lab matches the inventory for later tests
        [back] = provision_wan(provisioned_lab.handle.inventory(), ["hq-talo"], verify_timeout=120)
        assert back.verified, back.error
