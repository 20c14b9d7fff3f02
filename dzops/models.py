"""Small result types shared by execute, report and cli: failures are data, not exceptions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "changed", "failed", "unreachable", "rolled_back", "skipped"]


@dataclass
class HostResult:
    host: str
    status: Status = "ok"
    changed: bool = False
    diff: str = ""
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LinkResult:
    """One WAN link's outcome: both ends, the checks that ran, and what was undone."""

    link: str
    status: Status = "ok"
    changed: bool = False
    verified: bool = False
    rolled_back: bool = False
    failed_check: str | None = None
    error: str | None = None
    subnet: str | None = None
    checks: list[str] = field(default_factory=list)
    hosts: dict[str, HostResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hosts"] = {name: h.to_dict() for name, h in self.hosts.items()}
        return data
