"""provision-ap on Cisco IOS autonomous APs and MikroTik RouterOS APs, through the NAPALM adapter.

The candidate is the AP's whole intended config with its radios, SSIDs and their VLAN bridging owned
by dzops (`dzops.plan.candidates`, part "ap"); the rest (management, accounts) is kept as it runs.
`--check` compares only; otherwise the adapter's transaction applies it (commit-confirm where the
platform has it), verifies that the running config carries every SSID, and confirms or rolls back.

The switch port the AP plugs into becomes a trunk of its SSIDs' VLANs, management VLAN native, as a
hostapd AP's does, through the switch platform's `bridge_ports` capability; an uplink switch whose
platform lacks it refuses the AP before any device is touched. An AP on a router port has no switch
port to set.

What leaves here is scrubbed: an AP candidate carries its SSIDs' keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dzops.exceptions import DeviceError, InventoryError
from dzops.inventory.models import Inventory
from dzops.models import HostResult

if TYPE_CHECKING:
    from dzops.plan.ap import SwitchPort


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


class Uplink:
    """The switch port a vendor AP plugs into, made a trunk of its SSIDs' VLANs (management VLAN native)
    through the same switch-port capability hostapd APs use (`bridge_ports` in dzops.platforms).

    Read before the AP is touched; set and read back before the AP's commit, so a port that does not
    take its VLANs leaves the AP untouched; put back as it was read when the AP's apply fails.
    `info` is the result's `switch_port` entry, in the shape the hostapd path gives it.
    """

    def __init__(self, inventory: Inventory, ap: str, port: SwitchPort, info: dict[str, Any]) -> None:
        self.inventory, self.ap, self.port, self.info = inventory, ap, port, info
        self.intended = {v.vid: v.native for v in port.vlans}
        self.driver: Any = None
        self.commands: list[str] = []
        self.undo: list[str] = []
        self.before = ""  # the port's VLANs as read, in words
        self.sent = False

    def prepare(self) -> None:
        """Open the switch and plan the port's commands; raises DeviceError (nothing changed yet)."""
        from dzops.execute.ap import describe_vlans
        from dzops.execute.drivers import driver_for
        from dzops.execute.drivers.bridge import restore_commands, set_commands
        from dzops.execute.ssh import credentials

        switch = self.inventory.devices[self.port.switch]
        self.driver = driver_for(switch.platform, credentials(self.inventory, switch))
        self.driver.open()
        state = self.driver.port_state(self.port.port)
        if not state.exists:
            raise DeviceError(switch.name, f"no port {self.port.port} (uplink of {self.ap}): AP left untouched")
        if not state.vlan_aware:
            self.info["status"] = "not_applicable"
            self.info["note"] = (f"{switch.name} {self.port.port}: trunk VLANs {','.join(map(str, self.port.vids))} "
                                 f"not applied: {switch.name}'s bridge has no VLANs ({state.detail}; no Open vSwitch); "
                                 f"the port carries every frame untagged")
            return
        self.commands = set_commands(self.port.port, state, self.intended)
        self.undo = restore_commands(self.port.port, state, self.intended)
        self.info["status"] = "changed" if self.commands else "ok"
        self.before = describe_vlans(state)

    def diff_lines(self) -> tuple[str, ...]:
        from dzops.execute.ap import describe_vlans

        if not self.commands:
            return ()
        head = f"{self.port.switch} {self.port.port}: {self.before} -> {describe_vlans(self.intended)}"
        return (head, *(f" {command}" for command in self.commands))

    def apply(self) -> None:
        """Set the port and read it back; a port that does not carry its VLANs is put back (DeviceError)."""
        from dzops.execute.ap import describe_vlans

        if not self.commands:
            return
        self.sent = True
        self.driver.apply_bridge_commands(self.commands)
        if not self.driver.port_state(self.port.port).carries(self.intended):
            self.restore()
            raise DeviceError(self.port.switch, f"{self.port.port} does not carry {describe_vlans(self.intended)} "
                                                f"after the change: port put back, AP left untouched")
        self.info["checks"] = [f"{self.port.switch} {self.port.port} {describe_vlans(self.intended)}"]

    def restore(self) -> None:
        if self.sent:
            self.driver.apply_bridge_commands(self.undo)
            self.info["status"], self.sent = "restored", False

    def close(self) -> None:
        if self.driver is not None:
            self.driver.close()


def _put_back(uplink: Uplink | None) -> str | None:
    """Put the uplink port back after the AP's apply failed; what went wrong doing so, if anything."""
    if uplink is None:
        return None
    try:
        uplink.restore()
    except DeviceError as exc:
        uplink.info["status"] = "failed"
        return f"uplink switch port NOT put back: {exc}"
    return None


def _uplink_info(device: Any, port: SwitchPort | None) -> dict[str, Any]:
    from dzops.execute.ap import _router_uplink

    if port is None:
        return _router_uplink(device)
    return {"switch": port.switch, "port": port.port, "vlans": port.vids,
            "native_vlan": next((v.vid for v in port.vlans if v.native), None), "status": "pending", "note": None}


def provision_vendor_ap(inventory: Inventory, host: str, *, check: bool = False, revert_in: int = 300) -> HostResult:
    """One vendor AP brought to its intended radios and SSIDs, and its uplink switch port to their VLANs."""
    from dzops.execute.drivers.base import ConfigDiff
    from dzops.execute.napalm_apply import apply_on_device
    from dzops.plan.ap import ap_bsses, switch_port
    from dzops.plan.candidates import CANDIDATE_PLATFORMS, candidate
    from dzops.platforms import refusal

    device = inventory.devices[host]
    refused = refusal(device.platform, "config_replace", host=host)
    if refused is None and device.platform not in CANDIDATE_PLATFORMS:
        refused = f"{host}: platform {device.platform} has no AP templates: refused before connecting"
    if refused:
        return HostResult(host=host, status="failed", error=refused)
    try:
        bsses = ap_bsses(inventory, device)
        port = switch_port(inventory, device)
    except InventoryError as exc:
        return HostResult(host=host, status="failed", error="; ".join(p.message for p in exc.problems))
    if port is not None:
        refused = refusal(port.platform, "bridge_ports", host=port.switch)
        if refused:
            return HostResult(host=host, status="failed", error=f"{host}: uplink {refused}")
    ssids = [bss.ssid for bss in bsses]
    # The same shape as the hostapd path's data, which the CLI prints.
    result = HostResult(host=host, data={"platform": device.platform, "ssids": [
        {"profile": b.profile, "ssid": b.ssid, "vlan": b.vlan, "security": b.security} for b in bsses],
        "switch_port": _uplink_info(device, port)})
    uplink = Uplink(inventory, host, port, result.data["switch_port"]) if port is not None else None

    def work(driver: Any) -> ConfigDiff:
        intended = candidate(inventory, device, driver.get_config(), parts=["ap"])
        try:
            if uplink is not None:
                uplink.prepare()
            port_lines = uplink.diff_lines() if uplink is not None else ()
            if check:
                diff = driver.compare_config(intended)
                return ConfigDiff(add=diff.add + port_lines, remove=diff.remove)

            def verify() -> str | None:
                missing = ssids_missing(driver.get_config(), ssids, device.platform)
                return f"SSID(s) not on the device: {', '.join(missing)}" if missing else None

            if uplink is not None:
                uplink.apply()
            try:
                outcome = driver.apply(intended, verify=verify, revert_in=revert_in)
            except DeviceError as exc:
                left = _put_back(uplink)
                if left:  # the AP's error stays the result's, with the port that could not be put back
                    raise type(exc)(exc.host, f"{str(exc).removeprefix(exc.host + ': ')}; {left}") from exc
                raise
            if outcome.rolled_back:
                result.status, result.error = "failed", f"{host}: {outcome.reason}: rolled back"
                left = _put_back(uplink)
                if left:
                    result.error += f"; {left}"
            return ConfigDiff(add=outcome.diff.add + port_lines, remove=outcome.diff.remove)
        finally:
            if uplink is not None:
                uplink.close()

    return apply_on_device(inventory, host, result, work)


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
