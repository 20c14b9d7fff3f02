"""Service checks against real servers on loopback: TCP, HTTP status and body, TLS days left, DNS answer."""

from __future__ import annotations

import http.server
import socket
import socketserver
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dzops.execute import health
from dzops.execute.health import parse_ping, parse_resources, service_check
from dzops.inventory.models import HealthCheck


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        code, body = {"/": (200, b"<h1>Punakha e-Gov portal</h1>"), "/gone": (404, b"not here")}.get(
            self.path, (500, b"boom"))
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def web() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("path", "fields", "status", "seen"), [
    ("/", {}, "up", "HTTP 200"),
    ("/", {"body_match": r"e-Gov\s+portal"}, "up", "HTTP 200"),
    ("/", {"body_match": "Thimphu"}, "degraded", "the body lacks /Thimphu/"),
    ("/gone", {}, "down", "HTTP 404"),
    ("/gone", {"expect_status": 404}, "up", "HTTP 404"),
    ("/", {"expect_status": 204}, "down", "HTTP 200, expected 204"),
])
def test_http_status_and_body(web: int, path: str, fields: dict[str, object], status: str, seen: str) -> None:
    result = service_check(HealthCheck(kind="http", target=f"http://127.0.0.1:{web}{path}", **fields))
    assert result[0] == status and seen in result[1], result


def test_tcp_open_and_closed(web: int) -> None:
    assert service_check(HealthCheck(kind="tcp", target=f"127.0.0.1:{web}"))[0] == "up"
    status, message = service_check(HealthCheck(kind="tcp", target=f"127.0.0.1:{_free_port()}"))
    assert status == "down" and "refused" in message.lower()


@pytest.fixture()
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A TLS server on loopback whose certificate (CN/SAN 127.0.0.1) expires in 5 days."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "5", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], cert
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.parametrize(("min_days", "status", "seen"), [
    (3, "up", "certificate valid 4 more day(s)"),
    (14, "degraded", "certificate expires in 4 day(s) (warn below 14)"),
])
def test_tls_days_left(tls_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch, min_days: int, status: str,
                       seen: str) -> None:
    port, cert = tls_server
    trusted = ssl.create_default_context(cafile=str(cert))  # as if the unit's own CA signed it
    monkeypatch.setattr(health.ssl, "create_default_context", lambda: trusted)
    result = service_check(HealthCheck(kind="tls", target=f"127.0.0.1:{port}", min_days=min_days))
    assert result == (status, f"127.0.0.1:{port}: {seen}")


def test_tls_untrusted_certificate_is_down(tls_server: tuple[int, Path]) -> None:
    status, message = service_check(HealthCheck(kind="tls", target=f"127.0.0.1:{tls_server[0]}"))
    assert status == "down" and "certificate verify failed" in message


def _name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


@pytest.fixture()
def dns() -> Iterator[int]:
    """A DNS server knowing one name, answering with a compression pointer to the question, as BIND does."""
    zone = {"portal.punakha.gov.bt": "10.30.1.22"}

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            qid = struct.unpack(">H", data[:2])[0]
            end = data.index(b"\0", 12) + 5
            labels, pos = [], 12
            while data[pos]:
                labels.append(data[pos + 1:pos + 1 + data[pos]].decode())
                pos += data[pos] + 1
            address = zone.get(".".join(labels))
            header = struct.pack(">HHHHHH", qid, 0x8180 if address else 0x8183, 1, 1 if address else 0, 0, 0)
            answer = (struct.pack(">HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton(address)) if address else b""
            sock.sendto(header + data[12:end] + answer, self.client_address)

    server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("query", "expect", "status", "seen"), [
    ("portal.punakha.gov.bt", None, "up", "portal.punakha.gov.bt is 10.30.1.22"),
    ("portal.punakha.gov.bt", "10.30.1.22", "up", "is 10.30.1.22"),
    ("portal.punakha.gov.bt", "10.30.1.99", "down", "expected 10.30.1.99"),
    ("mail.punakha.gov.bt", None, "down", "no A record for mail.punakha.gov.bt (rcode 3)"),
])
def test_dns_answer(dns: int, query: str, expect: str | None, status: str, seen: str) -> None:
    check = HealthCheck(kind="dns", target=f"127.0.0.1:{dns}", query=query, expect_address=expect)
    result = service_check(check)
    assert result[0] == status and seen in result[1], result


def test_dns_server_that_does_not_answer_is_down() -> None:
    status, message = service_check(HealthCheck(kind="dns", target=f"127.0.0.1:{_free_port()}", query="a.bt"))
    assert status == "down"


@pytest.mark.parametrize(("output", "sent", "received", "rtt"), [
    ("PING 10.30.255.2 (10.30.255.2) from 10.30.255.1 : 56(84) bytes of data.\n\n--- 10.30.255.2 ping statistics ---\n"
     "5 packets transmitted, 5 received, 0% packet loss, time 811ms\nrtt min/avg/max/mdev = 0.050/0.071/0.105/0.019 ms\n",
     5, 5, 0.071),
    ("--- 10.30.255.6 ping statistics ---\n5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 819ms\n",
     5, 0, None),
    ("ping: bind: Cannot assign requested address\n", 0, 0, None),
], ids=["all-answered", "unreachable", "no-summary"])
def test_parse_ping(output: str, sent: int, received: int, rtt: float | None) -> None:
    stats = parse_ping(output)
    assert (stats.sent, stats.received, stats.rtt_avg_ms) == (sent, received, rtt)
    assert stats.loss == (1.0 if received == 0 else 0.0)


def test_parse_resources_takes_the_fullest_file_system() -> None:
    out = ("=DF\nFilesystem 1024-blocks Used Available Capacity Mounted on\noverlay 100 40 60 40% /\n"
           "/dev/sdb1 100 97 3 97% /srv/data\n=MEM\nMemTotal: 2000 kB\nMemFree: 100 kB\nMemAvailable: 1000 kB\n"
           "=LOAD\n3.00 9.00 1.00 2/300 999\n=CPUS\n4\n")
    assert parse_resources(out) == {"disk_percent": 97.0, "disk_mount": "/srv/data", "memory_percent": 50.0,
                                    "load_per_cpu": 2.25}
