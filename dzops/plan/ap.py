"""Access-point intent: one BSS per SSID, each bridged to its VLAN, and the uplink switch port's trunk.

Pure: inventory in, files and config lines out. Used by `provision-ap` and by the drift report
(`intended_ap_files` + `mask_secrets`).

hostapd APs (see the docstring of `dzops.lab.routers`): `driver=none` cannot add a second BSS, so
each SSID is its own config file with its own `interface=wlanN`, and `/etc/default/hostapd` lists
them in `DAEMON_CONF`; one hostapd process serves them all. The SSID of the i-th entry of the AP's
`ssids` goes to its i-th radio interface (`wlan*` in `interfaces`, in name order).

VLANs on the AP: one VLAN-aware bridge `br0` (named in each SSID file as `bridge=`): each SSID's
interface is an access port of its VLAN, the uplink a trunk of the SSIDs' VLANs with the management
VLAN native (`ap_port_vlans`), as the uplink switch port is (`switch_port`). The driver sets them on
Open vSwitch or a VLAN-aware Linux bridge, whichever the AP runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from dzops.exceptions import InventoryError, Problem, UsageError
from dzops.inventory.models import Device, Inventory, SsidProfile
from dzops.plan.render import render

RADIO_PREFIX = "wlan"
DAEMON_DEFAULTS = "/etc/default/hostapd"
HOSTAPD_DIR = "/etc/hostapd"
CTRL_DIR = "/run/hostapd"
MANAGEMENT_VLAN_NAME = "management"
MASK = "********"
VENDOR_AP_PLATFORMS = ("ios", "routeros")

# hostapd.conf / IOS / RouterOS keys whose value is a secret; the value never leaves the plan unmasked
# except towards the device itself.
_SECRET_PATTERNS = (
    re.compile(r"^(\s*(?:wpa_passphrase|wpa_psk|sae_password|auth_server_shared_secret|"
               r"acct_server_shared_secret)=).*$", re.M),
    re.compile(r"^(\s*wpa-psk ascii(?: [0-7])? ).*$", re.M),  # IOS dot11 ssid
    re.compile(r"^(.*\bkey(?: [0-7])? )\S+$", re.M),  # IOS radius-server ... key SECRET
    # RouterOS; a quoted value may hold \" (routeros_str escapes it): the mask runs to the closing quote
    re.compile(r"((?:wpa2-pre-shared-key|wpa3-pre-shared-key|passphrase|secret)=)(\"(?:[^\"\\]|\\.)*\"|\S+)"),
)

KEY_MGMT = {"wpa2-psk": "WPA-PSK", "wpa3-sae": "SAE", "wpa2-enterprise": "WPA-EAP", "open": "NONE"}


def mask_secrets(text: str) -> str:
    """The text with every PSK, SAE password and RADIUS secret replaced by a mask.

    >>> print(mask_secrets("ssid=Office\\nwpa_passphrase=hunter2hunter2\\nsae_password=x y z\\n"), end="")
    ssid=Office
    wpa_passphrase=********
    sae_password=********
    >>> mask_secrets(" wpa-psk ascii 0 hunter2hunter2")
    ' wpa-psk ascii 0 ********'
    >>> mask_secrets('add name=staff authentication-types=wpa2-psk wpa2-pre-shared-key="a b c d"')
    'add name=staff authentication-types=wpa2-psk wpa2-pre-shared-key=********'
    >>> mask_secrets('add wpa2-pre-shared-key="ab\\\\"cd ef\\\\$gh" disabled=no')
    'add wpa2-pre-shared-key=******** disabled=no'
    """
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def radio_interfaces(device: Device) -> list[str]:
    """The AP's radio interfaces (`wlan*`), in name order.

    >>> from dzops.inventory.models import Device
    >>> d = Device(name="ap", site="s", function="access_points", platform="hostapd", device_role="ap",
    ...            mgmt_address="10.0.0.2", interfaces={"wlan1": {}, "eth0": {}, "wlan0": {}})
    >>> radio_interfaces(d)
    ['wlan0', 'wlan1']
    """
    return sorted(name for name in device.interfaces if name.startswith(RADIO_PREFIX))


AP_BRIDGE = "br0"  # the AP's one VLAN-aware bridge: SSIDs are its access ports, the uplink its trunk


def channel_for(band: str, channel: int | str) -> int:
    """The hostapd channel of a BSS: the radio's channel if it belongs to the band, else 0 (ACS).

    >>> channel_for("2.4ghz", 6), channel_for("5ghz", 6), channel_for("5ghz", 36), channel_for("2.4ghz", "auto")
    (6, 0, 36, 0)
    """
    if channel == "auto":
        return 0
    in_band = 1 <= int(channel) <= 14 if band == "2.4ghz" else int(channel) >= 36
    return int(channel) if in_band else 0


@dataclass(frozen=True)
class Bss:
    """One SSID on one AP: the input of `templates/hostapd/bss.j2` and the vendor AP templates."""

    ap: str
    profile: str
    interface: str
    ssid: str
    security: Literal["wpa2-psk", "wpa3-sae", "wpa2-enterprise", "open"]
    vlan: int
    vlan_name: str
    bridge: str
    hidden: bool
    client_isolation: bool
    band: str
    hw_mode: str
    channel: int
    power: int | str
    country: str
    driver: str
    psk: str | None  # the secret itself: only ever rendered into files for the device
    radius_server: str | None
    radius_port: int | None
    radius_secret: str | None
    own_ip: str

    @property
    def key_mgmt(self) -> str:
        return KEY_MGMT[self.security]

    @property
    def frequency_mhz(self) -> int | None:
        """The channel's centre frequency (RouterOS configures frequencies); None for automatic.

        >>> [Bss.__dict__["frequency_mhz"].fget(type("B", (), {"channel": c, "band": b})) for c, b in
        ...  ((1, "2.4ghz"), (14, "2.4ghz"), (36, "5ghz"), (0, "5ghz"))]
        [2412, 2484, 5180, None]
        """
        if self.channel == 0:
            return None
        if self.band == "2.4ghz":
            return 2484 if self.channel == 14 else 2407 + 5 * self.channel
        return 5000 + 5 * self.channel

    @property
    def path(self) -> str:
        return f"{HOSTAPD_DIR}/{self.interface}.conf"


def _problem(device: Device, message: str, field: str) -> InventoryError:
    return InventoryError([Problem(message, host=device.name, field=field)])


def ap_bsses(inventory: Inventory, device: Device) -> list[Bss]:
    """Every BSS of an AP, in the order of its `ssids`; raises InventoryError if one cannot be placed."""
    radios = radio_interfaces(device)
    if device.platform == "hostapd" and len(device.ssids) > len(radios):
        raise _problem(device, f"serves {len(device.ssids)} SSID(s) but has {len(radios)} radio interface(s) "
                               f"({RADIO_PREFIX}N in interfaces); hostapd needs one per SSID", "interfaces")
    radio = device.radio
    bsses = []
    for index, name in enumerate(device.ssids):
        profile: SsidProfile | None = inventory.ssid_profiles.get(name)
        if profile is None:
            raise _problem(device, f"SSID profile '{name}' is not defined in ssid_profiles", "ssids")
        vlan = inventory.vlans.get(profile.vlan)
        bsses.append(Bss(
            ap=device.name, profile=name,
            interface=radios[index] if index < len(radios) else f"{RADIO_PREFIX}{index}",
            ssid=profile.ssid, security=profile.security, vlan=profile.vlan,
            vlan_name=vlan.name if vlan else f"vlan{profile.vlan}", bridge=AP_BRIDGE,
            hidden=profile.hidden, client_isolation=profile.client_isolation, band=profile.band,
            hw_mode="g" if profile.band == "2.4ghz" else "a",
            channel=channel_for(profile.band, radio.channel if radio else "auto"),
            power=radio.power if radio else "auto", country=radio.country if radio else "BT",
            driver=(radio.driver if radio else "nl80211"),
            psk=profile.psk.get_secret_value() if profile.psk else None,
            radius_server=str(profile.radius.server) if profile.radius else None,
            radius_port=profile.radius.port if profile.radius else None,
            radius_secret=profile.radius.secret.get_secret_value() if profile.radius else None,
            own_ip=str(device.mgmt_address),
        ))
    return bsses


def daemon_defaults(bsses: list[Bss]) -> str:
    """Debian's /etc/default/hostapd listing one config file per SSID."""
    return render("hostapd", "daemon_defaults", files=[b.path for b in bsses])


def hostapd_files(inventory: Inventory, device: Device) -> dict[str, str]:
    bsses = ap_bsses(inventory, device)
    files = {b.path: render("hostapd", "bss", bss=b) for b in bsses}
    files[DAEMON_DEFAULTS] = daemon_defaults(bsses)
    return files


def vendor_ap_lines(inventory: Inventory, device: Device) -> list[str]:
    """Configuration lines for a Cisco IOS autonomous AP or a MikroTik RouterOS AP, in order."""
    bsses = ap_bsses(inventory, device)
    if device.platform == "ios":
        text = render("ios", "ap_ssids", bsses=bsses) + render("ios", "ap_radios", bsses=bsses,
                                                                radio=_radio_ctx(device))
    elif device.platform == "routeros":
        # Sorted by band: the template configures each band's master interface before its virtual APs.
        text = render("routeros", "ap_wireless", bsses=sorted(bsses, key=lambda b: b.band),
                      radio=_radio_ctx(device), device=device)
    else:
        raise ValueError(f"no AP templates for platform {device.platform!r}")
    return [line for line in text.splitlines() if line.strip()]


def _radio_ctx(device: Device) -> dict[str, object]:
    radio = device.radio
    return {"channel": radio.channel if radio else "auto", "power": radio.power if radio else "auto",
            "country": radio.country if radio else "BT"}


def intended_ap_files(inventory: Inventory, device: Device) -> dict[str, str]:
    """Path on the AP -> intended content (secrets included: the device needs them).

    hostapd: each SSID file and /etc/default/hostapd. Vendor APs (ios, routeros) have no files:
    their intended configuration section comes under the key `running-config`.
    Mask with `mask_secrets` before showing any of it.
    """
    if device.platform == "hostapd":
        return hostapd_files(inventory, device)
    if device.platform in VENDOR_AP_PLATFORMS:
        return {"running-config": "\n".join(vendor_ap_lines(inventory, device)) + "\n"}
    raise ValueError(f"{device.name}: platform {device.platform!r} is not an AP platform")


# -- the uplink switch port -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrunkVlan:
    vid: int
    name: str
    native: bool  # untagged + PVID: the management VLAN (the AP's own address before any SSID works)


@dataclass(frozen=True)
class SwitchPort:
    ap: str
    switch: str
    port: str
    platform: str
    vlans: tuple[TrunkVlan, ...]

    @property
    def vids(self) -> list[int]:
        return [v.vid for v in self.vlans]

    def config(self) -> str:
        """The port's rendered trunk config (`templates/<platform>/switchport_trunk.j2`)."""
        return render(self.platform, "switchport_trunk", port=self)


def management_vlan(inventory: Inventory) -> int | None:
    """The VLAN named `management` in `vlans`, if any.

    >>> from dzops.inventory.models import Vlan
    >>> class Inv:  # just the one field this reads
    ...     vlans = {10: Vlan(id=10, name="staff"), 99: Vlan(id=99, name="management")}
    >>> management_vlan(Inv())
    99
    """
    for vlan in inventory.vlans.values():
        if vlan.name == MANAGEMENT_VLAN_NAME:
            return vlan.id
    return None


def switch_port(inventory: Inventory, device: Device) -> SwitchPort | None:
    """The AP's uplink port: a trunk carrying exactly its SSIDs' VLANs plus the management VLAN (native).

    None when the AP plugs straight into a router port (a small office without a switch): that
    port is the router's own configuration, not an access switch's trunk provision-ap sets.
    """
    if device.uplink is None:
        raise _problem(device, "an access point needs an uplink (a switch or router, and its port)", "uplink")
    if device.uplink.switch is None:
        return None
    switch = inventory.devices.get(device.uplink.switch)
    if switch is None:
        raise _problem(device, f"uplink switch '{device.uplink.switch}' is not in the inventory", "uplink.switch")
    vlans = tuple(TrunkVlan(v, inventory.vlans[v].name if v in inventory.vlans else f"vlan{v}", native)
                  for v, native in trunk_vids(inventory, device).items())
    return SwitchPort(device.name, switch.name, device.uplink.port, switch.platform, vlans)


def trunk_vids(inventory: Inventory, device: Device) -> dict[int, bool]:
    """vid -> native of the AP's uplink trunk: its SSIDs' VLANs, and the management VLAN native."""
    mgmt = management_vlan(inventory)
    vids = {inventory.ssid_profiles[s].vlan for s in device.ssids if s in inventory.ssid_profiles}
    return {vid: vid == mgmt for vid in sorted(vids | ({mgmt} if mgmt else set()))}


def ap_port_vlans(inventory: Inventory, device: Device) -> dict[str, dict[int, bool]]:
    """Port of the AP's bridge -> the VLANs it carries (vid -> native): each SSID's interface an
    access port of its VLAN, the uplink interface a trunk like the switch port facing it."""
    ports = {b.interface: {b.vlan: True} for b in ap_bsses(inventory, device)}
    if device.uplink is not None:
        ports[device.uplink.interface] = trunk_vids(inventory, device)
    return ports


def access_points_in_scope(inventory: Inventory, names: list[str] | None = None, site: str | None = None) -> list[str]:
    """AP names selected by name, by site, or all of them (inventory order)."""
    aps = [d.name for d in inventory.devices.values() if d.function == "access_points"]
    if names:
        unknown = [n for n in names if n not in inventory.devices]
        if unknown:
            raise UsageError(f"unknown host(s): {', '.join(unknown)}")
        not_ap = [n for n in names if n not in aps]
        if not_ap:
            raise UsageError(f"not access points: {', '.join(not_ap)} (see the group access_points)")
        return list(dict.fromkeys(names))
    if site:
        return [n for n in aps if inventory.devices[n].site == site]
    return aps


def file_diff(path: str, current: str | None, intended: str | None) -> str:
    """A masked unified diff of one file; a secret-only change is named, never shown.

    >>> print(file_diff("/etc/x.conf", "ssid=A\\nwpa_passphrase=oldoldold\\n", "ssid=B\\nwpa_passphrase=newnewnew\\n"))
    --- /etc/x.conf
    +++ /etc/x.conf (intended)
    @@ -1,2 +1,2 @@
    -ssid=A
    +ssid=B
     wpa_passphrase=********
    ~ /etc/x.conf: a secret value changes (not shown)
    >>> file_diff("/etc/x.conf", "a=1\\n", "a=1\\n")
    ''
    """
    import difflib

    if current == intended:
        return ""
    before, after = mask_secrets(current or ""), mask_secrets(intended or "")
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(),
                                      "/dev/null" if current is None else path,
                                      "/dev/null" if intended is None else f"{path} (intended)", lineterm=""))
    if before == after or _secret_lines(current or "") != _secret_lines(intended or ""):
        lines.append(f"~ {path}: a secret value changes (not shown)")
    return "\n".join(lines)


def _secret_lines(text: str) -> list[str]:
    masked = mask_secrets(text).splitlines()
    return [line for line, m in zip(text.splitlines(), masked, strict=False) if line != m]
