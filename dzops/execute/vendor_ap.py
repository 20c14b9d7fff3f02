"""provision-ap on Cisco IOS autonomous APs and MikroTik RouterOS APs, through the NAPALM adapter.

The candidate is the AP's whole intended config with its radios, SSIDs and their VLAN bridging owned
by dzops (`dzops.plan.candidates`, part "ap"); the rest (management, accounts) is kept as it runs.
`--check` compares only; otherwise the adapter's transaction applies it (commit-confirm where the
platform has it), verifies that the running config carries every SSID, and confirms or rolls back.

What leaves here is scrubbed: an AP candidate carries its SSIDs' keys.
"""

from __future__ import annotations

from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError, InventoryError
from dzops.inventory.models import Inventory
from dzops.models import HostResult


def ssids_missing(running: str, ssids: list[str], platform: str) -> list[str]:
    """The SSIDs the running config does not carry (IOS `dot11 ssid NAME`, RouterOS `ssid="NAME"`).

    >>> ssids_missing("dot11 ssid Punakha-Staff\\n vlan 10\\n", ["Punakha-Staff", "Guest"], "ios")
    ['Guest']
    >>> ssids_missing('/interface wireless set [ find default-name=wlan1 ] ssid="Guest"', ["Guest"], "routeros")
    []
    """
    if platform == "ios":
        shown = {line[len("dot11 ssid "):].strip() for line in running.splitlines() if line.startswith("dot11 ssid ")}
        return [ssid for ssid in ssids if ssid not in shown]
    return [ssid for ssid in ssids if f'ssid="{ssid}"' not in running and f"ssid={ssid} " not in running + " "]


def provision_vendor_ap(inventory: Inventory, host: str, *, check: bool = False, revert_in: int = 300) -> HostResult:
    """One vendor AP brought to its intended radios and SSIDs; the result says what happened."""
    from dzops.execute.drivers import driver_for
    from dzops.execute.ssh import credentials
    from dzops.plan.ap import ap_bsses
    from dzops.plan.candidates import CANDIDATE_PLATFORMS, candidate
    from dzops.platforms import refusal
    from dzops.scrub import scrub_secrets, syntax_for

    device = inventory.devices[host]
    refused = refusal(device.platform, "config_replace", host=host)
    if refused is None and device.platform not in CANDIDATE_PLATFORMS:
        refused = f"{host}: platform {device.platform} has no AP templates: refused before connecting"
    if refused:
        return HostResult(host=host, status="failed", error=refused)
    try:
        bsses = ap_bsses(inventory, device)
    except InventoryError as exc:
        return HostResult(host=host, status="failed", error="; ".join(p.message for p in exc.problems))
    ssids = [bss.ssid for bss in bsses]
    # The same shape as the hostapd path's data, which the CLI prints.
    result = HostResult(host=host, data={"platform": device.platform, "ssids": [
        {"profile": b.profile, "ssid": b.ssid, "vlan": b.vlan, "security": b.security} for b in bsses]})
    driver: Any = driver_for(device.platform, credentials(inventory, device))
    try:
        driver.open()
    except DeviceError as exc:
        return HostResult(host=host, status="unreachable" if isinstance(exc, ConnectionFailed) else "failed",
                          error=str(exc))
    try:
        intended = candidate(inventory, device, driver.get_config(), parts=["ap"])
        if check:
            diff = driver.compare_config(intended)
        else:
            def verify() -> str | None:
                missing = ssids_missing(driver.get_config(), ssids, device.platform)
                return f"SSID(s) not on the device: {', '.join(missing)}" if missing else None

            outcome = driver.apply(intended, verify=verify, revert_in=revert_in)
            diff = outcome.diff
            if outcome.rolled_back:
                result.status, result.error = "failed", f"{host}: {outcome.reason}: rolled back"
        result.diff = scrub_secrets(diff.text(), syntax_for(device.platform))
        result.changed = not diff.empty and result.status == "ok"
        if result.changed:
            result.status = "changed"
    except DeviceError as exc:
        result.status, result.error = ("unreachable" if isinstance(exc, ConnectionFailed) else "failed"), str(exc)
    finally:
        driver.close()
    return result


def provision_aps(inventory: Inventory, scope: list[str], *, check: bool = False, verify_timeout: float = 60.0,
                  progress: Any = None) -> list[HostResult]:
    """provision-ap over every AP in scope: IOS and RouterOS APs here, the others (hostapd) by dzops.execute.ap.

    One HostResult per AP, in scope order.
    """
    from dzops.execute.ap import provision_ap
    from dzops.execute.ssh import fan_out
    from dzops.platforms import PLATFORMS

    report = progress or (lambda _subject, _message: None)
    vendor = [h for h in scope if PLATFORMS[inventory.devices[h].platform].napalm_driver is not None]
    others = [h for h in scope if h not in vendor]
    results = {r.host: r for r in (provision_ap(inventory, others, check=check, verify_timeout=verify_timeout,
                                                progress=progress) if others else [])}
    # The revert timer covers verification and the rollback behind it, in whole minutes.
    revert_in = max(120, -(-int(verify_timeout + 120) // 60) * 60)

    def one(host: str) -> HostResult:
        result = provision_vendor_ap(inventory, host, check=check, revert_in=revert_in)
        report(host, result.status if not result.error else f"{result.status}: {result.error}")
        return result

    results.update({r.host: r for r in fan_out(one, vendor)})
    return [results[h] for h in scope]
