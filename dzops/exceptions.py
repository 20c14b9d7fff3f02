"""The one exception tree of dzops.

Per-host failures are results (`dzops.models.HostResult`), not exceptions: these are raised only
when a whole command cannot go on. `dzops.cli.exit_codes` maps each class to an exit code, in
one place.
"""

from __future__ import annotations

from dataclasses import dataclass


class DzopsError(Exception):
    """Root of every error dzops raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One finding about the inventory, located as precisely as the YAML allows."""

    message: str
    file: str | None = None
    line: int | None = None
    host: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else (self.file or "inventory")
        subject = "/".join(part for part in (self.host, self.field) if part)
        return f"{where}: {subject}: {self.message}" if subject else f"{where}: {self.message}"


class InventoryError(DzopsError):
    """The inventory cannot be loaded or is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class VaultError(InventoryError):
    """A Vault file cannot be decrypted (wrong or missing vault password)."""


class UsageError(DzopsError):
    """The command line asks for something that cannot be (unknown host, bad option combination)."""


class LabError(DzopsError):
    """The virtual lab cannot be built, inspected or removed."""


class DeviceError(DzopsError):
    """Talking to one device failed; drivers raise it, the execute layer turns it into a HostResult."""

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(f"{host}: {message}")


class ConnectionFailed(DeviceError):
    """The device did not answer on its management address."""


class AuthenticationFailed(DeviceError):
    """The device refused the credentials from the inventory."""


class HostKeyMismatch(DeviceError):
    """The device's SSH host key is unknown or differs from known_hosts."""


class NotOnboarded(DeviceError):
    """The device answers but lacks what dzops needs on it (the access role): one line says what to run."""

    def __init__(self, host: str, why: str = "") -> None:
        self.why = why
        super().__init__(host, f"not onboarded: run dzops onboard {host}")


class AlreadyRunning(DzopsError):
    """Another run of the same scheduled job holds the lock."""


class MailError(DzopsError):
    """The report could not be delivered; it stays on disk for the next run."""
