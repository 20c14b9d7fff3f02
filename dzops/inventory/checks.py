"""Cross-field checks on a typed inventory: the mistakes a schema alone cannot see.

Each check is a small function returning problems; `run_checks` runs them all so one
`dzops inventory check` reports everything at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

from dzops.exceptions import Problem
from dzops.inventory.models import Inventory, LinkEnd
from dzops.platforms import PLATFORMS

if TYPE_CHECKING:
    from dzops.inventory.loader import Loaded


class _Where:
    """Finds file:line for a finding from the raw ansible values."""

    def __init__(self, loaded: Loaded | None) -> None:
        self.loaded = loaded

    def _first_vars(self) -> dict[str, Any]:
        if not self.loaded or not self.loaded.hosts:
            return {}
        return next(iter(self.loaded.hosts.values())).vars

    def problem(self, message: str, host: str | None, field: str, raw: Any) -> Problem:
        from dzops.inventory.loader import display_path, locate

        file, line = locate(raw, ()) if raw is not None else (None, None)
        if file:
            file = display_path(file)
        return Problem(message, file=file, line=line, host=host, field=field)

    def host_var(self, host: str, var: str, *path: Any) -> Any:
        if not self.loaded or host not in self.loaded.hosts:
            return None
        return _walk(self.loaded.hosts[host].vars.get(var), path)

    def defines(self, key: str, name: str) -> bool:
        """Whether group_vars/all defines `key.name` at all, valid or not."""
        node = self._first_vars().get(key)
        return isinstance(node, dict) and name in node

    def is_host(self, name: str) -> bool:
        """Whether hosts.yml defines the host, even if its variables failed validation."""
        return bool(self.loaded and name in self.loaded.hosts)

    def invalid_hosts_at(self, inv: Inventory, site: str) -> bool:
        """Whether a host of the site failed validation (reported already; what it would provide is unknown)."""
        if not self.loaded:
            return False
        return any(name not in inv.devices and f"site_{site}" in raw.groups for name, raw in self.loaded.hosts.items())

    def global_var(self, key: str, *path: Any) -> Any:
        return _walk(self._first_vars().get(key), path)


def _walk(node: Any, path: tuple[Any, ...]) -> Any:
    """The deepest raw value along path (the nearest one that has a file position)."""
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    return node


Check = Callable[[Inventory, _Where], Iterator[Problem]]


def check_platforms(inv: Inventory, w: _Where) -> Iterator[Problem]:
    for d in inv.devices.values():
        platform = PLATFORMS.get(d.platform)
        raw = w.host_var(d.name, "platform")
        if platform is None:
            yield w.problem(f"unknown platform '{d.platform}' (known: {', '.join(sorted(PLATFORMS))})",
                            d.name, "platform", raw)
        elif d.function not in platform.functions:
            yield w.problem(f"platform '{d.platform}' cannot be in group {d.function}", d.name, "platform", raw)


def check_sites(inv: Inventory, w: _Where) -> Iterator[Problem]:
    for d in inv.devices.values():
        if d.site not in inv.sites and not w.defines("sites", d.site):
            yield w.problem(f"group site_{d.site} has no entry in 'sites'", d.name, "site",
                            w.host_var(d.name, "ansible_host"))


def check_management_addresses(inv: Inventory, w: _Where) -> Iterator[Problem]:
    by_address: dict[str, list[str]] = defaultdict(list)
    for d in inv.devices.values():
        by_address[str(d.mgmt_address)].append(d.name)
        if d.mgmt_address not in inv.address_pools.management:
            yield w.problem(f"management address {d.mgmt_address} is outside the management pool "
                            f"{inv.address_pools.management}", d.name, "ansible_host",
                            w.host_var(d.name, "ansible_host"))
    for address, names in by_address.items():
        for name in names[1:]:
            yield w.problem(f"duplicate management address {address} (also {names[0]})", name, "ansible_host",
                            w.host_var(name, "ansible_host"))


# Sites carve their LANs out of the LAN pool and links their subnets out of the WAN pool.
NESTED_BY_DESIGN = (("address_pools.lan", "sites."), ("address_pools.wan", "wan_links["))


def overlapping_pairs(nets: list[Any]) -> list[tuple[int, int]]:
    """Index pairs (i < j, sorted) of the networks that overlap, equal ones included.

    A sweep over the networks sorted by first address: each is compared only with the earlier ones
    still open at its start, so 1,600 site prefixes cost 1,600 steps, not 1.3 million comparisons.

    >>> overlapping_pairs([IPv4Network("10.0.0.0/8"), IPv4Network("192.168.0.0/24"),
    ...                    IPv4Network("10.1.0.0/16"), IPv4Network("192.168.0.0/24")])
    [(0, 2), (1, 3)]
    """
    order = sorted(range(len(nets)), key=lambda i: (nets[i].version, int(nets[i].network_address),
                                                    -int(nets[i].broadcast_address)))
    pairs = []
    open_: list[int] = []
    for i in order:
        start = (nets[i].version, int(nets[i].network_address))
        open_ = [j for j in open_ if (nets[j].version, int(nets[j].broadcast_address)) >= start]
        pairs += [(min(i, j), max(i, j)) for j in open_]
        open_.append(i)
    return sorted(pairs)


def check_overlaps(inv: Inventory, w: _Where) -> Iterator[Problem]:
    pools = inv.address_pools
    named: list[tuple[str, IPv4Network, Any]] = [
        (f"address_pools.{k}", net, w.global_var("address_pools", k))
        for k, net in (("management", pools.management), ("wan", pools.wan), ("loopback", pools.loopback),
                       ("lan", pools.lan))
    ]
    named += [(f"sites.{s.name}.lan_prefix", s.lan_prefix, w.global_var("sites", s.name, "lan_prefix"))
              for s in inv.sites.values()]
    named += [(f"wan_links[{link.name}].subnet", link.subnet, w.global_var("wan_links", i, "subnet"))
              for i, link in enumerate(inv.wan_links) if link.subnet is not None]
    for i, j in overlapping_pairs([net for _, net, _ in named]):
        (name_a, net_a, _), (name_b, net_b, raw_b) = named[i], named[j]
        if any(name_a == outer and name_b.startswith(inner) for outer, inner in NESTED_BY_DESIGN):
            continue
        yield w.problem(f"{net_b} overlaps {name_a} ({net_a})", None, name_b, raw_b)
    for i, link in enumerate(inv.wan_links):
        if link.subnet is not None and not link.subnet.subnet_of(pools.wan):
            yield w.problem(f"subnet {link.subnet} is outside the WAN pool {pools.wan}", None,
                            f"wan_links[{link.name}].subnet", w.global_var("wan_links", i, "subnet"))


def _link_ends(inv: Inventory, w: _Where) -> Iterator[tuple[str, LinkEnd, Any]]:
    for i, link in enumerate(inv.wan_links):
        for side in ("a", "b"):
            yield f"wan_links[{link.name}].{side}", getattr(link, side), w.global_var("wan_links", i, side)
    for i, lan in enumerate(inv.lan_links):
        for side in ("a", "b"):
            yield f"lan_links[{i}].{side}", getattr(lan, side), w.global_var("lan_links", i, side)
    for d in inv.devices.values():
        peer = inv.devices.get(d.uplink.peer) if d.uplink is not None else None
        if d.uplink is not None and peer is not None and peer.function != ("switches" if d.uplink.switch else "routers"):
            continue  # uplinked to the wrong kind of device: check_device_references says so
        if d.uplink is not None:
            end = LinkEnd(host=d.uplink.peer, interface=d.uplink.port)
            yield f"{d.name}.uplink", end, w.host_var(d.name, "uplink")


def check_link_ends(inv: Inventory, w: _Where) -> Iterator[Problem]:
    used: dict[tuple[str, str], str] = {}
    for label, end, raw in _link_ends(inv, w):
        device = inv.devices.get(end.host)
        if device is None:
            if not w.is_host(end.host):  # a defined host that failed validation was reported already
                yield w.problem(f"unknown host '{end.host}'", None, label, raw)
            continue
        if device.interfaces and end.interface not in device.interfaces:
            yield w.problem(f"{end.host} has no interface '{end.interface}'", None, label, raw)
        key = (end.host, end.ifname)
        if key in used:
            yield w.problem(f"interface {end.host}:{end.ifname} is already used by {used[key]}", None, label, raw)
        else:
            used[key] = label
    for i, link in enumerate(inv.wan_links):
        if link.a.host == link.b.host:
            yield w.problem("both ends are on the same host", None, f"wan_links[{link.name}]",
                            w.global_var("wan_links", i))
    names: set[str] = set()
    for i, link in enumerate(inv.wan_links):
        if link.name in names:
            yield w.problem(f"duplicate link name '{link.name}'", None, f"wan_links[{link.name}]",
                            w.global_var("wan_links", i, "name"))
        names.add(link.name)


def check_device_references(inv: Inventory, w: _Where) -> Iterator[Problem]:
    for d in inv.devices.values():
        for index, ssid in enumerate(d.ssids):
            # A profile that exists but failed validation was reported already; say it once.
            if ssid not in inv.ssid_profiles and not w.defines("ssid_profiles", ssid):
                yield w.problem(f"SSID profile '{ssid}' is not defined in ssid_profiles", d.name, "ssids",
                                w.host_var(d.name, "ssids", index))
        if d.lan_interface and d.interfaces and d.lan_interface not in d.interfaces:
            yield w.problem(f"no interface '{d.lan_interface}' in interfaces", d.name, "lan_interface",
                            w.host_var(d.name, "lan_interface"))
        if d.function == "access_points" and d.uplink is None:
            yield w.problem("an access point needs an uplink (switch and port)", d.name, "uplink",
                            w.host_var(d.name, "ansible_host"))
        if d.uplink is not None and d.uplink.switch in inv.devices and \
                inv.devices[d.uplink.switch].function != "switches":
            yield w.problem(f"uplink '{d.uplink.switch}' is not in group switches", d.name, "uplink.switch",
                            w.host_var(d.name, "uplink"))
        if d.uplink is not None and d.uplink.router in inv.devices and \
                inv.devices[d.uplink.router].function != "routers":
            yield w.problem(f"uplink '{d.uplink.router}' is not in group routers", d.name, "uplink.router",
                            w.host_var(d.name, "uplink"))


def check_ssid_profiles(inv: Inventory, w: _Where) -> Iterator[Problem]:
    for p in inv.ssid_profiles.values():
        raw = w.global_var("ssid_profiles", p.name)
        if p.security in ("wpa2-psk", "wpa3-sae") and p.psk is None:
            yield w.problem(f"{p.security} needs a psk (from Vault)", None, f"ssid_profiles.{p.name}.psk", raw)
        if p.security == "wpa2-enterprise" and p.radius is None:
            yield w.problem("wpa2-enterprise needs a radius server", None, f"ssid_profiles.{p.name}.radius", raw)
        if p.security == "open" and p.psk is not None:
            yield w.problem("an open SSID has no key: remove psk (or choose wpa2-psk)", None,
                            f"ssid_profiles.{p.name}.psk", w.global_var("ssid_profiles", p.name, "psk"))
        if inv.vlans and p.vlan not in inv.vlans and not w.defines("vlans", p.vlan):  # invalid: reported already
            yield w.problem(f"VLAN {p.vlan} is not defined in vlans", None, f"ssid_profiles.{p.name}.vlan",
                            w.global_var("ssid_profiles", p.name, "vlan"))


# System accounts' names: a staff login must never be one (roles/dz_users refuses them too, from its
# own list dz_users_reserved, which tests/inventory keeps equal to this one).
RESERVED_LOGINS = (
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "systemd-*", "_*", "Debian-*", "messagebus", "sshd", "frr",
    "frrvty", "hostapd", "lldpd", "postfix", "ntp", "chrony", "dnsmasq", "statd", "tss", "uuidd", "polkitd",
)


def reserved_login(login: str) -> bool:
    """Whether a login is a system account's name.

    >>> reserved_login("backup"), reserved_login("systemd-network"), reserved_login("karma")
    (True, True, False)
    """
    import fnmatch

    return any(fnmatch.fnmatchcase(login, pattern) for pattern in RESERVED_LOGINS)


def check_users(inv: Inventory, w: _Where) -> Iterator[Problem]:
    logins: set[str] = set()
    service = {d.username for d in inv.devices.values() if d.username}
    for i, user in enumerate(inv.users):
        raw = w.global_var("users", i)
        if reserved_login(user.login) or user.login in service:
            yield w.problem(f"login '{user.login}' is a system or service account's name: staff need their own",
                            None, f"users[{user.login}].login", w.global_var("users", i, "login"))
        if user.role not in inv.user_roles:
            yield w.problem(f"unknown role '{user.role}' (known: {', '.join(sorted(inv.user_roles))})", None,
                            f"users[{user.login}].role", w.global_var("users", i, "role"))
        if user.login in logins:
            yield w.problem(f"duplicate login '{user.login}'", None, f"users[{user.login}]", raw)
        logins.add(user.login)
    for name, role in inv.user_roles.items():
        for group in role.groups:
            if group not in inv.groups:
                yield w.problem(f"group '{group}' is not defined in hosts.yml", None,
                                f"user_roles.{name}.groups", w.global_var("user_roles", name, "groups"))


def ssh_key_problem(key: str) -> str | None:
    """Why an OpenSSH public key line is unusable, or None; the schema only checks its shape.

    >>> ssh_key_problem("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/Llt0iyBP77jez5xKq9aSSWUlWE/AvkKjKr2nJ k")
    >>> ssh_key_problem("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/L k")
    'key data is truncated or corrupt'
    >>> ssh_key_problem("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/Llt0iyBP77jez5xKq9aSSWUlWE/AvkKjKr2nJ k")
    'key data is a ssh-ed25519 key, not ssh-rsa'
    """
    import base64
    import binascii
    import struct

    parts = key.split()
    if len(parts) < 2:
        return "not an OpenSSH public key line"
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        algorithm = blob[4:4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        return "key data is not valid base64 of an SSH key"
    if length > len(blob) - 4 or not algorithm:
        return "key data is truncated or corrupt"
    if algorithm != parts[0]:
        return f"key data is a {algorithm} key, not {parts[0]}"
    if algorithm == "ssh-ed25519" and len(blob) != 4 + length + 4 + 32:
        return "key data is truncated or corrupt"
    if algorithm == "ssh-rsa" and len(blob) < 4 + length + 4 + 1 + 4 + 256:  # RSA under 2048 bits
        return "key data is truncated, corrupt or an RSA key under 2048 bits"
    return None


# crypt(5) hashes the accounts' systems accept: yescrypt, SHA-512/256 crypt, bcrypt; $9$ for IOS.
PASSWORD_HASH_PREFIXES = ("$y$", "$6$", "$5$", "$2b$", "$2y$", "$9$")


def check_user_credentials(inv: Inventory, w: _Where) -> Iterator[Problem]:
    for i, user in enumerate(inv.users):
        for k, key in enumerate(user.ssh_keys):
            reason = ssh_key_problem(key)
            if reason:
                yield w.problem(f"bad SSH public key: {reason}", None, f"users[{user.login}].ssh_keys[{k}]",
                                w.global_var("users", i, "ssh_keys"))
        if user.password_hash is not None:
            value = user.password_hash.get_secret_value()
            if not value.startswith(PASSWORD_HASH_PREFIXES) or len(value) < 20:
                # The value itself is never printed: it may be a clear password typed by mistake.
                yield w.problem("password_hash must be a crypt hash ($y$, $6$, ...; $9$ for IOS), "
                                "never a clear password (e.g. `openssl passwd -6`, kept in Vault)", None,
                                f"users[{user.login}].password_hash", w.global_var("users", i))


# hostapd runs one BSS per radio interface (driver=none cannot add a second BSS to one): see dzops.plan.ap.
RADIO_PREFIX = "wlan"
POINT_TO_POINT_PREFIXES = (30, 31)


def check_radios(inv: Inventory, w: _Where) -> Iterator[Problem]:
    for d in inv.devices.values():
        if d.function != "access_points" or d.platform != "hostapd":
            continue
        radios = [name for name in d.interfaces if name.startswith(RADIO_PREFIX)]
        # an undefined profile is reported as such; once it is fixed the count is what matters
        if len([s for s in d.ssids if w.defines("ssid_profiles", s)]) > len(radios):
            # The first SSID without a radio: remove it there, or add a wlanN to interfaces.
            yield w.problem(f"serves {len(d.ssids)} SSID(s) but has {len(radios)} radio interface(s) "
                            f"({RADIO_PREFIX}N in interfaces): hostapd needs one per SSID", d.name,
                            f"ssids[{len(radios)}]", w.host_var(d.name, "ssids", len(radios)))


def check_wan_subnets(inv: Inventory, w: _Where) -> Iterator[Problem]:
    pools = inv.address_pools
    if pools.wan.prefixlen > pools.wan_subnet_size:
        yield w.problem(f"the WAN pool {pools.wan} is smaller than one /{pools.wan_subnet_size} link subnet",
                        None, "address_pools.wan", w.global_var("address_pools", "wan"))
    for i, link in enumerate(inv.wan_links):
        if link.subnet is not None and link.subnet.prefixlen not in POINT_TO_POINT_PREFIXES:
            yield w.problem(f"subnet {link.subnet} is a /{link.subnet.prefixlen}: a point-to-point link takes a /30 "
                            f"or a /31 (RFC 3021)", None, f"wan_links[{link.name}].subnet",
                            w.global_var("wan_links", i, "subnet"))


def check_ospf(inv: Inventory, w: _Where) -> Iterator[Problem]:
    for d in inv.devices.values():
        if d.ospf_area is not None and d.function != "routers":
            yield w.problem("ospf_area is a router's setting (the area of its LAN and loopback)", d.name,
                            "ospf_area", w.host_var(d.name, "ospf_area"))
    for i, link in enumerate(inv.wan_links):
        for side in ("a", "b"):
            if getattr(link, side).ospf_cost is not None and link.routing.protocol != "ospf":
                yield w.problem("ospf_cost on a link routed statically", None, f"wan_links[{link.name}].{side}",
                                w.global_var("wan_links", i, side))


def check_host_addresses(inv: Inventory, w: _Where) -> Iterator[Problem]:
    """Loopbacks in their pool, LAN addresses in their site's prefix, a gateway for every LAN host."""
    pools = inv.address_pools
    gateway_of_lab = next(pools.management.hosts(), None)
    # A pool or site prefix that overlaps another is reported by check_overlaps: that is the mistake,
    # not every address it leaves outside.
    other_pools = (pools.management, pools.wan, pools.lan)
    loopback_pool_ok = not any(pools.loopback.overlaps(p) for p in other_pools)
    sites = list(inv.sites.values())
    clashing = {k for pair in overlapping_pairs([s.lan_prefix for s in sites]) for k in pair}
    site_ok = {s.name: k not in clashing for k, s in enumerate(sites)}
    for d in inv.devices.values():
        if d.mgmt_address == gateway_of_lab:
            yield w.problem(f"management address {d.mgmt_address} is the management network's gateway (its first "
                            f"address: the lab's host side, a real network's router): pick another", d.name,
                            "ansible_host", w.host_var(d.name, "ansible_host"))
        if d.loopback is not None and loopback_pool_ok and d.loopback.ip not in pools.loopback:
            yield w.problem(f"loopback {d.loopback} is outside the loopback pool {pools.loopback}", d.name,
                            "loopback", w.host_var(d.name, "loopback"))
        site = inv.sites.get(d.site)
        if site is None or not site_ok[site.name]:
            continue  # reported by check_sites or check_overlaps
        lan_names = ([d.lan_interface] if d.lan_interface else []) if d.function == "routers" else list(d.interfaces)
        on_lan = False
        for name in lan_names:
            address = d.interfaces[name].address if name in d.interfaces else None
            if address is None:
                continue
            on_lan = True
            if address.ip not in site.lan_prefix or address.network.prefixlen < site.lan_prefix.prefixlen:
                yield w.problem(f"{name} address {address} is outside site {site.name}'s LAN {site.lan_prefix}",
                                d.name, f"interfaces.{name}.address", w.host_var(d.name, "interfaces", name, "address"))
        if d.gateway is not None and d.gateway not in site.lan_prefix:
            yield w.problem(f"gateway {d.gateway} is outside site {site.name}'s LAN {site.lan_prefix}", d.name,
                            "gateway", w.host_var(d.name, "gateway"))
        elif on_lan and d.function != "routers" and inv.default_gateway(d.name) is None \
                and not w.invalid_hosts_at(inv, site.name):
            yield w.problem(f"no gateway: set `gateway`, or give site {site.name}'s router a lan_interface with an "
                            f"address (hosts beyond this LAN could not be answered)", d.name, "gateway",
                            w.host_var(d.name, "ansible_host"))


def check_data_backups(inv: Inventory, w: _Where) -> Iterator[Problem]:
    """A repository server must be another inventory server; each database and path backed up once."""
    for d in inv.devices.values():
        backup = d.data_backups
        if backup is None:
            continue
        if d.function != "servers":
            yield w.problem("data_backups belong to servers (group servers)", d.name, "data_backups",
                            w.host_var(d.name, "data_backups"))
        for index, repo in enumerate(backup.repositories):
            at = w.host_var(d.name, "data_backups", "repositories", index, "host")
            field = f"data_backups.repositories.{index}.host"
            if repo.host is None:
                continue
            if repo.host == d.name:
                yield w.problem("the repository is on the server it backs up: a lost disk would take both",
                                d.name, field, at)
            elif repo.host not in inv.devices and not w.is_host(repo.host):
                yield w.problem(f"unknown host '{repo.host}'", d.name, field, at)
            elif repo.host in inv.devices and inv.devices[repo.host].function != "servers":
                yield w.problem(f"'{repo.host}' is not in group servers (restic needs SFTP on a Linux server)",
                                d.name, field, at)
        seen: set[tuple[str, str]] = set()
        for index, db in enumerate(backup.databases):
            if (db.engine, db.name) in seen:
                yield w.problem(f"{db.engine} database '{db.name}' is listed twice", d.name,
                                f"data_backups.databases.{index}",
                                w.host_var(d.name, "data_backups", "databases", index, "name"))
            seen.add((db.engine, db.name))
        paths: set[str] = set()
        for index, item in enumerate(backup.paths):
            if item.path in paths:
                yield w.problem(f"path '{item.path}' is listed twice", d.name, f"data_backups.paths.{index}",
                                w.host_var(d.name, "data_backups", "paths", index, "path"))
            if item.path == backup.staging or backup.staging.startswith(item.path.rstrip("/") + "/"):
                yield w.problem(f"path '{item.path}' holds the staging directory {backup.staging}: the dumps "
                                "would be stored twice", d.name, f"data_backups.paths.{index}",
                                w.host_var(d.name, "data_backups", "paths", index, "path"))
            paths.add(item.path)


CHECKS: tuple[Check, ...] = (
    check_platforms, check_sites, check_management_addresses, check_overlaps, check_link_ends,
    check_device_references, check_ssid_profiles, check_users,
    check_user_credentials, check_radios, check_wan_subnets, check_ospf, check_host_addresses,
    check_data_backups,
)


def run_checks(inv: Inventory, loaded: Loaded | None = None) -> list[Problem]:
    where = _Where(loaded)
    return [problem for check in CHECKS for problem in check(inv, where)]
