"""The session lab's Debian servers, package repository and SMTP sink: real sshd, apt, dpkg, aiosmtpd.

punakha-hq-srv1 and punakha-hq-web1 of the sample, at factory state: the lab packages at 1.0 on both.
A test that upgrades one of them puts it back to 1.0 before it ends (the patch tests expect that).
"""

from __future__ import annotations

import shutil
import smtplib
import urllib.request
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import paramiko
import pytest

from dzops.inventory.models import Inventory
from dzops.lab import pkgrepo, smtp
from dzops.lab.builder import Lab
from tests.labkit import LabHandle

pytestmark = pytest.mark.lab

SRV = "punakha-hq-srv1"
WEB = "punakha-hq-web1"
SERVERS = (SRV, WEB)
OLD = {name: old for name, (old, _) in pkgrepo.lab_packages().items()}
NEW = {name: new for name, (_, new) in pkgrepo.lab_packages().items()}


def _password(inventory: Inventory, name: str) -> str:
    password = inventory.devices[name].password
    assert password is not None
    return password.get_secret_value()


def _connect(lab: Lab, inventory: Inventory, name: str, password: str | None = None) -> paramiko.SSHClient:
    device = inventory.devices[name]
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(str(device.mgmt_address), username=device.username,
                       password=password or _password(inventory, name), look_for_keys=False,
                       allow_agent=False, timeout=20, banner_timeout=30, auth_timeout=30)
    except BaseException:
        client.close()
        raise
    return client


def _ssh(client: paramiko.SSHClient, command: str, stdin: str | None = None,
         timeout: float = 180) -> tuple[int, str, str]:
    chan_in, chan_out, chan_err = client.exec_command(command, timeout=timeout)
    if stdin is not None:
        chan_in.write(stdin)
        chan_in.flush()
    chan_in.channel.shutdown_write()
    out, err = chan_out.read().decode(), chan_err.read().decode()
    return chan_out.channel.recv_exit_status(), out, err


def _versions(lab: Lab, name: str) -> dict[str, str]:
    query = lab.exec(name, ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *pkgrepo.lab_packages()])
    assert query.returncode == 0, query.stderr
    return dict(line.split() for line in query.stdout.splitlines())


def test_ssh_password_login_and_hostname(lab: Lab, inventory: Inventory) -> None:
    for name in SERVERS:
        user = inventory.devices[name].username
        with _connect(lab, inventory, name) as client:
            rc, out, _ = _ssh(client, "id -un; hostname; getent passwd $(id -un) | cut -d: -f6,7")
        assert rc == 0
        assert out.split() == [user, name, f"/home/{user}:/bin/bash"]


def test_wrong_password_is_refused(lab: Lab, inventory: Inventory) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        _connect(lab, inventory, SRV, password="not-the-password")


def test_password_is_hashed_not_stored(lab: Lab, inventory: Inventory) -> None:
    user = inventory.devices[SRV].username
    shadow = lab.exec(SRV, ["getent", "shadow", str(user)]).stdout
    hashed = shadow.split(":")[1].startswith("$")
    in_clear = _password(inventory, SRV) in shadow  # a bool: never print the secret itself
    assert hashed and not in_clear


def test_sudo_needs_and_accepts_the_password(lab: Lab, inventory: Inventory) -> None:
    with _connect(lab, inventory, SRV) as client:
        rc, _, _ = _ssh(client, "sudo -k; sudo -n id -u")
        assert rc != 0  # no passwordless sudo on a server
        rc, out, err = _ssh(client, "sudo -k; sudo -S -p '' id -u", stdin=_password(inventory, SRV) + "\n")
        assert (rc, out.strip()) == (0, "0"), err
        rc, _, _ = _ssh(client, "sudo -k; sudo -S -p '' id -u", stdin="wrong\n")
        assert rc != 0


def test_python3_and_python3_apt_import(lab: Lab, inventory: Inventory) -> None:
    with _connect(lab, inventory, WEB) as client:
        rc, out, err = _ssh(
            client, "python3 -c 'import apt, apt_pkg, sys; apt_pkg.init(); print(sys.version_info[0])'")
    assert (rc, out.strip()) == (0, "3"), err


def test_own_pid_namespace_and_hostname_at_the_console(lab: Lab) -> None:
    for name in SERVERS:
        assert lab.exec(name, ["hostname"]).stdout.strip() == name
        assert lab.exec(name, ["cat", "/proc/1/cmdline"]).stdout.startswith("/bin/sh")  # its own PID 1


def test_only_source_is_the_lab_repo(lab: Lab) -> None:
    gateway = lab.spec.mgmt_gateway.split("/")[0]
    for name in SERVERS:
        cat = "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null"
        sources = lab.exec(name, ["sh", "-c", cat])
        assert sources.stdout.strip().splitlines() == [
            f"deb [trusted=yes] http://{gateway}:{lab.spec.package_repo_port}/ ./"], name


def test_package_repo_serves_the_newer_packages(lab: Lab) -> None:
    url = f"http://{lab.spec.mgmt_gateway.split('/')[0]}:{lab.spec.package_repo_port}/Packages"
    with urllib.request.urlopen(url, timeout=20) as answer:
        index = answer.read().decode()
    stanzas = {s.split("\n", 1)[0].removeprefix("Package: "): s for s in index.strip().split("\n\n")}
    assert set(stanzas) == set(NEW)
    for name, version in NEW.items():
        assert f"\nVersion: {version}\n" in stanzas[name]
        assert f"Filename: ./{name}_{version}_all.deb" in stanzas[name]


def test_data_interface_addresses(lab: Lab, inventory: Inventory) -> None:
    for name in SERVERS:
        for ifname, iface in inventory.devices[name].interfaces.items():
            addrs = lab.exec(name, ["ip", "-4", "-o", "addr", "show", "dev", ifname]).stdout
            assert f"inet {iface.address} " in addrs, (name, addrs)
    # both sit on the HQ switch's bridge, and the HQ router's LAN address is their gateway
    web_address = inventory.devices[WEB].interfaces["eth0"].address
    hq_lan = inventory.devices["punakha-hq-rtr1"].interfaces["eth0"].address
    assert web_address is not None and hq_lan is not None
    for target in (str(web_address.ip), str(hq_lan.ip)):
        ping = lab.exec(SRV, ["ping", "-c", "1", "-W", "5", target])
        assert ping.returncode == 0, ping.stdout + ping.stderr


def test_lldp_neighbour_names(lab: Lab, inventory: Inventory) -> None:
    expected = {(c.b.host, c.b.interface, c.a.host, c.a.interface) for c in inventory.lan_links
                if c.b.host in SERVERS}
    assert {e[0] for e in expected} == set(SERVERS)
    for name, ifname, switch, port in expected:
        assert lab.lldp_neighbors(name) == [(ifname, switch, port)]
        assert (port, name, ifname) in lab.lldp_neighbors(switch)


@pytest.fixture()
def web_back_at_old_versions(lab: Lab, tmp_path: Path) -> Iterator[None]:
    """Put punakha-hq-web1 back at factory state afterwards: the 1.0 packages, no apt lists or cache.

    1.0 is only in the base image, not in the repository: the very .debs the lab's base image got
    (pkgrepo.build_packages) are rebuilt and installed with dpkg -i inside the server.
    """
    lists = set(lab.exec(WEB, ["ls", "-A", "/var/lib/apt/lists"]).stdout.split())
    yield
    if _versions(lab, WEB) != OLD:
        holder = lab.status().node(WEB).holder_pid  # PID 1 of the server, seen from here
        inside = Path(f"/proc/{holder}/root/tmp/dz-restore")
        inside.mkdir(exist_ok=True)
        for deb in pkgrepo.build_packages(tmp_path / "debs", pkgrepo.INSTALLED_VERSION):
            shutil.copyfile(deb, inside / deb.name)
        proc = lab.exec(WEB, ["sh", "-c", "dpkg -i /tmp/dz-restore/*.deb"])
        lab.exec(WEB, ["rm", "-rf", "/tmp/dz-restore"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
    lab.exec(WEB, ["apt-get", "clean"])
    for extra in set(lab.exec(WEB, ["ls", "-A", "/var/lib/apt/lists"]).stdout.split()) - lists:
        lab.exec(WEB, ["rm", "-rf", f"/var/lib/apt/lists/{extra}"])
    assert _versions(lab, WEB) == OLD


def test_apt_upgrade_is_real_and_private_per_host(lab: Lab, inventory: Inventory,
                                                  web_back_at_old_versions: None) -> None:
    assert _versions(lab, WEB) == OLD and _versions(lab, SRV) == OLD
    upgrade = ("sudo -S -p '' env DEBIAN_FRONTEND=noninteractive "
               "sh -c 'apt-get -q update && apt-get -q -y upgrade'")
    with _connect(lab, inventory, WEB) as client:
        rc, out, err = _ssh(client, upgrade, stdin=_password(inventory, WEB) + "\n", timeout=300)
    assert rc == 0, out + err
    assert _versions(lab, WEB) == NEW
    for name in pkgrepo.lab_packages():
        assert lab.exec(WEB, ["cat", f"/usr/share/{name}/VERSION"]).stdout.strip() == NEW[name]
        # srv1 shares the base image but not web1's upper layer
        assert lab.exec(SRV, ["cat", f"/usr/share/{name}/VERSION"]).stdout.strip() == OLD[name]
    assert _versions(lab, SRV) == OLD


def test_mail_needs_the_vault_login_and_lands_in_the_maildir(punakha_lab: LabHandle,
                                                              inventory: Inventory) -> None:
    mail = inventory.mail
    assert mail is not None and mail.username and mail.password is not None
    subject = f"Patch report {uuid.uuid4().hex[:8]}"  # other tests mail the same sink
    msg = EmailMessage()
    msg["From"] = mail.sender
    msg["To"] = ", ".join(mail.recipients)
    msg["Subject"] = subject
    msg.set_content("3 packages upgraded\n")
    with smtplib.SMTP("127.0.0.1", mail.smtp_port, timeout=20) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # like a real relay: no login, no mail
            client.send_message(msg)
        assert refused.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.login(mail.username, "not-the-password")
        assert wrong.value.smtp_code == 535
    with smtplib.SMTP("127.0.0.1", mail.smtp_port, timeout=20) as client:
        client.login(mail.username, mail.password.get_secret_value())
        client.send_message(msg)
    mails = [m for m in smtp.read_mail(punakha_lab.state_dir / "mail") if m["Subject"] == subject]
    assert len(mails) == 1  # exactly one: the refused attempts stored nothing
    assert mails[0]["To"] == ", ".join(mail.recipients)
    assert mails[0].get_content().strip() == "3 packages upgraded"


def test_servers_route_beyond_their_lan_through_the_site_router(lab: Lab, inventory: Inventory) -> None:
    """Without a default route a server answers nobody beyond its LAN: the gewogs the WAN exists for."""
    for name in SERVERS:
        route = lab.exec(name, ["ip", "-4", "route", "show", "default"])
        assert route.stdout.split()[:3] == ["default", "via", str(inventory.default_gateway(name))], route
