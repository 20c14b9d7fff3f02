"""Typed, validated view of the inventory. Built by `dzops.inventory.loader`, read by every layer.

Secrets are `SecretStr`: they print as `**********` and are dumped masked unless a caller asks
for the value explicitly with `.get_secret_value()`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from dzops.bandwidth import parse_bandwidth
from dzops.platforms import DeviceFunction

VlanId = Annotated[int, Field(ge=1, le=4094)]
OspfCost = Annotated[int, Field(ge=1, le=65_535)]
OspfArea = Annotated[int, Field(ge=0, le=4_294_967_295)]

# Bidirectional overrides and isolates reorder what a reader sees ("Trojan Source"); a description
# must read the same on a screen as on the device.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def single_line(value: str) -> str:
    """Free text as devices, files and reports take it: one line, no control characters.

    A newline in a description would start a new line of configuration on the device (or in
    hostapd.conf, cron, sudoers); other control characters end up in terminals and mail.

    >>> single_line("WAN BT-PNK-0009 Bhutan Telecom (20M) to Talo")
    'WAN BT-PNK-0009 Bhutan Telecom (20M) to Talo'
    >>> single_line("ཐིམ་ཕུག Thimphu")  # any script is fine
    'ཐིམ་ཕུག Thimphu'
    >>> single_line("Talo\\nrouter ospf")
    Traceback (most recent call last):
    ...
    ValueError: must be one line of text without control characters (found U+000A at position 5)
    """
    for position, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS:
            raise ValueError(f"must be one line of text without control characters "
                             f"(found U+{ord(char):04X} at position {position + 1})")
    return value


# Every free-text field of the inventory: descriptions, names, circuit ids, SSIDs, mail addresses...
Text = Annotated[str, AfterValidator(single_line)]


def host_name(value: str) -> str:
    """A device name: it becomes the device's hostname, file names and unquoted config words.

    >>> host_name("gewog-talo-rtr1")
    'gewog-talo-rtr1'
    >>> host_name("talo;reboot")
    Traceback (most recent call last):
    ...
    ValueError: a host name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", value):
        raise ValueError("a host name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


HostName = Annotated[Text, AfterValidator(host_name)]
InterfaceName = Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_./:-]+$")]


class Model(BaseModel):
    # Validators are built on first validation, not at import: a command served from the inventory
    # cache unpickles its models and validates none (building them all took about 0.02 s of a core
    # on every run; the four defaults built at import below are all that is left of it).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Dzongkhag(Model):
    name: Text
    code: Annotated[str, Field(pattern=r"^[a-z]{2,6}$")]


class Site(Model):
    name: Text
    title: Text
    kind: Literal["hq", "gewog", "school", "health"]
    location: Text | None = None
    lan_prefix: IPv4Network


def prefix_length(value: object) -> object:
    """`/31`, `31` and 31 are the same prefix length.

    >>> prefix_length("/31"), prefix_length(30)
    (31, 30)
    """
    if isinstance(value, str) and value.strip().lstrip("/").isdigit():
        return int(value.strip().lstrip("/"))
    return value


class AddressPools(Model):
    management: IPv4Network
    wan: IPv4Network
    # Each WAN link's subnet out of `wan`: /30 (two hosts, the classic) or /31 (RFC 3021: both
    # addresses usable, half the space; every platform dzops drives takes it, RouterOS from v7).
    wan_subnet_size: Annotated[Literal[30, 31], BeforeValidator(prefix_length)] = 30
    loopback: IPv4Network
    lan: IPv4Network


class Interface(Model):
    description: Annotated[Text, Field(pattern=r"^[^|]*$")] | None = None  # '|' breaks vtysh -b loading
    address: IPv4Interface | None = None


class Uplink(Model):
    """Where a device plugs in: a switch port, or (a small office without a switch) a router port."""

    switch: Text | None = None
    router: Text | None = None
    port: InterfaceName  # the switch's or router's port the device is plugged into
    interface: InterfaceName = "eth0"  # the device's own uplink interface

    @model_validator(mode="after")
    def _one_peer(self) -> Uplink:
        if (self.switch is None) == (self.router is None):
            raise ValueError("an uplink names either a switch or a router (and its port)")
        return self

    @property
    def peer(self) -> str:
        """The device at the other end of the cable.

        >>> Uplink(router="r1", port="eth2").peer, Uplink(switch="sw1", port="swp2").peer
        ('r1', 'sw1')
        """
        return self.switch or self.router or ""


class Radio(Model):
    channel: Literal["auto"] | Annotated[int, Field(ge=1, le=165)] = "auto"
    power: Literal["auto"] | Annotated[int, Field(ge=1, le=30)] = "auto"
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "BT"
    # hostapd's driver: nl80211 on a real radio; "none" where no radio exists (the virtual lab).
    driver: Literal["nl80211", "none"] = "nl80211"


class HealthCheck(Model):
    """One service check `dzops health` runs from this machine against a server's service."""

    kind: Literal["http", "tcp", "tls", "dns"]
    target: Text  # URL for http, host:port for tcp and tls, the DNS server's address[:port] for dns
    expect_status: Annotated[int, Field(ge=100, le=599)] | None = None  # http; unset: any 2xx or 3xx
    body_match: Text | None = None  # http: a regular expression the body must contain
    min_days: Annotated[int, Field(ge=0, le=3650)] = 14  # tls: certificate days left before it is degraded
    query: Text | None = None  # dns: the name to resolve (an A record)
    expect_address: IPv4Address | None = None  # dns: the answer must hold this address

    @model_validator(mode="after")
    def _kind_fields(self) -> HealthCheck:
        if self.kind == "dns" and not self.query:
            raise ValueError("a dns health check names the `query` to resolve")
        if self.kind != "http" and (self.expect_status is not None or self.body_match is not None):
            raise ValueError("expect_status and body_match belong to http health checks")
        return self


class HealthThresholds(Model):
    """A server is degraded above these (dzops_health_thresholds)."""

    disk_percent: Annotated[int, Field(ge=1, le=100)] = 90  # of any mounted file system's blocks
    memory_percent: Annotated[int, Field(ge=1, le=100)] = 95  # used, MemAvailable counted as free
    load_per_cpu: Annotated[float, Field(gt=0, le=1000)] = 4.0  # 5-minute load average over the CPU count


class HealthSettings(Model):
    """`health:` in group_vars/all: how `dzops health` measures, keeps and alerts."""

    alert_after: Annotated[int, Field(ge=1, le=100)] = 2  # consecutive equal results before a state change alerts
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 90  # history older than this is removed
    pings: Annotated[int, Field(ge=1, le=100)] = 5  # echo requests per link direction


def absolute_path(value: str) -> str:
    """A path on a server as backup tools take it: absolute, normalised, no `..`.

    >>> absolute_path("/srv/share")
    '/srv/share'
    >>> absolute_path("srv/share")
    Traceback (most recent call last):
    ...
    ValueError: must be an absolute path without '..' or '//' (e.g. /srv/share)
    """
    parts = value.split("/")
    if not value.startswith("/") or ".." in parts or "//" in value or (len(value) > 1 and value.endswith("/")):
        raise ValueError("must be an absolute path without '..' or '//' (e.g. /srv/share)")
    return value


AbsolutePath = Annotated[Text, AfterValidator(absolute_path)]


class BackupDatabase(Model):
    """One database `dzops data-backup` dumps consistently before restic stores it."""

    # a bare identifier: it becomes a file name and an argument of pg_dump / mariadb-dump
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    engine: Literal["postgresql", "mariadb"]


class BackupPath(Model):
    path: AbsolutePath
    # restic --exclude patterns (e.g. `*.tmp`, `/srv/share/cache`)
    exclude: tuple[Annotated[Text, Field(min_length=1)], ...] = ()


class BackupRepository(Model):
    """Where restic keeps a server's snapshots: another server over SFTP, or a local disk."""

    kind: Literal["sftp", "local"]
    host: HostName | None = None  # sftp: the inventory server that holds the repository
    path: AbsolutePath
    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] = "dzbackup"  # sftp login on `host`

    @model_validator(mode="after")
    def _host_for_sftp(self) -> BackupRepository:
        if self.kind == "sftp" and self.host is None:
            raise ValueError("an sftp repository names the `host` (an inventory server) that keeps it")
        if self.kind == "local" and self.host is not None:
            raise ValueError("a local repository has no `host`: it is a directory on the server itself")
        return self


class BackupRetention(Model):
    """restic forget --keep-daily/--keep-weekly/--keep-monthly."""

    daily: Annotated[int, Field(ge=0, le=3650)] = 7
    weekly: Annotated[int, Field(ge=0, le=520)] = 4
    monthly: Annotated[int, Field(ge=0, le=240)] = 6

    @model_validator(mode="after")
    def _keeps_something(self) -> BackupRetention:
        if not (self.daily or self.weekly or self.monthly):
            raise ValueError("a retention that keeps nothing would delete every snapshot")
        return self


class DataBackup(Model):
    """`data_backups` of a server: what restic backs up, where to, for how long."""

    databases: tuple[BackupDatabase, ...] = ()
    paths: tuple[BackupPath, ...] = ()
    repositories: tuple[BackupRepository, ...]
    retention: BackupRetention = Field(default_factory=BackupRetention)
    password: SecretStr  # the restic repository password (Vault)
    staging: AbsolutePath = "/var/backups/dzops-staging"  # database dumps before restic reads them

    @field_validator("password")
    @classmethod
    def _password_usable(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 12:
            raise ValueError("the repository password must be at least 12 characters")
        if not value.get_secret_value().isprintable():
            raise ValueError("the repository password must be one line without control characters")
        return value

    @model_validator(mode="after")
    def _something_to_back_up(self) -> DataBackup:
        if not self.databases and not self.paths:
            raise ValueError("data_backups names no database and no path")
        if not 1 <= len(self.repositories) <= 2:
            raise ValueError("data_backups needs one or two repositories (e.g. one over sftp, one local)")
        return self


class Device(Model):
    name: HostName
    site: Text
    function: DeviceFunction
    platform: Text
    device_role: Text
    mgmt_address: IPv4Address
    username: Text | None = None
    password: SecretStr | None = None
    # SSH as Ansible reads it: ansible_port, ansible_ssh_private_key_file, ansible_become(_password).
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    private_key_file: Path | None = None
    become: bool = False
    become_password: SecretStr | None = None
    router_login: Literal["shell", "vtysh"] = "shell"  # dzops_router_login: where an FRR login lands
    model: Text | None = None
    interfaces: dict[InterfaceName, Interface] = {}
    loopback: IPv4Interface | None = None
    lan_interface: InterfaceName | None = None  # the router interface that is the site LAN gateway
    # OSPF area of a router's own networks (LAN, loopback); unset: the area its WAN links share,
    # or the backbone (0) for a router whose links are in several areas (an area border router)
    ospf_area: OspfArea | None = None
    # hosts on a site LAN: the next hop off the LAN; unset: the site router's LAN address
    gateway: IPv4Address | None = None
    # access points
    uplink: Uplink | None = None
    radio: Radio | None = None
    ssids: tuple[Text, ...] = ()
    # servers
    services: tuple[Text, ...] = ()
    health_checks: tuple[HealthCheck, ...] = ()
    health_thresholds: HealthThresholds = Field(default_factory=HealthThresholds)
    data_backups: DataBackup | None = None  # dzops data-backup: databases and paths restic keeps


# kbit/s, written with a unit (512kbit, 10Mbit, 1Gbit); a plain number is Mbit/s (see dzops.bandwidth)
Bandwidth = Annotated[int, BeforeValidator(parse_bandwidth)]


class LinkEnd(Model):
    host: Text
    interface: InterfaceName
    vlan: VlanId | None = None
    # this end's OSPF cost when bandwidth alone would choose the wrong path (else from the bandwidth)
    ospf_cost: OspfCost | None = None

    @property
    def ifname(self) -> str:
        """The interface as the device names it, with the VLAN sub-interface if any.

        >>> LinkEnd(host="r1", interface="eth1", vlan=120).ifname
        'eth1.120'
        """
        return f"{self.interface}.{self.vlan}" if self.vlan else self.interface


class Routing(Model):
    protocol: Literal["ospf", "static"]
    area: OspfArea = 0


class WanLink(Model):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    a: LinkEnd
    b: LinkEnd
    provider: Text
    circuit_id: Text
    # `bandwidth: 512kbit`; `bandwidth_mbps: 20` (the older spelling) is read the same way
    bandwidth_kbps: Bandwidth = Field(validation_alias=AliasChoices("bandwidth", "bandwidth_mbps"))
    mtu: Annotated[int, Field(ge=576, le=9216)] = 1500
    routing: Routing
    subnet: IPv4Network | None = None  # allocated from address_pools.wan by provision-wan

    @property
    def bandwidth_mbps(self) -> int | float:
        """Mbit/s, for readers that predate units (whole when it is: 20, not 20.0; 512kbit is 0.512)."""
        whole, rest = divmod(self.bandwidth_kbps, 1_000)
        return self.bandwidth_kbps / 1_000 if rest else whole


class LanLink(Model):
    a: LinkEnd
    b: LinkEnd


class Vlan(Model):
    id: VlanId
    name: Text


class Radius(Model):
    server: IPv4Address
    port: int = 1812
    secret: SecretStr

    @field_validator("secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("RADIUS shared secret must not be empty")
        if not value.get_secret_value().isprintable():  # the value itself is never echoed
            raise ValueError("RADIUS shared secret must be one line without control characters")
        return value


class SsidProfile(Model):
    # a bare word: RouterOS names its security profile after it, unquoted
    name: Annotated[Text, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
    ssid: Annotated[Text, Field(min_length=1, max_length=32)]
    # "open": no key at all (a guest network); give it client_isolation so guests cannot reach each other
    security: Literal["wpa2-psk", "wpa3-sae", "wpa2-enterprise", "open"]
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
        if value is not None and not all(" " <= c <= "~" for c in value.get_secret_value()):
            raise ValueError("PSK must be printable ASCII (a WPA passphrase): no control or non-ASCII characters")
        return value


class UserRole(Model):
    groups: tuple[Text, ...]
    privilege: Annotated[int, Field(ge=1, le=15)]
    sudo: bool = False


SSH_KEY_PATTERN = r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/]+={0,3}( .*)?$"


class UserAccount(Model):
    login: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
    name: Text
    email: Text
    role: Text
    ssh_keys: tuple[Annotated[str, Field(pattern=SSH_KEY_PATTERN)], ...] = ()
    state: Literal["present", "absent"] = "present"
    expires: dt.date | None = None
    password_hash: SecretStr | None = None


class MailSettings(Model):
    smtp_host: Text
    smtp_port: int = 25
    starttls: bool = False
    # AUTH without TLS sends the password in clear: only for a server on a trusted local link.
    insecure_auth: bool = False
    username: Text | None = None
    password: SecretStr | None = None
    sender: Text
    recipients: tuple[Text, ...]


class Schedules(Model):  # cron expressions: a newline would add a crontab line
    patch: Text | None = None
    drift: Text | None = None
    backup: Text | None = None
    health: Text | None = None
    data_backup: Text | None = None
    data_backup_check: Text | None = None  # restic check of the repositories, on its own schedule


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
    schedules: Schedules = Field(default_factory=Schedules)
    backup_repository: Path | None = None
    report_dir: Path | None = None
    known_hosts: Path | None = None
    forks: int = Field(10, ge=1, le=500)  # dzops_forks: devices at once in every multi-device run
    # dzops_ledger_retention_days: runs older than this leave the ledger (health runs: health.retention_days)
    ledger_retention_days: int = Field(730, ge=1, le=36500)
    health: HealthSettings = Field(default_factory=HealthSettings)

    def hosts_in(self, group: str) -> list[Device]:
        return [self.devices[name] for name in self.groups.get(group, ()) if name in self.devices]

    def site_router(self, site: str) -> Device | None:
        """The router whose LAN interface serves the site's LAN (the first one, in inventory order)."""
        for device in self.devices.values():
            if device.site == site and device.function == "routers" and device.lan_interface:
                return device
        return None

    def default_gateway(self, host: str) -> IPv4Address | None:
        """Where a host on a site LAN sends what is not on its LAN: declared, else the site router's LAN address.

        Without it, a server answers nobody beyond its own LAN: the gewogs the WAN exists for.
        """
        device = self.devices[host]
        if device.gateway is not None or device.function == "routers":
            return device.gateway
        router = self.site_router(device.site)
        if router is None or router.lan_interface not in router.interfaces:
            return None
        address = router.interfaces[router.lan_interface].address
        return address.ip if address is not None else None

    def wan_link(self, name: str) -> WanLink:
        for link in self.wan_links:
            if link.name == name:
                return link
        raise KeyError(name)
