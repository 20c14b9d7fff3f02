"""WAN intent: deterministic point-to-point addressing and what each end of each link must carry."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from dzops.bandwidth import OSPF_REFERENCE_MBPS, format_bandwidth, ospf_cost
from dzops.inventory.models import Device, Inventory, LinkEnd, WanLink

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


# -- the goal: each gewog LAN reaches the HQ servers ---------------------------------------------

@dataclass(frozen=True)
class Hop:
    """One address on the way from a gewog LAN to an HQ server; it answers pings once the path is up to it."""

    host: str
    address: IPv4Address
    role: str  # "WAN <link>", "gateway of <server>" or "server"

    def __str__(self) -> str:
        return f"{self.host} {self.address} ({self.role})"


@dataclass(frozen=True)
class GoalCheck:
    """What one gewog router's LAN must reach at HQ: one server's ping and its declared TCP services."""

    router: str
    source: IPv4Address  # the router's LAN address: replies must find their way back to the LAN
    server: str
    target: IPv4Address  # the server's address on its site LAN
    ports: tuple[int, ...]  # from the server's tcp, tls and http health checks
    path: tuple[Hop, ...]  # from the gewog outwards, the server last

    @property
    def label(self) -> str:
        what = ", ".join(["ping", *(f"tcp/{p}" for p in self.ports)])
        return f"{self.server} {self.target} ({what})"


def health_check_ports(device: Device) -> tuple[int, ...]:
    """TCP ports of a server's declared health checks (dns is UDP and is left out).

    The checks' hosts are dzops' own view (often the management address, which no gewog
    reaches); from a gewog the service is reached at the server's LAN address on the same port.

    >>> from dzops.inventory.models import HealthCheck
    >>> checks = [HealthCheck(kind="tcp", target="10.0.0.2:22"), HealthCheck(kind="http", target="https://files.example/"),
    ...           HealthCheck(kind="http", target="http://10.0.0.2:8080/x"), HealthCheck(kind="dns", target="10.0.0.2", query="a.example")]
    >>> health_check_ports(Device(name="s", site="hq", function="servers", platform="debian", device_role="x",
    ...                           mgmt_address="10.0.0.2", health_checks=checks))
    (22, 443, 8080)
    """
    from urllib.parse import urlsplit

    ports: list[int] = []
    for check in device.health_checks:
        if check.kind in ("tcp", "tls"):
            port = int(check.target.rsplit(":", 1)[1]) if ":" in check.target else None
        elif check.kind == "http":
            url = urlsplit(check.target)
            port = url.port or (443 if url.scheme == "https" else 80)
        else:
            port = None
        if port is not None and port not in ports:
            ports.append(port)
    return tuple(ports)


def shortest_paths(ends: dict[str, list[WanEnd]], origin: str) -> dict[str, tuple[int, tuple[WanEnd, ...]]]:
    """Router -> (OSPF cost, the WAN ends left through) on the cheapest way from `origin`, as OSPF picks it.

    Each step costs what the end it leaves through costs (OSPF adds outgoing interface costs);
    ties go to fewer hops, then to the links' names, so the answer never varies.
    """
    import heapq

    best: dict[str, tuple[int, tuple[WanEnd, ...]]] = {}
    queue: list[tuple[int, int, tuple[str, ...], str, tuple[WanEnd, ...]]] = [(0, 0, (), origin, ())]
    while queue:
        cost, hops, rank, host, path = heapq.heappop(queue)
        if host in best:
            continue
        best[host] = (cost, path)
        for end in ends.get(host, []):
            if end.far_host not in best:
                heapq.heappush(queue, (cost + end.ospf_cost, hops + 1, (*rank, end.link), end.far_host,
                                       (*path, end)))
    return best


def _lan_address(inventory: Inventory, device: Device) -> IPv4Address | None:
    """A device's address on its site LAN (a router's LAN interface; a server's address in the site prefix)."""
    site = inventory.sites.get(device.site)
    if device.lan_interface:
        interface = device.interfaces.get(device.lan_interface)
        return interface.address.ip if interface and interface.address else None
    for interface in device.interfaces.values():
        if interface.address is not None and (site is None or interface.address.ip in site.lan_prefix):
            return interface.address.ip
    return None


def goal_checks(inventory: Inventory, allocation: dict[str, IPv4Network] | None = None) -> dict[str, list[GoalCheck]]:
    """Per gewog router, what its LAN must reach: every server at an HQ site, and the hops on the way.

    The path follows the declared WAN links at their allocated addresses and OSPF costs (the path
    traffic takes with every link up), through the server's site router to the server's gateway.
    """
    ends = wan_ends(inventory, allocation)
    servers = [d for d in inventory.devices.values() if d.function == "servers"
               and (site := inventory.sites.get(d.site)) is not None and site.kind == "hq"]
    out: dict[str, list[GoalCheck]] = {}
    for router in inventory.devices.values():
        site = inventory.sites.get(router.site)
        source = _lan_address(inventory, router)
        if router.function != "routers" or site is None or site.kind != "gewog" or source is None:
            continue
        reach = shortest_paths(ends, router.name)
        for server in servers:
            target, hq_router = _lan_address(inventory, server), inventory.site_router(server.site)
            if target is None or hq_router is None or hq_router.name not in reach:
                continue
            path = [Hop(e.far_host, e.far_address, f"WAN {e.link}") for e in reach[hq_router.name][1]]
            gateway = inventory.default_gateway(server.name)
            if gateway is not None:
                owner = next((d.name for d in inventory.devices.values() if _lan_address(inventory, d) == gateway),
                             "gateway")
                path.append(Hop(owner, gateway, f"gateway of {server.name}"))
            path.append(Hop(server.name, target, "server"))
            out.setdefault(router.name, []).append(GoalCheck(
                router=router.name, source=source, server=server.name, target=target,
                ports=health_check_ports(server), path=tuple(path)))
    return out


def gewog_behind(inventory: Inventory, link: str, ends: dict[str, list[WanEnd]] | None = None) -> str | None:
    """The gewog router a link serves: its end farther from HQ (by OSPF cost), if that end is a gewog router.

    One goal check per gewog: the links that serve the same gewog share it.
    """
    ends = ends if ends is not None else wan_ends(inventory)
    wan_link = inventory.wan_link(link)
    hq_routers = [r.name for s in inventory.sites.values() if s.kind == "hq"
                  and (r := inventory.site_router(s.name)) is not None]
    if not hq_routers:
        return None
    distance: dict[str, int] = {}
    for hq in hq_routers:
        for host, (cost, _path) in shortest_paths(ends, hq).items():
            distance[host] = min(cost, distance.get(host, cost))
    far = max((wan_link.a.host, wan_link.b.host), key=lambda h: (distance.get(h, -1), h == wan_link.b.host))
    device = inventory.devices[far]
    site = inventory.sites.get(device.site)
    return far if device.function == "routers" and site is not None and site.kind == "gewog" else None


def first_failing_hop(path: Iterable[Hop], answers: Callable[[Hop], bool]) -> Hop | None:
    """The first hop on the path that does not answer (asked in order, none after it); None if all answer.

    >>> from ipaddress import IPv4Address as A
    >>> path = [Hop("agg", A("10.0.0.0"), "WAN a"), Hop("hq", A("10.0.0.2"), "WAN b"), Hop("srv", A("10.1.0.9"), "server")]
    >>> asked = []
    >>> str(first_failing_hop(path, lambda h: asked.append(h.host) or h.host != "hq")), asked
    ('hq 10.0.0.2 (WAN b)', ['agg', 'hq'])
    """
    for hop in path:
        if not answers(hop):
            return hop
    return None
