"""The network as declared (inventory) merged with the network as seen (discovery). Pure.

Every link gets one status:

- ``confirmed``: declared in the inventory and seen;
- ``declared-not-seen``: declared, and at least one end was discovered, but the link was not seen;
- ``seen-not-declared``: seen, but no wan_links / lan_links / AP uplink declares it;
- ``unverified``: declared, but neither end could be discovered (unreachable, or a platform
  without a discovery recipe): nothing can be said about it.

"Seen" is decided from one discovery snapshot, without waiting for LLDP to age out (TTL 120 s):
a link is seen when every discovered end reports an LLDP neighbour that is the other end (same
system name and port) AND has its interface operationally up (carrier). When only one end could
be discovered, that end's LLDP entry and carrier decide. So a cut cable is "not seen" at once,
although the far end's LLDP entry lingers until its TTL expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from dzops.execute.discover import DeviceDiscovery
from dzops.inventory.models import Inventory

LinkStatus = Literal["confirmed", "declared-not-seen", "seen-not-declared", "unverified"]
LinkKind = Literal["wan", "lan", "uplink", "undeclared"]
STATUSES: tuple[LinkStatus, ...] = ("confirmed", "declared-not-seen", "seen-not-declared", "unverified")

End = tuple[str, str]  # (host, interface)


@dataclass
class Node:
    name: str
    site: str  # "" for a neighbour the inventory does not know
    function: str = "unknown"
    platform: str = ""
    role: str = ""
    mgmt_address: str = ""
    declared: bool = True
    discovery: str = "not-run"  # the device's discovery status
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Link:
    a: End
    b: End
    kind: LinkKind
    status: LinkStatus = "unverified"
    name: str = ""  # WAN link name
    circuit_id: str = ""
    provider: str = ""
    bandwidth_mbps: int | None = None
    subnet: str = ""
    a_addresses: list[str] = field(default_factory=list)
    b_addresses: list[str] = field(default_factory=list)
    # each end's explicit OSPF cost (the inventory's ospf_cost), else the bandwidth decides
    a_ospf_cost: int | None = None
    b_ospf_cost: int | None = None

    @property
    def key(self) -> frozenset[End]:
        return frozenset((self.a, self.b))

    @property
    def id(self) -> str:
        """A stable identifier: the two ends, sorted.

        >>> Link(("r2", "eth0"), ("r1", "eth1"), "wan").id
        'r1:eth1--r2:eth0'
        """
        first, second = sorted((self.a, self.b))
        return f"{first[0]}:{first[1]}--{second[0]}:{second[1]}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["id"] = self.id
        return data


@dataclass
class Topology:
    title: str
    sites: dict[str, str]  # site name -> title, in inventory order
    nodes: dict[str, Node]
    links: list[Link]
    hub: str = ""  # the HQ site (kind hq): diagrams lay the WAN out by distance from it
    # a site view's whole network: which link is a site's primary path is only known there
    network: Topology | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "sites": self.sites,
                "nodes": [asdict(n) for n in self.nodes.values()],
                "links": [link.to_dict() for link in self.links]}

    def counts(self) -> dict[str, int]:
        return {status: sum(1 for link in self.links if link.status == status) for status in STATUSES}


def declared_links(inventory: Inventory) -> list[Link]:
    """Every cable the inventory declares: WAN circuits, campus links and AP uplinks.

    Mirrors `dzops.lab.from_inventory.lab_links` (the lab cables exactly these), without
    importing the lab into the report layer.
    """
    links = [Link((w.a.host, w.a.ifname), (w.b.host, w.b.ifname), "wan", name=w.name, circuit_id=w.circuit_id,
                  provider=w.provider, bandwidth_mbps=w.bandwidth_mbps, subnet=str(w.subnet or ""),
                  a_ospf_cost=w.a.ospf_cost, b_ospf_cost=w.b.ospf_cost)
             for w in inventory.wan_links]
    links += [Link((c.a.host, c.a.ifname), (c.b.host, c.b.ifname), "lan") for c in inventory.lan_links]
    for device in inventory.devices.values():
        if device.uplink is not None:
            links.append(Link((device.name, device.uplink.interface),
                              (device.uplink.peer, device.uplink.port), "uplink"))
    return links


def observed_ends(found: Mapping[str, DeviceDiscovery]) -> dict[End, End]:
    """(host, interface) -> the (system, port) its LLDP reports, for interfaces with carrier.

    >>> from dzops.execute.discover import DeviceDiscovery, InterfaceState, LldpNeighbor
    >>> d = DeviceDiscovery("r1", lldp=[LldpNeighbor("eth1", "r2", "eth0"), LldpNeighbor("eth2", "r3", "eth0")],
    ...                     interfaces={"eth1": InterfaceState("eth1", True), "eth2": InterfaceState("eth2", False)})
    >>> observed_ends({"r1": d})
    {('r1', 'eth1'): ('r2', 'eth0')}
    """
    seen: dict[End, End] = {}
    for host, d in found.items():
        if not d.discovered:
            continue
        for n in d.lldp:
            state = d.interfaces.get(n.interface)
            if state is not None and state.up:
                seen[(host, n.interface)] = (n.system, n.port)
    return seen


def link_seen(a: End, b: End, seen: Mapping[End, End], discovered: Iterable[str]) -> bool | None:
    """Whether a cable between a and b is seen; None when neither end was discovered.

    >>> seen = {("r1", "eth1"): ("r2", "eth0"), ("r2", "eth0"): ("r1", "eth1"), ("r3", "eth0"): ("r1", "eth2")}
    >>> link_seen(("r1", "eth1"), ("r2", "eth0"), seen, {"r1", "r2"})
    True
    >>> link_seen(("r1", "eth2"), ("r3", "eth0"), seen, {"r1", "r3"})  # r1's end is down or silent
    False
    >>> link_seen(("r1", "eth2"), ("r3", "eth0"), seen, {"r3"})  # only r3 answered: its word counts
    True
    >>> link_seen(("x", "e0"), ("y", "e0"), seen, {"r1"}) is None
    True
    """
    discovered = set(discovered)
    ends = [(end, other) for end, other in ((a, b), (b, a)) if end[0] in discovered]
    if not ends:
        return None
    return all(seen.get(end) == other for end, other in ends)


def _addresses(found: Mapping[str, DeviceDiscovery], end: End) -> list[str]:
    d = found.get(end[0])
    state = d.interfaces.get(end[1]) if d is not None and d.discovered else None
    return [a for a in state.addresses if ":" not in a] if state is not None else []


def build_topology(inventory: Inventory, found: Mapping[str, DeviceDiscovery]) -> Topology:
    """Declared links classified against what discovery saw, plus the undeclared links it saw."""
    nodes: dict[str, Node] = {}
    for device in inventory.devices.values():
        d = found.get(device.name)
        nodes[device.name] = Node(device.name, device.site, device.function, device.platform, device.device_role,
                                  str(device.mgmt_address), True, d.status if d else "not-run",
                                  dict(d.facts) if d and d.discovered else {})
    discovered = {h for h, d in found.items() if d.discovered}
    seen = observed_ends(found)
    links = declared_links(inventory)
    declared_keys = {link.key for link in links}
    for link in links:
        verdict = link_seen(link.a, link.b, seen, discovered)
        link.status = "unverified" if verdict is None else ("confirmed" if verdict else "declared-not-seen")
    extra: dict[frozenset[End], Link] = {}
    for end, other in sorted(seen.items()):
        key = frozenset((end, other))
        if key in declared_keys or key in extra:
            continue
        if link_seen(end, other, seen, discovered):
            extra[key] = Link(end, other, "undeclared", "seen-not-declared")
            if other[0] not in nodes:
                nodes[other[0]] = Node(other[0], "", declared=False, discovery="not-in-inventory")
    links += sorted(extra.values(), key=lambda link: link.id)
    for link in links:
        link.a_addresses, link.b_addresses = _addresses(found, link.a), _addresses(found, link.b)
    sites = {name: site.title for name, site in inventory.sites.items()}
    hub = next((name for name, site in inventory.sites.items() if site.kind == "hq"), "")
    return Topology(f"{inventory.dzongkhag.name} Dzongkhag", sites, nodes, links, hub)


def site_view(topology: Topology, site: str) -> Topology:
    """The devices of one site, its links, and the far ends of links that leave it."""
    inside = {n for n, node in topology.nodes.items() if node.site == site}
    links = [link for link in topology.links if link.a[0] in inside or link.b[0] in inside]
    names = inside | {end[0] for link in links for end in (link.a, link.b)}
    nodes = {n: node for n, node in topology.nodes.items() if n in names}
    sites = {s: title for s, title in topology.sites.items() if any(node.site == s for node in nodes.values())}
    return Topology(f"{topology.title}: {topology.sites.get(site, site)}", sites, nodes, links, topology.hub,
                    topology.network or topology)
