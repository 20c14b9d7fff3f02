"""A router that rejects one line mid-apply (real FRR, real frr-reload) ends exactly as it was, and says so."""

from __future__ import annotations

import dataclasses

import pytest

from dzops.execute import wan
from dzops.execute.drivers.frr import config_pairs
from tests.execute.test_wan_lab import HQ, running, with_link

pytestmark = pytest.mark.lab

TALO = "gewog-talo-rtr1"
# ospfd refuses `network` under `router ospf` while interfaces carry `ip ospf area`: vtysh's parser
# accepts it, so frr-reload's --test passes, and --reload applies the lines before it, then goes on.
REJECTED = " network 10.30.254.0/24 area 0"


def with_rejected_line(candidate: str) -> str:
    lines = candidate.splitlines()
    at = lines.index("router ospf") + 1
    return "\n".join(lines[:at] + [REJECTED] + lines[at:]) + "\n"


def test_a_line_frr_rejects_mid_apply_leaves_the_router_as_before(provisioned_lab, monkeypatch):
    lab = provisioned_lab.handle.lab
    inventory = with_link(provisioned_lab.handle.inventory(), "hq-talo", circuit_id="BT-PNK-6666")
    before = {n: running(lab, n) for n in (HQ, TALO)}
    real_plan = wan.plan_wan
    injected = []

    def plan_with_a_rejected_line(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        if injected:  # only the apply: the undo plan stays what dzops renders
            return plan
        injected.append(TALO)
        return dataclasses.replace(plan, candidates={**plan.candidates,
                                                     TALO: with_rejected_line(plan.candidates[TALO])})

    monkeypatch.setattr(wan, "plan_wan", plan_with_a_rejected_line)
    [result] = wan.provision_wan(inventory, ["hq-talo"], verify_timeout=8)

    assert injected == [TALO]
    assert (result.status, result.rolled_back, result.verified, result.changed) == ("rolled_back", True, False, False)
    talo = result.hosts[TALO]
    assert talo.status == "rolled_back" and "frr-reload" in (talo.error or "")
    assert "description WAN BT-PNK-6666" in talo.diff  # the apply really went out with the new description
    assert result.hosts[HQ].status == "rolled_back"
    after = {n: running(lab, n) for n in (HQ, TALO)}
    assert {n: config_pairs(t) for n, t in after.items()} == {n: config_pairs(t) for n, t in before.items()}
    assert after == before  # byte for byte, too
