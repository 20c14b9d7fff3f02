"""SSH sessions and fan-out shared by every driver and collector of the execute layer.

Host keys are always checked: known_hosts comes from the inventory and an unknown key is refused,
never learned, so the first connection is as trusted as every later one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from dzops.exceptions import AuthenticationFailed, ConnectionFailed, HostKeyMismatch
from dzops.execute import fanout
from dzops.execute.drivers.base import Credentials

Progress = Callable[[str, str], None]  # (subject, message) for people, on stderr
FAN_OUT_WORKERS = 10  # the lab notes measure no gain past ~10 concurrent SSH sessions on 2 cores

T = TypeVar("T")
R = TypeVar("R")


def fan_out(fn: Callable[[T], R], items: Iterable[T], workers: int = FAN_OUT_WORKERS) -> list[R]:
    """fn over items on a bounded thread pool, results in item order.

    >>> fan_out(lambda n: n * n, [1, 2, 3])
    [1, 4, 9]
    """
    return fanout.fan_out(fn, items, forks=workers)


def credentials(inventory: Any, device: Any) -> Credentials:
    """How to log in to a device: its management address, the inventory's login and known_hosts."""
    return Credentials(
        host=device.name, address=str(device.mgmt_address), username=device.username or "",
        password=device.password.get_secret_value() if device.password else "",
        known_hosts=inventory.known_hosts,
    )


def connect(creds: Credentials) -> Any:
    """An open paramiko client; failures become ConnectionFailed, AuthenticationFailed or HostKeyMismatch."""
    import paramiko

    if creds.known_hosts is None:
        raise HostKeyMismatch(creds.host, "no known_hosts file in the inventory: host keys cannot be checked")
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(creds.known_hosts))
    except OSError as exc:
        raise HostKeyMismatch(creds.host, f"cannot read known_hosts {creds.known_hosts}: {exc.strerror}") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(creds.address, port=creds.port, username=creds.username, password=creds.password,
                       timeout=creds.timeout, banner_timeout=creds.timeout, auth_timeout=creds.timeout,
                       look_for_keys=False, allow_agent=False)
    except paramiko.BadHostKeyException:
        raise HostKeyMismatch(creds.host, f"SSH host key of {creds.address} differs from known_hosts") from None
    except paramiko.AuthenticationException:
        raise AuthenticationFailed(creds.host, f"authentication failed for user {creds.username}") from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise HostKeyMismatch(creds.host, f"SSH host key of {creds.address} is not in known_hosts") from None
        raise ConnectionFailed(creds.host, f"SSH to {creds.address} failed: {exc}") from None
    except (TimeoutError, OSError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ConnectionFailed(creds.host, f"cannot reach {creds.address}:{creds.port}: {reason}") from None
    return client
