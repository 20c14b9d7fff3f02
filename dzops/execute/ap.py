"""provision-ap on devices: preflight every AP and uplink switch, apply, verify by reading back, restore on failure.

Per AP, in order:
1. preflight (all APs in parallel, before anything changes): the AP answers, has its radio
   interfaces; its uplink switch answers and has the port. Any failure: that AP is left untouched
   (neither its files nor its switch port), with a one-line error.
2. the AP's current files, bridge membership and hostapd state are saved (they are the read-back);
   nothing differs from the intent -> nothing is written and hostapd is not restarted;
3. apply: write the files, make each SSID interface an access port of its VLAN on the AP's br0 and
   the AP's uplink a trunk of the SSIDs' VLANs, restart hostapd (start = hostapd's own
   validation); the switch port facing the AP gets exactly the same trunk VLANs;
4. verify: `hostapd_cli status|get_config` shows each SSID ENABLED with the intended SSID and key
   management; the bridge ports read back (ovs-vsctl or `bridge vlan`) carry exactly their VLANs,
   on the AP and on the switch port;
5. a refused start or failed verify restores the saved files and bridge ports, restarts hostapd as
   it was (or leaves it stopped, as on a factory AP), and restores the switch port's VLANs.

Bridges are Open vSwitch or VLAN-aware Linux bridges, detected on each device
(`dzops.execute.drivers.bridge`). A switch whose bridge has no VLANs at all (a kernel without VLAN
filtering and no OVS) cannot hold the trunk: that step is reported as not applicable, with a note,
and the rendered trunk is in the diff. An AP whose bridge has no VLANs cannot keep its SSIDs'
VLANs apart: it is left untouched, with a one-line error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError, InventoryError
from dzops.execute.drivers import driver_for
from dzops.execute.ssh import Progress, credentials, fan_out
from dzops.inventory.models import Device, Inventory
from dzops.models import HostResult
from dzops.plan.ap import (
    DAEMON_DEFAULTS,
    VENDOR_AP_PLATFORMS,
    Bss,
    SwitchPort,
    ap_bsses,
    ap_port_vlans,
    file_diff,
    intended_ap_files,
    mask_secrets,
    radio_interfaces,
    switch_port,
)

log = logging.getLogger(__name__)

LINUX_SWITCH_PLATFORMS = ("cumulus",)



def file_mode(path: str) -> int:
    """SSID files hold the PSK: root only. The daemon defaults file is world-readable as on Debian.

    >>> oct(file_mode("/etc/hostapd/wlan0.conf")), oct(file_mode("/etc/default/hostapd"))
    ('0o600', '0o644')
    """
    return 0o644 if path == DAEMON_DEFAULTS else 0o600


@dataclass
class _Switch:
    name: str
    driver: Any = None
    error: str | None = None
    unreachable: bool = False


@dataclass
class _Ap:
    name: str
    device: Device
    result: HostResult
    files: dict[str, str] = field(default_factory=dict)
    bsses: list[Bss] = field(default_factory=list)
    port: SwitchPort | None = None
    driver: Any = None
    saved: Any = None  # ApState before any change
    file_changes: dict[str, str] = field(default_factory=dict)
    restart: bool = False
    bridge_ports: dict[str, dict[int, bool]] = field(default_factory=dict)  # AP br0 port -> vid -> native
    saved_ports: dict[str, Any] = field(default_factory=dict)  # AP br0 port -> PortState before any change
    ap_port_commands: list[str] = field(default_factory=list)
    ap_port_undo: list[str] = field(default_factory=list)
    ap_ports_sent: bool = False
    switch_saved: Any = None  # the switch port's PortState before any change (VLAN-aware switches only)
    port_commands: list[str] = field(default_factory=list)
    port_undo: list[str] = field(default_factory=list)
    applied: bool = False
    restart_sent: bool = False  # hostapd was told to restart: it may run the new files, whatever came back
    skip: bool = False  # failed in plan or preflight: untouched

    def fail(self, status: str, error: str) -> None:
        self.result.status, self.result.error, self.skip = status, error, True  # type: ignore[assignment]


def describe_vlans(port: Any) -> str:
    """A port's VLANs in words, from intended vid -> native or a read PortState.

    >>> describe_vlans({20: True}), describe_vlans({10: False, 20: False, 99: True})
    ('access VLAN 20', 'trunk VLANs 10,20 native 99')
    >>> from dzops.execute.drivers.bridge import PortState
    >>> describe_vlans(PortState(exists=True, backend="ovs")), describe_vlans(PortState(True, "ovs", "", True, all_vlans=True))
    ('not on br0', 'every VLAN')
    """
    if not isinstance(port, dict):
        if not port.member:
            return "not on br0"
        if port.all_vlans:
            return "every VLAN"
        port = port.vlans
    tagged = [str(vid) for vid, native in sorted(port.items()) if not native]
    native = [str(vid) for vid, is_native in port.items() if is_native]
    if not tagged:
        return f"access VLAN {native[0]}" if native else "no VLAN"
    return f"trunk VLANs {','.join(tagged)}" + (f" native {native[0]}" if native else "")


def _router_uplink(device: Device) -> dict[str, Any]:
    """What provision-ap says about the uplink of an AP plugged into a router port: nothing to set."""
    assert device.uplink is not None
    return {"switch": None, "router": device.uplink.router, "port": device.uplink.port, "vlans": [],
            "native_vlan": None, "status": "not_applicable",
            "note": f"uplinked to router {device.uplink.router} {device.uplink.port}: no switch port to configure "
                    f"(the router's port carries the SSIDs' VLANs as its own configuration)"}


class ApRun:
    def __init__(self, inventory: Inventory, scope: list[str], *, check: bool = False,
                 verify_timeout: float = 60.0, progress: Progress | None = None) -> None:
        self.inventory = inventory
        self.check = check
        self.verify_timeout = verify_timeout
        self.progress = progress or (lambda _s, _m: None)
        self.aps = {n: _Ap(n, inventory.devices[n], HostResult(host=n)) for n in scope}
        self.switches: dict[str, _Switch] = {}
        self.done = 0

    def run(self) -> list[HostResult]:
        for ap in self.aps.values():
            self._plan(ap)
        live = [a.name for a in self.aps.values() if not a.skip]
        ports = [p for p in (self.aps[a].port for a in live) if p is not None]
        self.switches = {s: _Switch(s) for s in sorted({p.switch for p in ports})}
        try:
            fan_out(self._connect_switch, list(self.switches))
            fan_out(self._preflight, live)
            fan_out(self._apply_verify, [a for a in live if not self.aps[a].skip])
        finally:
            fan_out(self._close_ap, list(self.aps))
            fan_out(self._close_switch, list(self.switches))
        return [ap.result for ap in self.aps.values()]

    def _report(self, ap: _Ap, message: str) -> None:
        self.done += 1  # the GIL makes this increment safe enough for a progress counter
        self.progress(ap.name, f"[{self.done}/{len(self.aps)}] {message}")

    # -- plan (pure) ----------------------------------------------------------------------------
    def _plan(self, ap: _Ap) -> None:
        try:
            ap.files = intended_ap_files(self.inventory, ap.device)
            ap.bsses = ap_bsses(self.inventory, ap.device)
            ap.port = switch_port(self.inventory, ap.device)
            ap.bridge_ports = ap_port_vlans(self.inventory, ap.device)
        except InventoryError as exc:
            ap.fail("failed", "; ".join(p.message for p in exc.problems))
            return
        ap.result.data = {
            "platform": ap.device.platform,
            "ssids": [{"profile": b.profile, "ssid": b.ssid, "interface": b.interface, "vlan": b.vlan,
                       "bridge": b.bridge, "security": b.security} for b in ap.bsses],
            "switch_port": {"switch": ap.port.switch, "port": ap.port.port, "vlans": ap.port.vids,
                            "native_vlan": next((v.vid for v in ap.port.vlans if v.native), None),
                            "status": "pending", "note": None} if ap.port else _router_uplink(ap.device),
            "files_changed": [], "restarted": False, "checks": [],
        }
        if ap.device.platform in VENDOR_AP_PLATFORMS:
            ap.result.diff = "\n".join(f"+ {line}" for line in mask_secrets(ap.files["running-config"]).splitlines())
            ap.fail("failed", f"platform '{ap.device.platform}' has no AP driver yet: "
                              f"its rendered config is shown by `dzops provision-ap --check --diff`")

    # -- connect and preflight ---------------------------------------------------------------------
    def _connect_switch(self, name: str) -> None:
        sw = self.switches[name]
        device = self.inventory.devices[name]
        if device.platform not in LINUX_SWITCH_PLATFORMS and device.platform != "ios":
            sw.error = f"uplink switch {name}: platform '{device.platform}' has no switch-port driver"
            return
        if device.platform == "ios":
            return  # rendered only (see data.switch_port); no netmiko trunk driver yet
        try:
            driver = driver_for(device.platform, credentials(self.inventory, device))
            driver.open()
            sw.driver = driver
        except ConnectionFailed as exc:
            sw.error, sw.unreachable = f"uplink switch {exc}", True
        except DeviceError as exc:
            sw.error = f"uplink switch {exc}"

    def _preflight(self, name: str) -> None:
        ap = self.aps[name]
        sw = self.switches[ap.port.switch] if ap.port else None
        try:
            driver: Any = driver_for(ap.device.platform, credentials(self.inventory, ap.device))
            driver.open()
            ap.driver = driver
            ap.saved = driver.read_state(list(ap.files), [b.interface for b in ap.bsses])
            missing = [r for r in radio_interfaces(ap.device) if r not in ap.saved.interfaces]
            if missing:
                ap.fail("failed", f"{name}: no radio interface {', '.join(missing)} on the device")
            else:
                self._preflight_bridge(ap, driver)
        except ConnectionFailed as exc:
            ap.fail("unreachable", str(exc))
        except DeviceError as exc:
            ap.fail("failed", str(exc))
        if not ap.skip and sw is not None and sw.error:
            ap.fail("unreachable" if sw.unreachable else "failed", sw.error)
        if not ap.skip and sw is not None:
            self._plan_port(ap, sw)
        if not ap.skip:
            self._plan_ap_changes(ap)
        if ap.skip:
            self._report(ap, f"skipped, nothing changed: {ap.result.error}")

    def _preflight_bridge(self, ap: _Ap, driver: Any) -> None:
        ap.saved_ports = driver.bridge_ports(list(ap.bridge_ports))
        first = next(iter(ap.saved_ports.values()), None)
        vids = sorted({vid for vlans in ap.bridge_ports.values() for vid in vlans})
        if first is not None and not first.vlan_aware:
            ap.fail("failed", f"{ap.name}: br0 has no VLANs ({first.detail}; no Open vSwitch): "
                              f"VLANs {','.join(map(str, vids))} cannot be kept apart, nothing changed")
            return
        absent = [port for port, state in ap.saved_ports.items() if not state.exists]
        if absent:
            ap.fail("failed", f"{ap.name}: no interface {', '.join(absent)} on the device")

    def _plan_port(self, ap: _Ap, sw: _Switch) -> None:
        from dzops.execute.drivers.bridge import restore_commands, set_commands

        assert ap.port is not None
        info = ap.result.data["switch_port"]
        if sw.driver is None:  # a real IOS switch: rendered, pushed by hand for now
            info["status"], info["note"] = "not_applied", "no IOS switch-port driver yet: config rendered in the diff"
            return
        try:
            state = sw.driver.port_state(ap.port.port)
        except DeviceError as exc:
            ap.fail("failed", f"uplink switch {exc}")
            return
        if not state.exists:
            ap.fail("failed", f"uplink switch {sw.name} has no port {ap.port.port} (uplink of {ap.name})")
            return
        if not state.vlan_aware:
            info["status"] = "not_applicable"
            info["note"] = (f"{sw.name} {ap.port.port}: trunk VLANs {','.join(map(str, ap.port.vids))} not applied: "
                            f"{sw.name}'s bridge has no VLANs ({state.detail}; no Open vSwitch); "
                            f"the port carries every frame untagged")
            return
        intended = {v.vid: v.native for v in ap.port.vlans}
        ap.switch_saved = state
        ap.port_commands = set_commands(ap.port.port, state, intended)
        ap.port_undo = restore_commands(ap.port.port, state, intended)
        info["status"] = "changed" if ap.port_commands else "ok"

    def _plan_ap_changes(self, ap: _Ap) -> None:
        saved = ap.saved
        from dzops.execute.drivers.bridge import restore_commands, set_commands

        ap.file_changes = {p: c for p, c in ap.files.items() if saved.files.get(p) != c}
        ap.restart = bool(ap.file_changes) or not saved.running or not self._bss_ok(ap, saved)[0]
        diffs = [file_diff(p, saved.files.get(p), c) for p, c in ap.file_changes.items()]
        for port, intended in ap.bridge_ports.items():
            before = ap.saved_ports[port]
            commands = set_commands(port, before, intended)
            if commands:
                ap.ap_port_commands += commands
                ap.ap_port_undo = restore_commands(port, before, intended) + ap.ap_port_undo
                diffs.append(f"~ {ap.name} {port}: {describe_vlans(before)} -> {describe_vlans(intended)}")
        if ap.restart and not ap.file_changes:
            diffs.append("~ hostapd: (re)start")
        if ap.port is None:
            pass  # uplinked to a router port: no switch port to change
        elif ap.port_commands:
            diffs.append(f"~ {ap.port.switch} {ap.port.port}:\n" + "\n".join(f"+ {c}" for c in ap.port_commands))
        elif ap.result.data["switch_port"]["status"] in ("not_applicable", "not_applied"):
            diffs.append(f"# {ap.port.switch} {ap.port.port} intended trunk (not applied here):\n"
                         + ap.port.config().rstrip())
        ap.result.diff = "\n".join(d for d in diffs if d)
        ap.result.data["files_changed"] = sorted(ap.file_changes)

    # -- apply, verify, restore ----------------------------------------------------------------------
    def _changes(self, ap: _Ap) -> bool:
        return bool(ap.file_changes or ap.ap_port_commands or ap.restart or ap.port_commands)

    def _apply_verify(self, name: str) -> None:
        ap = self.aps[name]
        changing = self._changes(ap)
        ap.result.status = "changed" if changing else "ok"
        ap.result.changed = changing and not self.check
        if self.check or not changing:
            self._report(ap, ("would change" if changing else "unchanged") if self.check else "unchanged")
            if not self.check:
                ap.result.data["checks"] = self._checks(ap, ap.saved)[1]
            return
        try:
            ap.applied = True
            if ap.file_changes:
                ap.driver.write_files({p: (c, file_mode(p)) for p, c in ap.file_changes.items()})
            if ap.ap_port_commands:
                ap.ap_ports_sent = True
                ap.driver.apply_bridge_commands(ap.ap_port_commands)
            if ap.port_commands:
                self.switches[ap.port.switch].driver.apply_bridge_commands(ap.port_commands)  # type: ignore[union-attr]
                ap.result.data["switch_port"]["status"] = "changed"
            refused = None
            if ap.restart:
                ap.restart_sent = True
                refused = ap.driver.restart(start=True)
                ap.result.data["restarted"] = True
            if refused:
                self._restore(ap, f"hostapd refused the new files: {refused}")
                return
            failed = self._verify(ap)
            if failed:
                self._restore(ap, f"verification failed: {failed}")
                return
            self._report(ap, "applied and verified")
        except DeviceError as exc:
            self._restore(ap, str(exc), dropped=isinstance(exc, ConnectionFailed))

    def _bss_ok(self, ap: _Ap, state: Any) -> tuple[bool, list[str], str | None]:
        passed: list[str] = []
        for b in ap.bsses:
            status, config = state.status.get(b.interface, {}), state.config.get(b.interface, {})
            checks = [
                (f"{b.interface} ENABLED", status.get("state") == "ENABLED"),
                (f"{b.interface} ssid {b.ssid}", config.get("ssid") == b.ssid),
                # hostapd_cli get_config shows no key_mgmt at all for an open BSS (wpa=0)
                (f"{b.interface} open, no key", "key_mgmt" not in config) if b.security == "open" else
                (f"{b.interface} key_mgmt {b.key_mgmt}", b.key_mgmt in config.get("key_mgmt", "").split()),
            ]
            for label, ok in checks:
                if not ok:
                    return False, passed, label
                passed.append(label)
        return True, passed, None

    def _ports_ok(self, ap: _Ap, ports: dict[str, Any], switch_state: Any) -> tuple[bool, list[str], str | None]:
        """The AP's bridge ports and the switch port facing it, read back, against the intent."""
        passed: list[str] = []
        for port, intended in ap.bridge_ports.items():
            label = f"{port} {describe_vlans(intended)} on br0"
            if not ports.get(port) or not ports[port].carries(intended):
                return False, passed, label
            passed.append(label)
        if ap.port is not None and switch_state is not None:
            intended = {v.vid: v.native for v in ap.port.vlans}
            label = f"{ap.port.switch} {ap.port.port} {describe_vlans(intended)}"
            if not switch_state.carries(intended):
                return False, passed, label
            passed.append(label)
        return True, passed, None

    def _checks(self, ap: _Ap, state: Any) -> tuple[bool, list[str], str | None]:
        ok, passed, failed = self._bss_ok(ap, state)
        if not ok:
            return ok, passed, failed
        ok, more, failed = self._ports_ok(ap, ap.saved_ports, ap.switch_saved)
        return ok, passed + more, failed

    def _verify(self, ap: _Ap) -> str | None:
        deadline = time.monotonic() + self.verify_timeout
        failed: str | None = "not run"
        while True:
            state = ap.driver.read_state([], [b.interface for b in ap.bsses])
            ok, passed, failed = self._bss_ok(ap, state)
            if ok:
                switch_state = None
                if ap.switch_saved is not None:
                    switch_state = self.switches[ap.port.switch].driver.port_state(ap.port.port)  # type: ignore[union-attr]
                ok, more, failed = self._ports_ok(ap, ap.driver.bridge_ports(list(ap.bridge_ports)), switch_state)
                passed = passed + more
            if ok:
                ap.result.data["checks"] = passed
                return None
            if time.monotonic() > deadline:
                return failed
            time.sleep(1)

    def _reconnect(self, ap: _Ap) -> str | None:
        """A fresh SSH session to the AP in place of a dead one; returns why it failed, if it did."""
        try:
            ap.driver.close()
        except Exception:  # noqa: BLE001 - closing a dead session may fail in any way; it is gone anyway
            log.debug("%s: closing the dead session failed", ap.name, exc_info=True)
        try:
            driver: Any = driver_for(ap.device.platform, credentials(self.inventory, ap.device))
            driver.open()
        except DeviceError as exc:
            return f"cannot reconnect to restore: {exc}"
        ap.driver = driver
        self.progress(ap.name, "SSH session lost: reconnected to restore")
        return None

    def _put_back(self, ap: _Ap) -> list[str]:
        """Saved files, bridges and hostapd state back on the AP (each step is safe to repeat)."""
        saved = ap.saved
        if ap.file_changes:
            ap.driver.write_files({p: (saved.files.get(p), file_mode(p)) for p in ap.file_changes})
        if ap.ap_ports_sent:
            ap.driver.apply_bridge_commands(ap.ap_port_undo)
        if ap.restart_sent:
            refused = ap.driver.restart(start=saved.running)
            if refused:
                return [f"hostapd refused the saved files too: {refused}"]
        return []

    def _restore(self, ap: _Ap, reason: str, *, dropped: bool = False) -> None:
        """Put back the saved files, bridge ports, hostapd state and switch port.

        A session that dropped (during the apply or the restore) is never reused: the restore gets
        one fresh connection.
        """
        errors: list[str] = []
        reconnected = False
        if dropped:
            reconnected = True
            failure = self._reconnect(ap)
            if failure:
                errors.append(failure)
        while not errors:
            try:
                errors += self._put_back(ap)
                break
            except ConnectionFailed as exc:
                if reconnected:
                    errors.append(str(exc))
                    break
                reconnected = True
                failure = self._reconnect(ap)
                if failure:
                    errors.append(failure)
            except DeviceError as exc:
                errors.append(str(exc))
        if ap.port_commands and ap.result.data["switch_port"]["status"] == "changed":
            try:
                self.switches[ap.port.switch].driver.apply_bridge_commands(ap.port_undo)  # type: ignore[union-attr]
                ap.result.data["switch_port"]["status"] = "restored"
            except DeviceError as exc:
                errors.append(f"uplink switch {exc}")
        ap.result.changed = False
        if errors:
            ap.result.status, ap.result.error = "failed", f"{reason}; RESTORE FAILED: {'; '.join(errors)}"
        else:
            ap.result.status, ap.result.error = "rolled_back", f"{reason}; restored the saved files"
        self._report(ap, ap.result.error)

    def _close_ap(self, name: str) -> None:
        if self.aps[name].driver is not None:
            self.aps[name].driver.close()

    def _close_switch(self, name: str) -> None:
        if self.switches[name].driver is not None:
            self.switches[name].driver.close()


def provision_ap(inventory: Inventory, scope: list[str], *, check: bool = False, verify_timeout: float = 60.0,
                 progress: Progress | None = None) -> list[HostResult]:
    """Provision the named APs (see the module docstring); one HostResult per AP, in scope order."""
    return ApRun(inventory, scope, check=check, verify_timeout=verify_timeout, progress=progress).run()
