"""The interface every network driver offers (modelled on NAPALM's NetworkDriver)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Credentials:
    """How to log in to one device, read from the inventory the way Ansible reads it.

    Keys come before passwords (the private key file, then ssh-agent, then the password), as with
    OpenSSH; host keys are always checked against `known_hosts`.
    """

    host: str  # inventory name, used in every message
    address: str  # management address (ansible_host)
    username: str  # ansible_user
    password: str = field(default="", repr=False)  # ansible_password
    known_hosts: Path | None = None  # None: SSH connections are refused (host keys are always checked)
    port: int = 22  # ansible_port
    timeout: float = 15.0
    key_file: Path | None = None  # ansible_ssh_private_key_file
    use_agent: bool = False  # an ssh-agent is there to ask (SSH_AUTH_SOCK)
    become: bool = False  # ansible_become
    become_password: str = field(default="", repr=False)  # ansible_become_password
    login: str = "shell"  # dzops_router_login: what the login lands in, `shell` or `vtysh`

    @property
    def sudo_password(self) -> str:
        """What sudo is answered with: the become password, else the login password (sudo's default)."""
        return self.become_password or self.password

    @property
    def known_hosts_name(self) -> str:
        """The name this device has in known_hosts (OpenSSH's `[addr]:port` form off port 22).

        >>> Credentials("r", "10.0.0.1", "u").known_hosts_name, Credentials("r", "10.0.0.1", "u", port=2222).known_hosts_name
        ('10.0.0.1', '[10.0.0.1]:2222')
        """
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class ConfigDiff:
    """What turning the running config into the candidate takes, as config lines."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove

    def text(self) -> str:
        """A readable diff, removals first.

        >>> print(ConfigDiff(add=("interface eth0", " ip address 10.0.0.1/30"), remove=("ip route 0.0.0.0/0 1.1.1.1",)).text())
        - ip route 0.0.0.0/0 1.1.1.1
        + interface eth0
        +  ip address 10.0.0.1/30
        """
        return "\n".join([f"- {line}" for line in self.remove] + [f"+ {line}" for line in self.add])


@runtime_checkable
class NetworkDriver(Protocol):
    credentials: Credentials

    def open(self) -> None:
        """Connect; raises ConnectionFailed, AuthenticationFailed or HostKeyMismatch."""

    def close(self) -> None: ...

    def get_config(self) -> str:
        """The running configuration as text."""

    def compare_config(self, candidate: str) -> ConfigDiff:
        """What `load_replace_candidate(candidate)` would change; touches nothing."""

    def load_replace_candidate(self, candidate: str) -> ConfigDiff:
        """Make the running config equal to the candidate (a whole config); returns what changed."""

    def rollback(self, saved: str) -> None:
        """Restore a configuration saved with get_config() before a change."""

    def save_config(self) -> None:
        """Persist the running configuration across a restart (write memory)."""

    def cli(self, commands: list[str]) -> dict[str, str]:
        """Run show commands; returns command -> output. Error replies raise DeviceError."""
