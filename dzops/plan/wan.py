"""WAN intent: deterministic point-to-point addressing and what each end of each link must carry."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from dzops.bandwidth import OSPF_REFERENCE_MBPS, format_bandwidth, ospf_cost
from dzops.inventory.models import Inventory, LinkEnd, WanLink

# Written as `auto-cost reference-bandwidth` (Mbit/s) so a cost the router computes itself agrees
# with the explicit `ip ospf cost` dzops writes; see dzops.bandwidth for why 10 Gbit/s.
REFERENCE_BANDWIDTH_MBPS = OSPF_REFERENCE_MBPS


def allocate_subnets(links: tuple[WanLink, ...] | list[WanLink], pool: IPv4Network,
                     prefixlen: int = 30) -> dict[str, IPv4Network]:
    """A subnet per link: kept if the inventory has one, else the lowest free one of the pool.

    Links are served in inventory order, so the same inventory always gets the same answer, and
    a subnet already written to the inventory is never handed out again.

    >>> from dzops.inventory.models import WanLink
    >>> def link(name, subnet=None):
    ...     return WanLink(name=name, a={"host": "a", "interface": "e1"}, b={"host": name, "interface": "e0"},
    ...                    provider="BT", circuit_id="C", bandwidth_mbps=10, routing={"protocol": "ospf"},
    ...                    subnet=subnet)
    >>> pool = IPv4Network("10.30.255.0/24")
    >>> {k: str(v) for k, v in sorted(allocate_subnets([link("x"), link("y", "10.30.255.0/30"), link("z")], pool).items())}
    {'x': '10.30.255.4/30', 'y': '10.30.255.0/30', 'z': '10.30.255.8/30'}
    """
    if prefixlen not in (30, 31) or prefixlen < pool.prefixlen:
        from dzops.exceptions import InventoryError, Problem

        raise InventoryError([Problem(f"WAN pool {pool} cannot hold /{prefixlen} link subnets (a link takes a "
                                      f"/30 or a /31)", field="address_pools.wan")])
    taken = [link.subnet for link in links if link.subnet is not None]
    allocation: dict[str, IPv4Network] = {link.name: link.subnet for link in links if link.subnet is not None}
    candidates = pool.subnets(new_prefix=prefixlen)
    for link in links:
        if link.subnet is not None:
            continue
        for candidate in candidates:
            if not any(candidate.overlaps(t) for t in taken):
                allocation[link.name] = candidate
                taken.append(candidate)
                break
        else:
            from dzops.exceptions import InventoryError, Problem

            raise InventoryError([Problem(f"WAN pool {pool} is exhausted", field=f"wan_links[{link.name}].subnet")])
    return allocation


def wan_allocation(inventory: Inventory) -> dict[str, IPv4Network]:
    """Every link's subnet: written ones kept, the others carved from the WAN pool at the pool's size."""
    pools = inventory.address_pools
    return allocate_subnets(inventory.wan_links, pools.wan, pools.wan_subnet_size)


def end_addresses(subnet: IPv4Network) -> tuple[IPv4Interface, IPv4Interface]:
    """The a-end and b-end addresses of a point-to-point subnet (/30: first two hosts; /31: both).

    >>> [str(a) for a in end_addresses(IPv4Network("10.30.255.4/30"))]
    ['10.30.255.5/30', '10.30.255.6/30']
    >>> [str(a) for a in end_addresses(IPv4Network("10.30.255.4/31"))]
    ['10.30.255.4/31', '10.30.255.5/31']
    >>> end_addresses(IPv4Network("10.30.255.4/32"))
    Traceback (most recent call last):
    ...
    ValueError: a point-to-point link needs a /30 or /31, not 10.30.255.4/32
    """
    if subnet.prefixlen > 31:
        raise ValueError(f"a point-to-point link needs a /30 or /31, not {subnet}")
    hosts = list(subnet.hosts())[:2] if subnet.prefixlen < 31 else list(subnet)
    return (IPv4Interface(f"{hosts[0]}/{subnet.prefixlen}"), IPv4Interface(f"{hosts[1]}/{subnet.prefixlen}"))


@dataclass(frozen=True)
class WanEnd:
    """Everything one router must carry for one WAN link: the input of `templates/<platform>/wan_link.j2`."""

    link: str
    host: str
    interface: str  # physical interface
    vlan: int | None
    ifname: str  # interface as configured (with .vlan sub-interface)
    address: IPv4Interface
    description: str
    mtu: int
    bandwidth_kbps: int
    routing: str  # "ospf" or "static"
    ospf_area: int
    far_host: str
    far_address: IPv4Address
    far_lan_prefixes: tuple[IPv4Network, ...]  # static routes point here; also what verify pings
    explicit_ospf_cost: int | None = None  # the inventory's `ospf_cost` for this end, if any

    @property
    def ospf_cost(self) -> int:
        """This end's OSPF cost: the inventory's, else the reference bandwidth over the link's."""
        return self.explicit_ospf_cost or ospf_cost(self.bandwidth_kbps, REFERENCE_BANDWIDTH_MBPS)


def describe(link: WanLink, far: LinkEnd) -> str:
    """Interface description: circuit first (what the provider asks for), then the far end.

    >>> from dzops.inventory.models import WanLink
    >>> l = WanLink(name="hq-talo", a={"host": "hq", "interface": "eth9"}, b={"host": "talo", "interface": "eth0"},
    ...             provider="Bhutan Telecom", circuit_id="BT-PNK-0009", bandwidth="20Mbit", routing={"protocol": "ospf"})
    >>> describe(l, l.b)
    'WAN BT-PNK-0009 Bhutan Telecom 20M to talo eth0'
    >>> describe(l.model_copy(update={"bandwidth_kbps": 512}), l.b)
    'WAN BT-PNK-0009 Bhutan Telecom 512k to talo eth0'
    """
    speed = format_bandwidth(link.bandwidth_kbps, short=True)
    text = f"WAN {link.circuit_id} {link.provider} {speed} to {far.host} {far.ifname}"
    return text.replace("|", "/")  # a '|' breaks FRR's config loading


def site_lan_prefixes(inventory: Inventory, host: str) -> tuple[IPv4Network, ...]:
    device = inventory.devices[host]
    site = inventory.sites.get(device.site)
    return (site.lan_prefix,) if site else ()


def wan_ends(inventory: Inventory, allocation: dict[str, IPv4Network] | None = None) -> dict[str, list[WanEnd]]:
    """Per router, the WAN ends it must carry, in inventory order."""
    allocation = allocation or wan_allocation(inventory)
    ends: dict[str, list[WanEnd]] = {}
    for link in inventory.wan_links:
        a_addr, b_addr = end_addresses(allocation[link.name])
        for near, far, near_addr, far_addr in ((link.a, link.b, a_addr, b_addr), (link.b, link.a, b_addr, a_addr)):
            ends.setdefault(near.host, []).append(WanEnd(
                link=link.name, host=near.host, interface=near.interface, vlan=near.vlan, ifname=near.ifname,
                address=near_addr, description=describe(link, far), mtu=link.mtu,
                bandwidth_kbps=link.bandwidth_kbps, routing=link.routing.protocol, ospf_area=link.routing.area,
                far_host=far.host, far_address=far_addr.ip, far_lan_prefixes=site_lan_prefixes(inventory, far.host),
                explicit_ospf_cost=near.ospf_cost,
            ))
    return ends


@dataclass(frozen=True)
class WanPlan:
    """What a provision-wan run intends: the links it works on and each router's whole candidate."""

    scope: tuple[str, ...]  # links this run provisions
    allocation: dict[str, IPv4Network]
    ends: dict[str, list[WanEnd]]  # only links that are (or are being) provisioned
    candidates: dict[str, str]  # router -> whole intended frr.conf (replace-capable platforms)

    def hosts(self) -> list[str]:
        return sorted(self.candidates)


def links_in_scope(inventory: Inventory, names: list[str] | None = None, site: str | None = None) -> list[str]:
    """Link names selected by name, by site (either end at the site) or all of them."""
    if names:
        known = {link.name for link in inventory.wan_links}
        unknown = [n for n in names if n not in known]
        if unknown:
            from dzops.exceptions import UsageError

            raise UsageError(f"unknown WAN link(s): {', '.join(unknown)} (see wan_links in the inventory)")
        return list(names)
    if site:
        return [link.name for link in inventory.wan_links
                if site in (inventory.devices[link.a.host].site, inventory.devices[link.b.host].site)]
    return [link.name for link in inventory.wan_links]


def running_stanzas(config: str, ifname: str, far_address: str) -> list[str]:
    r"""The running config's lines for one link end: its interface block and static routes via the far end.

    >>> cfg = "hostname r\ninterface eth1\n ip address 10.0.0.1/30\nexit\n!\ninterface eth2\n ip address 10.0.0.5/30\nexit\nip route 10.31.1.0/24 10.0.0.2\n"
    >>> running_stanzas(cfg, "eth1", "10.0.0.2")
    ['interface eth1', ' ip address 10.0.0.1/30', 'exit', 'ip route 10.31.1.0/24 10.0.0.2']
    """
    lines = config.splitlines()
    kept: list[str] = []
    inside = False
    for line in lines:
        if line == f"interface {ifname}":
            inside = True
        if inside:
            kept.append(line)
            if line == "exit":
                inside = False
        elif line.startswith("ip route ") and line.split()[-1] == far_address:
            kept.append(line)
    return kept


def intended_router_configs(inventory: Inventory, hosts: Iterable[str]) -> dict[str, str]:
    """The whole intended frr.conf of each FRR router among `hosts`: what drift compares with and
    `drift --remediate` applies.

    Every declared link is in place, written back or not: its subnet is the deterministic
    allocation, the same `lab up --configured` renders and provision-wan writes back once verified.
    """
    from dzops.plan.intended import frr_config
    from dzops.platforms import PLATFORMS

    ends = wan_ends(inventory)
    return {host: frr_config(inventory, inventory.devices[host], ends) for host in hosts
            if PLATFORMS[inventory.devices[host].platform].config_syntax == "frr"
            and inventory.devices[host].function == "routers"}


def plan_wan(inventory: Inventory, scope: list[str], exclude: set[str] | frozenset[str] = frozenset(),
             running: dict[str, str] | None = None) -> WanPlan:
    """Candidates for the routers at either end of the links in scope.

    A router's candidate carries the links in scope plus the links already provisioned (those
    with a subnet in the inventory), so a run on one link never removes another. Any other link
    of the router (excluded from this run, or declared but neither provisioned nor in scope)
    keeps its current stanza from `running` (host -> saved running config): a run never tears
    down a circuit it could not check, nor one that is intended but not its business (a lab
    built `--configured` carries every declared link before any subnet is written back).
    """
    from dzops.plan.intended import frr_config
    from dzops.platforms import PLATFORMS

    active_scope = [name for name in scope if name not in exclude]
    allocation = wan_allocation(inventory)
    active = set(active_scope) | {link.name for link in inventory.wan_links if link.subnet is not None}
    active -= set(exclude)
    all_ends = wan_ends(inventory, allocation)
    ends = {host: [e for e in host_ends if e.link in active] for host, host_ends in all_ends.items()}
    # Only routers with a link this run works on get a candidate: a router whose every link was
    # excluded is left exactly as it is.
    hosts = {end.host for name in active_scope for end in (inventory.wan_link(name).a, inventory.wan_link(name).b)}
    kept: dict[str, list[str]] = {}
    for host in sorted(hosts):
        for end in all_ends.get(host, []):
            if end.link not in active and running and host in running:
                kept.setdefault(host, []).extend(running_stanzas(running[host], end.ifname, str(end.far_address)))
    candidates = {
        host: frr_config(inventory, inventory.devices[host], ends, kept.get(host, []))
        for host in sorted(hosts)
        if PLATFORMS[inventory.devices[host].platform].config_syntax == "frr"
    }
    # NAPALM platforms (IOS, RouterOS): the whole candidate is built on the running config, whose
    # parts the inventory does not describe it keeps; a link not active here is not owned, so its
    # interface stays as it runs. Without the running config (not read) there is no candidate.
    from dzops.plan.candidates import CANDIDATE_PLATFORMS, candidate

    for host in sorted(hosts):
        device = inventory.devices[host]
        if device.platform in CANDIDATE_PLATFORMS and running and host in running:
            candidates[host] = candidate(inventory, device, running[host], ends.get(host, []), parts=["wan"])
    return WanPlan(scope=tuple(active_scope), allocation=allocation, ends=ends, candidates=candidates)
