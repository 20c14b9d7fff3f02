"""A small SSH server on loopback (paramiko's server side) for unit tests of dzops' SSH client side.

It has a real host key and real password/public-key authentication, records which methods the
client tried, and answers exec channels from a table: command -> (exit status, stdout, stderr).
SFTP is not served; drivers' uploads are lab-tested.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

Reply = tuple[int, str, str]


@dataclass
class FakeSshServer:
    host_key: paramiko.PKey
    username: str = "dzadmin"
    password: str | None = "secret-pw"
    authorized: list[paramiko.PKey] = field(default_factory=list)
    commands: dict[str, Reply] = field(default_factory=dict)
    default: Callable[[str], Reply] = lambda cmd: (127, "", f"sh: {cmd.split()[0] if cmd else ''}: not found\n")
    tried: list[str] = field(default_factory=list)  # auth methods in the order the client tried them
    ran: list[str] = field(default_factory=list)
    port: int = 0
    bind: str = "127.0.0.1"  # any 127/8 address is loopback
    _sock: socket.socket | None = None
    _stop: bool = False

    def start(self) -> FakeSshServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.bind, 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop = True
        if self._sock is not None:
            self._sock.close()

    def known_hosts_line(self, key: paramiko.PKey | None = None) -> str:
        key = key or self.host_key
        return f"[{self.bind}]:{self.port} {key.get_name()} {key.get_base64()}"

    def write_known_hosts(self, path: Path, key: paramiko.PKey | None = None) -> Path:
        path.write_text(self.known_hosts_line(key) + "\n")
        return path

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()  # type: ignore[union-attr]
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        server = _Server(self)
        try:
            transport.start_server(server=server)
        except (paramiko.SSHException, EOFError, OSError):
            return
        while transport.is_active() and not self._stop:
            channel = transport.accept(timeout=1)
            if channel is None:
                continue
            threading.Thread(target=self._exec, args=(channel, server), daemon=True).start()

    def _exec(self, channel: paramiko.Channel, server: _Server) -> None:
        command = server.command_of(channel)
        if command is None:
            channel.close()
            return
        self.ran.append(command)
        status, out, err = self.commands.get(command) or self.default(command)
        channel.sendall(out.encode())
        channel.sendall_stderr(err.encode())
        channel.send_exit_status(status)
        channel.close()


class _Server(paramiko.ServerInterface):
    def __init__(self, fake: FakeSshServer) -> None:
        self.fake = fake
        self._commands: dict[int, str] = {}
        self._arrived = threading.Condition()

    def command_of(self, channel: paramiko.Channel, timeout: float = 5) -> str | None:
        with self._arrived:
            self._arrived.wait_for(lambda: channel.get_id() in self._commands, timeout)
            return self._commands.pop(channel.get_id(), None)

    def get_allowed_auths(self, username: str) -> str:
        return ",".join(m for m, on in (("publickey", bool(self.fake.authorized)),
                                         ("password", self.fake.password is not None)) if on) or "none"

    def check_auth_password(self, username: str, password: str) -> int:
        self.fake.tried.append("password")
        ok = username == self.fake.username and self.fake.password is not None and password == self.fake.password
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self.fake.tried.append("publickey")
        ok = username == self.fake.username and any(k.asbytes() == key.asbytes() for k in self.fake.authorized)
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        with self._arrived:
            self._commands[channel.get_id()] = command.decode()
            self._arrived.notify_all()
        return True
