"""Typed, validated view of the inventory. Built by `dzops.inventory.loader`, read by every layer.

Secrets are `SecretStr`: they print as `**********` and are dumped masked unless a caller asks
for the value explicitly with `.get_secret_value()`.
"""

from __future__ import annotations

import datetime as dt
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from dzops.platforms import DeviceFunction

VlanId = Annotated[int, Field(ge=1, le=4094)]
InterfaceName = Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_./:-]+$")]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Dzongkhag(Model):
    name: str
    code: Annotated[str, Field(pattern=r"^[a-z]{2,6}$")]


class Site(Model):
    name: str
    title: str
    kind: Literal["hq", "gewog", "school", "health"]
    location: str | None = None
    lan_prefix: IPv4Network


class AddressPools(Model):
    management: IPv4Network
    wan: IPv4Network
    loopback: IPv4Network
    lan: IPv4Network


class Interface(Model):
    description: Annotated[str, Field(pattern=r"^[^|]*$")] | None = None  # '|' breaks vtysh -b loading
    address: IPv4Interface | None = None


class Uplink(Model):
    switch: str
    port: InterfaceName  # the switch port the device is plugged into
    interface: InterfaceName = "eth0"  # the device's own uplink interface


class Radio(Model):
    channel: Literal["auto"] | Annotated[int, Field(ge=1, le=165)] = "auto"
    power: Literal["auto"] | Annotated[int, Field(ge=1, le=30)] = "auto"
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "BT"
    # hostapd's driver: nl80211 on a real radio; "none" where no radio exists (the virtual lab).
    driver: Literal["nl80211", "none"] = "nl80211"


class HealthCheck(Model):
    kind: Literal["http", "tcp"]
    target: str  # URL for http, host:port for tcp


class Device(Model):
    name: str
    site: str
    function: DeviceFunction
    platform: str
    device_role: str
    mgmt_address: IPv4Address
    username: str | None = None
    password: SecretStr | None = None
    # SSH as Ansible reads it: ansible_port, ansible_ssh_private_key_file, ansible_become(_password).
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    private_key_file: Path | None = None
    become: bool = False
    become_password: SecretStr | None = None
    router_login: Literal["shell", "vtysh"] = "shell"  # dzops_router_login: where an FRR login lands
    model: str | None = None
    interfaces: dict[InterfaceName, Interface] = {}
    loopback: IPv4Interface | None = None
    lan_interface: InterfaceName | None = None  # the router interface that is the site LAN gateway
    # access points
    uplink: Uplink | None = None
    radio: Radio | None = None
    ssids: tuple[str, ...] = ()
    # servers
    services: tuple[str, ...] = ()
    health_checks: tuple[HealthCheck, ...] = ()


class LinkEnd(Model):
    host: str
    interface: InterfaceName
    vlan: VlanId | None = None

    @property
    def ifname(self) -> str:
        """The interface as the device names it, with the VLAN sub-interface if any.

        >>> LinkEnd(host="r1", interface="eth1", vlan=120).ifname
        'eth1.120'
        """
        return f"{self.interface}.{self.vlan}" if self.vlan else self.interface


class Routing(Model):
    protocol: Literal["ospf", "static"]
    area: Annotated[int, Field(ge=0)] = 0


class WanLink(Model):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    a: LinkEnd
    b: LinkEnd
    provider: str
    circuit_id: str
    bandwidth_mbps: Annotated[int, Field(ge=1, le=100_000)]
    mtu: Annotated[int, Field(ge=576, le=9216)] = 1500
    routing: Routing
    subnet: IPv4Network | None = None  # allocated from address_pools.wan by provision-wan


class LanLink(Model):
    a: LinkEnd
    b: LinkEnd


class Vlan(Model):
    id: VlanId
    name: str


class Radius(Model):
    server: IPv4Address
    port: int = 1812
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("RADIUS shared secret must not be empty")
        return value


class SsidProfile(Model):
    name: str
    ssid: Annotated[str, Field(min_length=1, max_length=32)]
    security: Literal["wpa2-psk", "wpa3-sae", "wpa2-enterprise"]
    psk: SecretStr | None = None
    radius: Radius | None = None
    vlan: VlanId
    hidden: bool = False
    client_isolation: bool = False
    band: Literal["2.4ghz", "5ghz"] = "2.4ghz"

    @field_validator("psk")
    @classmethod
    def _psk_length(cls, value: SecretStr | None) -> SecretStr | None:
        # WPA passphrases are 8..63 printable characters (IEEE 802.11i); hostapd refuses others.
        if value is not None and not 8 <= len(value.get_secret_value()) <= 63:
            raise ValueError("PSK must be 8 to 63 characters")
        return value


class UserRole(Model):
    groups: tuple[str, ...]
    privilege: Annotated[int, Field(ge=1, le=15)]
    sudo: bool = False


SSH_KEY_PATTERN = r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/]+={0,3}( .*)?$"


class UserAccount(Model):
    login: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
    name: str
    email: str
    role: str
    ssh_keys: tuple[Annotated[str, Field(pattern=SSH_KEY_PATTERN)], ...] = ()
    state: Literal["present", "absent"] = "present"
    expires: dt.date | None = None
    password_hash: SecretStr | None = None


class MailSettings(Model):
    smtp_host: str
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    # SSH as Ansible reads it: ansible_port, ansible_ssh_private_key_file, ansible_become(_password).
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    private_key_file: Path | None = None
    become: bool = False
    become_password: SecretStr | None = None
    router_login: Literal["shell", "vtysh"] = "shell"  # dzops_router_login: where an FRR login lands
    sender: str
    recipients: tuple[str, ...]


class Schedules(Model):
    patch: str | None = None
    drift: str | None = None
    backup: str | None = None


class Inventory(Model):
    """The whole Dzongkhag, resolved and validated."""

    root: Path
    dzongkhag: Dzongkhag
    address_pools: AddressPools
    sites: dict[str, Site]
    devices: dict[str, Device]
    groups: dict[str, tuple[str, ...]]  # every Ansible group and its hosts (transitively)
    wan_links: tuple[WanLink, ...] = ()
    lan_links: tuple[LanLink, ...] = ()
    vlans: dict[int, Vlan] = {}
    ssid_profiles: dict[str, SsidProfile] = {}
    user_roles: dict[str, UserRole] = {}
    users: tuple[UserAccount, ...] = ()
    mail: MailSettings | None = None
    schedules: Schedules = Schedules()
    backup_repository: Path | None = None
    report_dir: Path | None = None
    known_hosts: Path | None = None

    def hosts_in(self, group: str) -> list[Device]:
        return [self.devices[name] for name in self.groups.get(group, ()) if name in self.devices]

    def wan_link(self, name: str) -> WanLink:
        for link in self.wan_links:
            if link.name == name:
                return link
        raise KeyError(name)
