"""What a 100-router backup shares between its logins, and what it must still see fresh.

known_hosts is parsed once per content of the file (paramiko parses every line into a key, so
once per login made a fan-out quadratic), yet a key replaced during a run is the one checked.
paramiko is imported without invoke (only ssh_config `Match exec` uses it), and invoke stays
importable for whoever wants it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from dzops.exceptions import HostKeyMismatch
from dzops.execute import ssh
from dzops.execute.drivers.base import Credentials
from tests.execute.fake_ssh_server import FakeSshServer


def _key(path: Path) -> paramiko.Ed25519Key:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


@pytest.fixture()
def server(tmp_path: Path) -> FakeSshServer:
    fake = FakeSshServer(host_key=_key(tmp_path / "host")).start()
    yield fake
    fake.stop()


def test_known_hosts_is_parsed_once_per_version_and_a_replaced_key_is_refused(
        server: FakeSshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parses: list[str] = []
    real = paramiko.HostKeys

    def counting(filename: str | None = None) -> paramiko.HostKeys:
        parses.append(str(filename))
        return real(filename)

    monkeypatch.setattr(paramiko, "HostKeys", counting)
    known_hosts = server.write_known_hosts(tmp_path / "known_hosts")
    creds = Credentials(host="r1", address="127.0.0.1", username="dzadmin", password="secret-pw",
                        known_hosts=known_hosts, port=server.port, timeout=5.0)
    for _ in range(3):
        ssh.connect(creds).close()
    assert parses == [str(known_hosts)]  # three logins, one parse

    # onboard --accept-fingerprint rewrites the file (a new inode): the next login checks the new key
    other = _key(tmp_path / "other")
    ssh.add_known_host(known_hosts, server.known_hosts_line(other), replace_name=creds.known_hosts_name)
    with pytest.raises(HostKeyMismatch, match="SSH HOST KEY CHANGED"):
        ssh.connect(creds)
    assert parses == [str(known_hosts)] * 2

    # edited in place, same size, within the same clock tick: the content decides, not the file's stat
    server.write_known_hosts(known_hosts)
    ssh.connect(creds).close()
    before = known_hosts.stat()
    server.write_known_hosts(known_hosts, other)
    assert known_hosts.stat().st_size == before.st_size and known_hosts.stat().st_ino == before.st_ino
    with pytest.raises(HostKeyMismatch, match="SSH HOST KEY CHANGED"):
        ssh.connect(creds)
    assert parses == [str(known_hosts)] * 4


def test_paramiko_comes_without_invoke_and_invoke_stays_importable() -> None:
    probe = ("import sys\n"
             "from dzops.execute.ssh import import_paramiko\n"
             "paramiko = import_paramiko()\n"
             "import paramiko.config\n"
             "print('invoke' in sys.modules, paramiko.config.invoke is None, hasattr(paramiko, 'SSHClient'))\n"
             "import invoke\n"
             "print(invoke.__name__)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == ["False", "True", "True", "invoke"]
