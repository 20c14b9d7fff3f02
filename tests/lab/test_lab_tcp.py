"""TCP, not only ping, crosses the lab's switches: what an office uses (SSH, HTTP, file shares) must work
in rehearsal too. (Open vSwitch's user-space datapath forwards a veth's partial checksums unfilled
unless the lab turns transmit offload off on the ends that meet it; ping never notices.)"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab

SERVER, ROUTER = "punakha-hq-srv1", "punakha-hq-rtr1"  # the HQ LAN: router -> core switch (OVS) -> server
PORT = 7777
LISTEN = (f"import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
          f"s.bind((sys.argv[1], {PORT})); s.listen(1); s.settimeout(60); c, _ = s.accept(); "
          f"c.sendall(b'dzops-tcp-ok'); c.close()")
CONNECT = (f"import socket,sys,time\nfor _ in range(20):\n    try:\n"
           f"        print(socket.create_connection((sys.argv[1], {PORT}), 5).recv(64).decode()); break\n"
           f"    except ConnectionRefusedError:\n        time.sleep(0.25)\n")


def test_tcp_crosses_the_hq_switch(lab, inventory) -> None:  # noqa: ANN001 - fixtures
    address = str(inventory.devices[SERVER].interfaces["eth0"].address.ip)
    started = lab.exec(SERVER, ["sh", "-c", 'python3 -c "$0" "$1" >/dev/null 2>&1 &', LISTEN, address])
    assert started.returncode == 0, started.stderr
    reply = lab.exec(ROUTER, ["python3", "-c", CONNECT, address], timeout=60)
    assert reply.stdout.strip() == "dzops-tcp-ok", (reply.returncode, reply.stdout, reply.stderr[-500:])
