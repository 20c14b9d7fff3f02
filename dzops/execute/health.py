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
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from dzops.exceptions import DzopsError
from dzops.execute.drivers import driver_for
from dzops.execute.fanout import fan_out
from dzops.execute.ssh import Progress, Session, credentials
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


def ping_script(requests: list[tuple[str, str]], count: int, *, together: bool = True, wait_s: int = 1) -> str:
    """One shell command running every (source, target) ping at once, each answer under `=PING i`.

    One exec channel per router whatever its number of links: an HQ hub with fifty links pings
    them all in the time of one (each block is one short printf: a pipe keeps it whole).

    >>> print(ping_script([("10.0.0.1", "10.0.0.2")], 3))
    ( out=$(ping -n -q -c 3 -i 0.2 -W 1 -I 10.0.0.1 10.0.0.2 2>&1); printf '=PING 0\\n%s\\n' "$out" ) & wait

    `together=False` runs them one after the other (the confirmation pass of pings that saw nothing).
    """
    jobs = []
    for index, (source, target) in enumerate(requests):
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(wait_s), "-I", str(IPv4Address(source)),
                str(IPv4Address(target))]  # addresses only: never a word ping could read as an option
        jobs.append(f"( out=$({' '.join(shlex.quote(a) for a in argv)} 2>&1); "
                    f"printf '=PING {index}\\n%s\\n' \"$out\" ) {'&' if together else ';'}")
    return " ".join(jobs) + " wait"


def parse_ping_blocks(output: str, count: int) -> dict[int, PingStats]:
    """The `=PING i` blocks of `ping_script`'s output, each parsed; a missing block is absent.

    >>> parse_ping_blocks("=PING 1\\n2 packets transmitted, 2 received\\nrtt min/avg/max/mdev = 1/2.5/3/0 ms\\n"
    ...                   "=PING 0\\n2 packets transmitted, 0 received\\n", 2)
    {1: PingStats(sent=2, received=2, rtt_avg_ms=2.5), 0: PingStats(sent=2, received=0, rtt_avg_ms=None)}
    """
    blocks: dict[int, list[str]] = {}
    current: int | None = None
    for line in output.splitlines():
        if line.startswith("=PING ") and line[6:].strip().isdigit():
            current = int(line[6:].strip())
            blocks[current] = []
        elif current is not None:
            blocks[current].append(line)
    return {index: parse_ping("\n".join(lines)) for index, lines in blocks.items()}


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

@dataclass
class _Login:
    driver: Any = None
    error: str | None = None


class HealthRun:
    def __init__(self, inventory: Inventory, checks: list[Check], progress: Progress | None = None) -> None:
        self.inventory = inventory
        self.checks = checks
        self.progress = progress or (lambda _s, _m: None)
        self.logins: dict[str, _Login] = {}
        # (router, source, target) -> what its pings saw, or why they could not run
        self.pings: dict[tuple[str, str, str], PingStats | str] = {}
        # router -> its OSPF neighbours' states, read once per run (a hub has one entry for fifty links)
        self.ospf: dict[str, dict[str, str]] = {}
        self._ospf_lock = threading.Lock()
        self._ospf_locks: dict[str, threading.Lock] = {}

    def run(self) -> list[Result]:
        hosts = self._hosts_to_log_in()
        fan_out(self._login, hosts)
        try:
            by_router: dict[str, list[tuple[str, str]]] = {}
            for host, source, target in self._ping_requests():
                by_router.setdefault(host, []).append((source, target))
            fan_out(lambda host: self._ping_all(host, by_router[host]), sorted(by_router))
            return fan_out(self._one, self.checks)
        finally:
            fan_out(self._logout, hosts)

    def _ping_requests(self) -> list[tuple[str, str, str]]:
        requests = []
        for check in self.checks:
            if check.kind == "link":
                link = self.inventory.wan_link(check.key.split(":", 1)[1])
                requests += [(host, str(own), str(far)) for host, own, far in self._link_directions(link)]
            elif check.kind == "lan":
                ends = self._lan_ends(check.site)
                if ends is not None:
                    requests.append(ends)
        return requests

    def _ping_all(self, host: str, requests: list[tuple[str, str]]) -> None:
        count = self.inventory.health.pings
        try:
            _, out = self._shell(self._driver(host), ping_script(requests, count), timeout=count + 60)
        except DzopsError as exc:
            for source, target in requests:
                self.pings[(host, source, target)] = str(exc)
            return
        found = parse_ping_blocks(out, count)
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

    def _login(self, host: str) -> None:
        device = self.inventory.devices[host]
        login = self.logins.setdefault(host, _Login())
        creds = credentials(self.inventory, device)
        try:
            driver: Any = Session(creds) if device.function in ("servers", "switches") else \
                driver_for(device.platform, creds)
            driver.open()
            login.driver = driver
            self.progress(host, "logged in")
        except DzopsError as exc:
            login.error = str(exc)
            self.progress(host, f"no login: {exc}")

    def _logout(self, host: str) -> None:
        driver = self.logins[host].driver
        if driver is not None:
            driver.close()

    def _one(self, check: Check) -> Result:
        try:
            status, message, rtt, loss = getattr(self, f"_check_{check.kind}")(check)
        except DzopsError as exc:
            status, message, rtt, loss = "down", str(exc), None, None
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

    def _ping(self, host: str, source: str, target: str) -> PingStats:
        found = self.pings.get((host, source, target))
        if found is None:
            raise DzopsError(f"{host}: no ping from {source} to {target} was run")
        if isinstance(found, str):
            raise DzopsError(found)
        return found

    def _link_directions(self, link: Any) -> tuple[tuple[str, IPv4Address, IPv4Address], ...]:
        a_addr, b_addr = end_addresses(wan_allocation(self.inventory)[link.name])
        return ((link.a.host, a_addr.ip, b_addr.ip), (link.b.host, b_addr.ip, a_addr.ip))

    def _ospf_states(self, host: str) -> dict[str, str]:
        with self._ospf_lock:
            lock = self._ospf_locks.setdefault(host, threading.Lock())
        with lock:  # per router: the other links of a hub wait for this one answer, other routers do not
            if host not in self.ospf:
                self.ospf[host] = ospf_states(self._driver(host).vtysh(["show ip ospf neighbor json"]))
            return self.ospf[host]

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
        for host, own, far in directions:
            try:
                stats.append(self._ping(host, str(own), str(far)))
            except DzopsError as exc:
                problems.append(str(exc))
        answered = [s for s in stats if s.received]
        loss = max((s.loss for s in stats), default=1.0)
        rtts = [s.rtt_avg_ms for s in answered if s.rtt_avg_ms is not None]
        rtt = max(rtts) if rtts else None
        if not answered:
            why = "; ".join(problems) or f"no echo reply across {subnet} from either end"
            return "down", why, None, 1.0
        if link.routing.protocol == "ospf":
            for host, _own, far in directions:
                try:
                    states = self._ospf_states(host)
                except DzopsError as exc:
                    problems.append(str(exc))
                    continue
                if states.get(str(far)) != "Full":
                    problems.append(f"{host}: OSPF neighbour {far} {states.get(str(far), 'absent')}, not Full")
        if loss > DEGRADED_LOSS:
            problems.append(f"{loss:.0%} loss")
        summary = f"rtt {rtt:.1f} ms, loss {loss:.0%}" if rtt is not None else f"loss {loss:.0%}"
        if problems:
            return "degraded", f"{summary}; " + "; ".join(problems), rtt, loss
        return "up", summary, rtt, loss

    def _check_lan(self, check: Check) -> tuple[Status, str, float | None, float | None]:
        ends = self._lan_ends(check.site)
        if ends is None:
            return "down", "no HQ or site router with an addressed LAN interface", None, None
        hq, source, target = ends
        stats = self._ping(hq, source, target)
        if not stats.received:
            return "down", f"{target} does not answer {source} (HQ LAN)", None, 1.0
        status: Status = "degraded" if stats.loss > DEGRADED_LOSS else "up"
        return status, f"{target} answers HQ LAN: rtt {stats.rtt_avg_ms} ms, loss {stats.loss:.0%}", \
            stats.rtt_avg_ms, stats.loss

    def _check_resources(self, check: Check) -> tuple[Status, str, None, None]:
        assert check.host is not None
        code, out = self._shell(self._driver(check.host), RESOURCE_PROBE)
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


def run_health(inventory: Inventory, checks: list[Check], progress: Progress | None = None) -> list[Result]:
    return HealthRun(inventory, checks, progress).run()
