"""One `dzops health` run on devices: logins, WAN links, site LANs, servers, services, APs.

Every device gets one SSH session (through its platform's driver, so FRR routers are checked
for the access role as every command does). Routers measure their links from both ends with
the stock `ping -c N -W 1 -I <own address>` on their shell login and read
`show ip ospf neighbor json`; HQ's router pings each site's LAN gateway from HQ's own LAN
address, so a reply proves the LAN-to-LAN path both ways. Servers report disk, memory and load
from stock files; their declared services (TCP, HTTP, TLS, DNS) are checked from this machine,
where the officer's users come from. APs answer `hostapd_cli status` per SSID.

A check that cannot run is a result (down, with why), never an exception of the run.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from dzops.exceptions import DzopsError, NotOnboarded
from dzops.execute.drivers import driver_for
from dzops.execute.drivers.frr import ACCESS_MARKER, error_lines
from dzops.execute.fanout import fan_out
from dzops.execute.ssh import MAX_CHANNELS, Pending, Progress, Session, credentials
from dzops.inventory.models import Device, HealthCheck, Inventory
from dzops.plan.health import Check, Result, Status, hq_site
from dzops.plan.wan import end_addresses, wan_allocation

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0  # a service that does not answer within this is down
DEGRADED_LOSS = 0.0  # any loss on a link is worth a look; 100 % is down


# --- pure parsers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PingStats:
    sent: int
    received: int
    rtt_avg_ms: float | None

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0


def parse_ping(output: str) -> PingStats:
    """iputils ping's summary lines.

    >>> parse_ping("5 packets transmitted, 4 received, 20% packet loss, time 4005ms\\n"
    ...            "rtt min/avg/max/mdev = 0.041/0.062/0.090/0.017 ms\\n")
    PingStats(sent=5, received=4, rtt_avg_ms=0.062)
    >>> parse_ping("3 packets transmitted, 0 received, 100% packet loss, time 2030ms\\n").loss
    1.0
    """
    counts = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", output)
    rtt = re.search(r"= [\d.]+/([\d.]+)/", output)
    sent, received = (int(counts.group(1)), int(counts.group(2))) if counts else (0, 0)
    return PingStats(sent, received, float(rtt.group(1)) if rtt else None)


def ospf_states(text: str) -> dict[str, str]:
    """Neighbour interface address -> state ('Full', 'Init', ...) from `show ip ospf neighbor json`.

    >>> ospf_states('{"neighbors": {"10.30.254.2": [{"nbrState": "Full/-", "ifaceAddress": "10.30.255.2"}]}}')
    {'10.30.255.2': 'Full'}
    """
    data = json.loads(text or "{}")
    out = {}
    for entries in data.get("neighbors", {}).values():
        for entry in entries if isinstance(entries, list) else [entries]:
            state = entry.get("nbrState") or entry.get("state") or ""
            address = entry.get("ifaceAddress") or entry.get("address")
            if address:
                out[address] = state.split("/")[0]
    return out


def parse_resources(output: str) -> dict[str, float]:
    """The `=DF`/`=MEM`/`=LOAD`/`=CPUS` sections of the server probe: worst disk %, memory %, load per CPU.

    >>> out = ("=DF\\nFilesystem 1024-blocks Used Available Capacity Mounted on\\n/dev/sda1 100 91 9 91% /\\n"
    ...        "=MEM\\nMemTotal: 1000 kB\\nMemAvailable: 250 kB\\n=LOAD\\n0.50 1.00 0.80 1/100 42\\n=CPUS\\n2\\n")
    >>> parse_resources(out)
    {'disk_percent': 91.0, 'disk_mount': '/', 'memory_percent': 75.0, 'load_per_cpu': 0.5}
    """
    sections: dict[str, list[str]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("="):
            current = line[1:].strip()
            sections[current] = []
        elif current:
            sections[current].append(line)
    worst, mount = 0.0, ""
    for line in sections.get("DF", [])[1:]:
        words = line.split()
        if len(words) >= 6 and words[4].endswith("%") and words[4][:-1].isdigit() and float(words[4][:-1]) >= worst:
            worst, mount = float(words[4][:-1]), words[5]
    mem = {k.strip(): float(v.split()[0]) for k, _, v in (line.partition(":") for line in sections.get("MEM", []))
           if v.strip()}
    total = mem.get("MemTotal", 0.0)
    memory = round(100 * (1 - mem.get("MemAvailable", total) / total), 1) if total else 0.0
    load = sections.get("LOAD", ["0 0 0"])[0].split()
    cpus = int((sections.get("CPUS") or ["1"])[0].strip() or 1)
    return {"disk_percent": worst, "disk_mount": mount, "memory_percent": memory,  # type: ignore[dict-item]
            "load_per_cpu": round(float(load[1]) / max(cpus, 1), 2)}


def ping_jobs(requests: list[tuple[str, str]], count: int, *, together: bool = True, wait_s: int = 1,
              first: int = 0) -> list[str]:
    """Shell jobs pinging each (source, target), each answer under `=PING i` (i counts from `first`)."""
    jobs = []
    for index, (source, target) in enumerate(requests, first):
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(wait_s), "-I", str(IPv4Address(source)),
                str(IPv4Address(target))]  # addresses only: never a word ping could read as an option
        jobs.append(f"( out=$({' '.join(shlex.quote(a) for a in argv)} 2>&1); "
                    f"printf '=PING {index}\\n%s\\n' \"$out\" ) {'&' if together else ';'}")
    return jobs


def ping_script(requests: list[tuple[str, str]], count: int, *, together: bool = True, wait_s: int = 1) -> str:
    """One shell command running every (source, target) ping at once, each answer under `=PING i`.

    One exec channel per router whatever its number of links: an HQ hub with fifty links pings
    them all in the time of one (each block is one short printf: a pipe keeps it whole).

    >>> print(ping_script([("10.0.0.1", "10.0.0.2")], 3))
    ( out=$(ping -n -q -c 3 -i 0.2 -W 1 -I 10.0.0.1 10.0.0.2 2>&1); printf '=PING 0\\n%s\\n' "$out" ) & wait

    `together=False` runs them one after the other (the confirmation pass of pings that saw nothing).
    """
    return " ".join(ping_jobs(requests, count, together=together, wait_s=wait_s)) + " wait"


OSPF_NEIGHBOURS = "show ip ospf neighbor json"


def router_probe(requests: list[tuple[str, str]], count: int, *, ospf: bool, marker: str | None = None) -> str:
    """A router's whole health run as one shell command on one exec channel.

    First the access role's marker (exit 3 without it: nothing else runs on a router the role has
    not prepared, as every dzops command refuses one), then every ping at once and, meanwhile,
    the OSPF neighbours (held until the pings are done, so no ping block cuts through them).

    >>> print(router_probe([("10.0.0.1", "10.0.0.2")], 3, ospf=True))  # doctest: +NORMALIZE_WHITESPACE
    echo =ACCESS; cat /etc/dzops/router-access && grep -q '^version=' /etc/dzops/router-access || exit 3;
    ( out=$(ping -n -q -c 3 -i 0.2 -W 1 -I 10.0.0.1 10.0.0.2 2>&1); printf '=PING 0\\n%s\\n' "$out" ) &
    ospf=$(vtysh -c 'show ip ospf neighbor json' 2>&1); wait; printf '=OSPF\\n%s\\n' "$ospf"
    """
    marker = shlex.quote(marker or ACCESS_MARKER)
    parts = [f"echo =ACCESS; cat {marker} && grep -q '^version=' {marker} || exit 3;",
             *ping_jobs(requests, count)]
    if ospf:
        parts.append(f"ospf=$(vtysh -c {shlex.quote(OSPF_NEIGHBOURS)} 2>&1);")
    parts.append("wait;" if ospf else "wait")
    if ospf:
        parts.append("printf '=OSPF\\n%s\\n' \"$ospf\"")
    return " ".join(parts)


_MARKER_LINE = re.compile(r"^=([A-Z]+)(?: (\d+))?$")


def sections(output: str) -> dict[str, str]:
    """The `=NAME` (and `=PING i`) sections of a probe's output, by name.

    >>> sections("=ACCESS\\nversion=1\\n=PING 0\\n1 packets transmitted\\n=OSPF\\n{}\\n")
    {'ACCESS': 'version=1', 'PING 0': '1 packets transmitted', 'OSPF': '{}'}
    """
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        marker = _MARKER_LINE.match(line)
        if marker:
            current = found.setdefault(" ".join(filter(None, marker.groups())), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def parse_ping_blocks(output: str, count: int) -> dict[int, PingStats]:
    """The `=PING i` blocks of `ping_script`'s output, each parsed; a missing block is absent.

    >>> parse_ping_blocks("=PING 1\\n2 packets transmitted, 2 received\\nrtt min/avg/max/mdev = 1/2.5/3/0 ms\\n"
    ...                   "=PING 0\\n2 packets transmitted, 0 received\\n", 2)
    {1: PingStats(sent=2, received=2, rtt_avg_ms=2.5), 0: PingStats(sent=2, received=0, rtt_avg_ms=None)}
    """
    return {int(name[5:]): parse_ping(text) for name, text in sections(output).items() if name.startswith("PING ")}


# vtysh's own `ping WORD` (FRR 8.4) runs iputils ping without a count, at one echo a second. On an
# exec channel it never ends and outlives the channel (measured in the lab: vtysh and ping stay);
# on a terminal, Ctrl-C stops it and ping prints its summary, as for a person at the console.
VTYSH_PATIENCE_S = 2.0  # how long past `count` seconds a vtysh ping waits for replies (twice that on the retry)
VTYSH_PROMPT = re.compile(r"[\w.-]+[#>] ?$")


def vtysh_ping(channel: Any, target: str, count: int, patience_s: float | None = None) -> str:
    """Ping `target` from vtysh on a terminal channel: `count` replies or `count + patience_s` seconds, then Ctrl-C.

    The channel's prompt must have been seen (`wait_prompt`). Returns ping's own output (its summary parsed by `parse_ping`). vtysh's ping takes no source
    address: the router picks the address of the interface towards `target`.
    """
    patience_s = VTYSH_PATIENCE_S if patience_s is None else patience_s
    channel.send(f"ping {IPv4Address(target)}\n")
    text = _read_until(channel, lambda t: t.count(" bytes from ") >= count, count + patience_s)
    channel.send("\x03")
    return text + _read_until(channel, lambda t: "packet loss" in t and bool(VTYSH_PROMPT.search(t.rstrip() + " ")),
                              10.0)


def wait_prompt(channel: Any, timeout: float = 10.0) -> str:
    """What a fresh terminal shows up to vtysh's first prompt (login banner included)."""
    return _read_until(channel, lambda text: bool(VTYSH_PROMPT.search(text.rstrip() + " ")), timeout)


def _read_until(channel: Any, done: Any, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline and not done(text):
        if channel.recv_ready():
            text += channel.recv(65536).decode(errors="replace")
        elif channel.closed or channel.exit_status_ready():
            break
        else:
            time.sleep(0.05)
    return text


RESOURCE_PROBE = ("echo =DF; df -P -l -x tmpfs -x devtmpfs 2>/dev/null; echo =MEM; cat /proc/meminfo; "
                  "echo =LOAD; cat /proc/loadavg; echo =CPUS; nproc")


# --- service checks from this machine -----------------------------------------------------------

def _host_port(target: str, default: int) -> tuple[str, int]:
    host, _, port = target.rpartition(":") if ":" in target else (target, "", "")
    return (host, int(port)) if port.isdigit() else (target, default)


def dns_query(name: str, qid: int = 0x4459) -> bytes:
    """A DNS query for the A record of `name` (recursion desired).

    >>> dns_query("a.bt")[:12].hex()
    '445901000001000000000000'
    """
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", 1, 1)


def dns_answers(reply: bytes) -> tuple[int, list[str]]:
    """(rcode, A addresses) of a DNS reply."""
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", reply[:12])
    pos = 12

    def skip_name(p: int) -> int:
        while reply[p]:
            if reply[p] & 0xC0 == 0xC0:
                return p + 2
            p += reply[p] + 1
        return p + 1

    for _ in range(qd):
        pos = skip_name(pos) + 4
    addresses = []
    for _ in range(an):
        pos = skip_name(pos)
        rtype, _, _, length = struct.unpack(">HHIH", reply[pos:pos + 10])
        pos += 10
        if rtype == 1 and length == 4:
            addresses.append(str(IPv4Address(reply[pos:pos + 4])))
        pos += length
    return flags & 0xF, addresses


def service_check(hc: HealthCheck, now: float | None = None) -> tuple[Status, str]:
    """Run one declared service check; (status, what was seen)."""
    try:
        if hc.kind == "tcp":
            host, port = _host_port(hc.target, 0)
            with socket.create_connection((host, port), timeout=TIMEOUT_S):
                return "up", f"{hc.target} accepts connections"
        if hc.kind == "http":
            return _http(hc)
        if hc.kind == "tls":
            return _tls(hc, now if now is not None else time.time())
        return _dns(hc)
    except (OSError, ValueError, ssl.SSLError) as exc:
        return "down", f"{hc.target}: {getattr(exc, 'strerror', None) or exc}"


def _http(hc: HealthCheck) -> tuple[Status, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(hc.target, timeout=TIMEOUT_S) as reply:  # noqa: S310 - the inventory's URL
            code, body = reply.status, reply.read(1_000_000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read(1_000_000).decode(errors="replace")
    except urllib.error.URLError as exc:
        return "down", f"{hc.target}: {exc.reason}"
    good = code == hc.expect_status if hc.expect_status is not None else 200 <= code < 400
    if not good:
        return "down", f"{hc.target}: HTTP {code}" + (f", expected {hc.expect_status}" if hc.expect_status else "")
    if hc.body_match and not re.search(hc.body_match, body):
        return "degraded", f"{hc.target}: HTTP {code} but the body lacks /{hc.body_match}/"
    return "up", f"{hc.target}: HTTP {code}"


def _tls(hc: HealthCheck, now: float) -> tuple[Status, str]:
    host, port = _host_port(hc.target, 443)
    context = ssl.create_default_context()
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        cert = tls.getpeercert() or {}
    left = int((ssl.cert_time_to_seconds(cert["notAfter"]) - now) // 86400)
    if left < 0:
        return "down", f"{hc.target}: certificate expired {-left} day(s) ago"
    if left < hc.min_days:
        return "degraded", f"{hc.target}: certificate expires in {left} day(s) (warn below {hc.min_days})"
    return "up", f"{hc.target}: certificate valid {left} more day(s)"


def _dns(hc: HealthCheck) -> tuple[Status, str]:
    host, port = _host_port(hc.target, 53)
    assert hc.query is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT_S)
        sock.sendto(dns_query(hc.query), (host, port))
        reply, _ = sock.recvfrom(4096)
    rcode, addresses = dns_answers(reply)
    if rcode != 0 or not addresses:
        return "down", f"{hc.target}: no A record for {hc.query} (rcode {rcode})"
    if hc.expect_address is not None and str(hc.expect_address) not in addresses:
        return "down", f"{hc.target}: {hc.query} is {', '.join(addresses)}, expected {hc.expect_address}"
    return "up", f"{hc.target}: {hc.query} is {', '.join(addresses)}"


# --- the run ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Unmeasured:
    """A check this login cannot measure (data for the officer, never a down): e.g. a LAN ping
    from HQ's LAN address on a vtysh-only login, whose ping cannot choose its source."""

    key: str
    kind: str
    site: str
    message: str


class HealthResults(list):  # type: ignore[type-arg] - list[Result], plus what could not be measured
    """The run's results, in check order; `unmeasured` holds the checks this login cannot measure."""

    def __init__(self, results: list[Result], unmeasured: list[Unmeasured]) -> None:
        super().__init__(results)
        self.unmeasured = unmeasured


@dataclass(frozen=True)
class _NoMeasure:
    why: str


class _NotMeasurable(Exception):  # noqa: N818 - internal: turned into an Unmeasured by _one
    pass


@dataclass
class _Login:
    driver: Any = None
    error: str | None = None
    pending: Pending | None = None  # the host's one command, started as soon as it logged in


def _shell_router(driver: Any) -> bool:
    """An FRR driver on a shell login: its whole health run is one probe command (`router_probe`)."""
    return bool(getattr(driver, "shell_login", False)) and isinstance(getattr(driver, "session", None), Session) \
        and hasattr(driver, "vtysh")


def _vtysh_router(driver: Any) -> bool:
    return not getattr(driver, "shell_login", True) and isinstance(getattr(driver, "session", None), Session) \
        and hasattr(driver, "vtysh")


class HealthRun:
    """One run: log in to every device and start its one command at once, then read the answers.

    The login pool only connects and starts each device's probe (pings, OSPF, resources); the
    devices work meanwhile, so the protocol's waits (a second of echo requests per router)
    overlap instead of queueing behind the pool's workers.
    """

    def __init__(self, inventory: Inventory, checks: list[Check], progress: Progress | None = None) -> None:
        self.inventory = inventory
        self.checks = checks
        self.progress = progress or (lambda _s, _m: None)
        self.logins: dict[str, _Login] = {}
        # (router, source, target) -> what its pings saw, why they could not run, or why not measurable
        self.pings: dict[tuple[str, str, str], PingStats | str | _NoMeasure] = {}
        # router -> its OSPF neighbours' states (one read per run), or why they could not be read
        self.ospf: dict[str, dict[str, str] | str | _NoMeasure] = {}
        # server -> (exit status, resource probe output), or why the probe failed
        self.resources: dict[str, tuple[int, str] | str] = {}
        self._requests: dict[str, list[tuple[str, str]]] = {}
        self._on_link: set[tuple[str, str, str]] = set()  # pings to a directly connected address
        self._ospf_routers: set[str] = set()

    def run(self) -> HealthResults:
        for host, source, target, on_link in self._ping_requests():
            if (source, target) not in self._requests.setdefault(host, []):
                self._requests[host].append((source, target))
            if on_link:
                self._on_link.add((host, source, target))
        # The routers with most pings first: the hub's probe is the longest, it starts earliest.
        hosts = sorted(self._hosts_to_log_in(), key=lambda h: (-len(self._requests.get(h, ())), h))
        fan_out(self._login, hosts)
        try:
            fan_out(self._collect, hosts)
            done = fan_out(self._one, self.checks)
        finally:
            fan_out(self._logout, hosts)
        return HealthResults([r for r in done if isinstance(r, Result)], [r for r in done if isinstance(r, Unmeasured)])

    def _ping_requests(self) -> list[tuple[str, str, str, bool]]:
        requests = []
        for check in self.checks:
            if check.kind == "link":
                link = self.inventory.wan_link(check.key.split(":", 1)[1])
                requests += [(host, str(own), str(far), True) for host, own, far in self._link_directions(link)]
                if link.routing.protocol == "ospf":
                    self._ospf_routers |= {link.a.host, link.b.host}
            elif check.kind == "lan":
                ends = self._lan_ends(check.site)
                if ends is not None:
                    requests.append((*ends, False))
        return requests

    def _hosts_to_log_in(self) -> list[str]:
        hosts = {c.host for c in self.checks if c.host}
        for c in self.checks:
            if c.kind == "link":
                link = self.inventory.wan_link(c.key.split(":", 1)[1])
                hosts |= {link.a.host, link.b.host}
            if c.kind == "lan":
                hq = self._hq_router()
                if hq is not None:
                    hosts.add(hq.name)
        return sorted(h for h in hosts if h in self.inventory.devices)

    def _hq_router(self) -> Device | None:
        hq = hq_site(self.inventory)
        return self.inventory.site_router(hq) if hq else None

    # -- phase 1: log in and start each device's one command -----------------------------------
    def _login(self, host: str) -> None:
        device = self.inventory.devices[host]
        login = self.logins.setdefault(host, _Login())
        creds = credentials(self.inventory, device)
        count = self.inventory.health.pings
        try:
            if device.function in ("servers", "switches"):
                session = Session(creds)
                session.open()
                login.driver = session
                if f"resources:{host}" in {c.key for c in self.checks}:
                    login.pending = session.start(RESOURCE_PROBE, timeout=60)
                self.progress(host, "logged in")
                return
            driver: Any = driver_for(device.platform, creds)
            if _shell_router(driver):
                driver.session.open()  # the access role's marker is the probe's first line
                login.driver = driver
                login.pending = driver.session.start(
                    router_probe(self._requests.get(host, []), count, ospf=host in self._ospf_routers),
                    timeout=count + 60)
                return
            driver.open()
            login.driver = driver
            self.progress(host, "logged in")
        except DzopsError as exc:
            if login.driver is not None:
                login.driver.close()
                login.driver = None
            login.error = str(exc)
            self.progress(host, f"no login: {exc}")

    # -- phase 2: read the answers (most finished while the pool logged in to others) -------------
    def _collect(self, host: str) -> None:
        login = self.logins[host]
        requests = self._requests.get(host, [])
        if login.driver is None:
            self._fail_router(host, login.error or f"{host}: no SSH session")
            return
        if isinstance(login.driver, Session):
            if login.pending is not None:
                try:
                    code, out, _ = login.pending.result()
                    self.resources[host] = (code, out)
                except DzopsError as exc:
                    self.resources[host] = str(exc)
            return
        if login.pending is not None:
            self._collect_probe(host, login)
            return
        if requests:
            if _vtysh_router(login.driver):
                self._vtysh_pings(host, login.driver.session, requests)
            else:
                why = f"{host}: no ping on this login (platform {self.inventory.devices[host].platform})"
                for source, target in requests:
                    self.pings[(host, source, target)] = _NoMeasure(why)
        if host in self._ospf_routers:
            if hasattr(login.driver, "vtysh"):
                try:
                    self.ospf[host] = ospf_states(login.driver.vtysh([OSPF_NEIGHBOURS]))
                except (DzopsError, ValueError) as exc:
                    self.ospf[host] = f"{host}: OSPF neighbours unreadable: {exc}"
            else:
                self.ospf[host] = _NoMeasure(f"{host}: OSPF neighbours not read on this login")

    def _fail_router(self, host: str, why: str) -> None:
        for source, target in self._requests.get(host, []):
            self.pings[(host, source, target)] = why
        if host in self._ospf_routers:
            self.ospf[host] = why

    def _collect_probe(self, host: str, login: _Login) -> None:
        assert login.pending is not None
        try:
            code, out, err = login.pending.result()
        except DzopsError as exc:
            self._fail_router(host, str(exc))
            return
        found = sections(out)
        if code == 3 or not any(line.startswith("version=") for line in found.get("ACCESS", "").splitlines()):
            refused = NotOnboarded(host, f"no {ACCESS_MARKER}: {err.strip()}")
            login.driver.close()
            login.driver, login.error = None, str(refused)
            self.progress(host, f"no login: {refused}")
            self._fail_router(host, str(refused))
            return
        self.progress(host, "logged in")
        count = self.inventory.health.pings
        self._settle_pings(host, {int(name[5:]): parse_ping(text) for name, text in found.items()
                                  if name.startswith("PING ")}, count)
        if host in self._ospf_routers:
            text = found.get("OSPF")
            errors = error_lines(text or "")
            if text is None:
                self.ospf[host] = f"{host}: no answer to '{OSPF_NEIGHBOURS}' (exit status {code})"
            elif errors:
                self.ospf[host] = f"{host}: '{OSPF_NEIGHBOURS}' failed: {errors[0]}"
            else:
                try:
                    self.ospf[host] = ospf_states(text)
                except ValueError as exc:
                    self.ospf[host] = f"{host}: '{OSPF_NEIGHBOURS}' gave no JSON: {exc}"

    def _settle_pings(self, host: str, found: dict[int, PingStats], count: int) -> None:
        requests = self._requests.get(host, [])
        # A target that answered nothing is asked once more, alone and with more patience, before it
        # counts as down: a busy router can miss a one-second burst (monitors call this a retry).
        silent = [i for i in range(len(requests)) if i not in found or found[i].received == 0]
        if silent:
            try:
                _, again = self._shell(self._driver(host), ping_script([requests[i] for i in silent], count,
                                                                       together=False, wait_s=2),
                                       timeout=len(silent) * (count + 3) + 60)
            except DzopsError:
                again = ""
            for position, stats in parse_ping_blocks(again, count).items():
                found[silent[position]] = stats
        for index, (source, target) in enumerate(requests):
            self.pings[(host, source, target)] = found.get(index, f"{host}: ping {target} gave no answer block")

    def _vtysh_pings(self, host: str, session: Session, requests: list[tuple[str, str]]) -> None:
        """A vtysh-only login: vtysh's own ping on terminal channels, a few targets at once.

        vtysh's ping takes no source address, so only pings to a directly connected address (a WAN
        link's far end) measure what the check means; a LAN ping from HQ's LAN address is reported
        as not measurable on this login.
        """
        from concurrent.futures import ThreadPoolExecutor

        count = self.inventory.health.pings
        measurable = [(s, t) for s, t in requests if (host, s, t) in self._on_link]
        for source, target in requests:
            if (source, target) not in measurable:
                self.pings[(host, source, target)] = _NoMeasure(
                    f"{host}: not measurable on this login: vtysh's ping cannot send from {source}")

        def share(part: list[tuple[str, str]]) -> dict[tuple[str, str], PingStats | str | _NoMeasure]:
            seen: dict[tuple[str, str], PingStats | str | _NoMeasure] = {}
            try:
                with session.interactive() as channel:
                    wait_prompt(channel)
                    for source, target in part:
                        text = vtysh_ping(channel, target, count)
                        if "packets transmitted" not in text:
                            seen[(source, target)] = _NoMeasure(
                                f"{host}: not measurable on this login: vtysh's ping answered "
                                f"{(error_lines(text) or [text.strip()[-80:] or 'nothing'])[0]}")
                            continue
                        stats = parse_ping(text)
                        if not stats.received:  # silent: asked once more, alone, with more patience
                            stats = parse_ping(vtysh_ping(channel, target, count, patience_s=2 * VTYSH_PATIENCE_S))
                        seen[(source, target)] = stats
            except (DzopsError, OSError, EOFError) as exc:
                for pair in part:
                    seen.setdefault(pair, f"{host}: vtysh ping failed: {exc}")
            return seen

        # One terminal per share; MAX_CHANNELS is what one SSH connection carries at once.
        parts = [measurable[i::MAX_CHANNELS] for i in range(min(MAX_CHANNELS, len(measurable)))]
        if parts:
            with ThreadPoolExecutor(len(parts)) as pool:
                for seen in pool.map(share, parts):
                    for (source, target), stats in seen.items():
                        self.pings[(host, source, target)] = stats

    def _logout(self, host: str) -> None:
        driver = self.logins[host].driver
        if driver is not None:
            driver.close()

    def _one(self, check: Check) -> Result | Unmeasured:
        try:
            status, message, rtt, loss = getattr(self, f"_check_{check.kind}")(check)
        except DzopsError as exc:
            status, message, rtt, loss = "down", str(exc), None, None
        except _NotMeasurable as exc:
            self.progress(check.key, f"not measurable: {exc}")
            return Unmeasured(check.key, check.kind, check.site, str(exc))
        self.progress(check.key, status if status == "up" else f"{status}: {message}")
        return Result(check.key, check.kind, check.site, status, message, rtt, loss)

    def _driver(self, host: str) -> Any:
        login = self.logins.get(host)
        if login is None or login.driver is None:
            raise DzopsError(login.error if login and login.error else f"{host}: no SSH session")
        return login.driver

    @staticmethod
    def _shell(driver: Any, command: str, timeout: float = 60) -> tuple[int, str]:
        session = driver if isinstance(driver, Session) else driver.session
        status, out, _ = session.run(command, timeout=timeout)
        return status, out

    # -- kinds --------------------------------------------------------------------------------
    def _check_device(self, check: Check) -> tuple[Status, str, None, None]:
        assert check.host is not None
        self._driver(check.host)
        return "up", "SSH login", None, None

    def _ping(self, host: str, source: str, target: str) -> PingStats | _NoMeasure:
        found = self.pings.get((host, source, target))
        if found is None:
            raise DzopsError(f"{host}: no ping from {source} to {target} was run")
        if isinstance(found, str):
            raise DzopsError(found)
        return found

    def _link_directions(self, link: Any) -> tuple[tuple[str, IPv4Address, IPv4Address], ...]:
        a_addr, b_addr = end_addresses(wan_allocation(self.inventory)[link.name])
        return ((link.a.host, a_addr.ip, b_addr.ip), (link.b.host, b_addr.ip, a_addr.ip))

    def _ospf_states(self, host: str) -> dict[str, str] | _NoMeasure:
        found = self.ospf.get(host, f"{host}: OSPF neighbours were not read")
        if isinstance(found, str):
            raise DzopsError(found)
        return found

    def _lan_ends(self, site: str) -> tuple[str, str, str] | None:
        """(HQ router, its LAN address, the site router's LAN address), when both are declared."""
        hq = self._hq_router()
        router = self.inventory.site_router(site)
        if hq is None or router is None:
            return None
        source = hq.interfaces.get(hq.lan_interface or "")
        target = router.interfaces.get(router.lan_interface or "")
        if source is None or target is None or source.address is None or target.address is None:
            return None
        return hq.name, str(source.address.ip), str(target.address.ip)

    def _check_link(self, check: Check) -> tuple[Status, str, float | None, float | None]:
        link = self.inventory.wan_link(check.key.split(":", 1)[1])
        subnet = wan_allocation(self.inventory)[link.name]
        directions = self._link_directions(link)
        stats: list[PingStats] = []
        problems: list[str] = []
        unmeasured: list[str] = []
        for host, own, far in directions:
            try:
                seen = self._ping(host, str(own), str(far))
            except DzopsError as exc:
                problems.append(str(exc))
                continue
            if isinstance(seen, _NoMeasure):
                unmeasured.append(seen.why)
            else:
                stats.append(seen)
        if not stats and not problems:
            raise _NotMeasurable("; ".join(unmeasured))
        answered = [s for s in stats if s.received]
        loss = max((s.loss for s in stats), default=1.0)
        rtts = [s.rtt_avg_ms for s in answered if s.rtt_avg_ms is not None]
        rtt = max(rtts) if rtts else None
        if not answered:
            why = "; ".join(problems) or f"no echo reply across {subnet} from either end"
            return "down", why, None, 1.0
        notes = [f"not measured: {why}" for why in unmeasured]
        if link.routing.protocol == "ospf":
            for host, _own, far in directions:
                try:
                    states = self._ospf_states(host)
                except DzopsError as exc:
                    problems.append(str(exc))
                    continue
                if isinstance(states, _NoMeasure):
                    notes.append(states.why)
                elif states.get(str(far)) != "Full":
                    problems.append(f"{host}: OSPF neighbour {far} {states.get(str(far), 'absent')}, not Full")
        if loss > DEGRADED_LOSS:
            problems.append(f"{loss:.0%} loss")
        summary = f"rtt {rtt:.1f} ms, loss {loss:.0%}" if rtt is not None else f"loss {loss:.0%}"
        summary += "".join(f"; {note}" for note in notes)
        if problems:
            return "degraded", f"{summary}; " + "; ".join(problems), rtt, loss
        return "up", summary, rtt, loss

    def _check_lan(self, check: Check) -> tuple[Status, str, float | None, float | None]:
        ends = self._lan_ends(check.site)
        if ends is None:
            return "down", "no HQ or site router with an addressed LAN interface", None, None
        hq, source, target = ends
        stats = self._ping(hq, source, target)
        if isinstance(stats, _NoMeasure):
            raise _NotMeasurable(stats.why)
        if not stats.received:
            return "down", f"{target} does not answer {source} (HQ LAN)", None, 1.0
        status: Status = "degraded" if stats.loss > DEGRADED_LOSS else "up"
        return status, f"{target} answers HQ LAN: rtt {stats.rtt_avg_ms} ms, loss {stats.loss:.0%}", \
            stats.rtt_avg_ms, stats.loss

    def _check_resources(self, check: Check) -> tuple[Status, str, None, None]:
        assert check.host is not None
        probe = self.resources.get(check.host)
        if isinstance(probe, str):
            raise DzopsError(probe)
        code, out = probe if probe is not None else self._shell(self._driver(check.host), RESOURCE_PROBE)
        if "=CPUS" not in out:
            return "down", f"resource probe failed (exit {code})", None, None
        found = parse_resources(out)
        limits = self.inventory.devices[check.host].health_thresholds
        over = []
        if found["disk_percent"] > limits.disk_percent:
            over.append(f"disk {found['disk_mount']} {found['disk_percent']:.0f}% > {limits.disk_percent}%")
        if found["memory_percent"] > limits.memory_percent:
            over.append(f"memory {found['memory_percent']:.0f}% > {limits.memory_percent}%")
        if found["load_per_cpu"] > limits.load_per_cpu:
            over.append(f"load {found['load_per_cpu']} per CPU > {limits.load_per_cpu}")
        seen = (f"disk {found['disk_percent']:.0f}%, memory {found['memory_percent']:.0f}%, "
                f"load {found['load_per_cpu']} per CPU")
        return ("degraded", "; ".join(over), None, None) if over else ("up", seen, None, None)

    def _check_service(self, check: Check) -> tuple[Status, str, None, None]:
        host = check.key.split(":")[1]
        for hc in self.inventory.devices[host].health_checks:
            from dzops.plan.health import service_key

            if service_key(host, hc.kind, hc.target, hc.query) == check.key:
                status, message = service_check(hc)
                return status, message, None, None
        return "down", "check not in the inventory", None, None

    def _check_ap(self, check: Check) -> tuple[Status, str, None, None]:
        from dzops.plan.ap import ap_bsses

        assert check.host is not None
        device = self.inventory.devices[check.host]
        bsses = ap_bsses(self.inventory, device)
        state = self._driver(check.host).read_state([], [b.interface for b in bsses])
        off = [f"{b.ssid} ({b.interface}: {state.status.get(b.interface, {}).get('state', 'no hostapd')})"
               for b in bsses if state.status.get(b.interface, {}).get("state") != "ENABLED"]
        if off:
            return ("down" if len(off) == len(bsses) else "degraded"), "SSID(s) not enabled: " + ", ".join(off), \
                None, None
        return "up", f"{len(bsses)} SSID(s) enabled", None, None


def run_health(inventory: Inventory, checks: list[Check], progress: Progress | None = None) -> HealthResults:
    """Every check once; the results (a list) carry `unmeasured`: checks this login cannot measure."""
    return HealthRun(inventory, checks, progress).run()
