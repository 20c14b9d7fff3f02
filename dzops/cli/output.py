"""stdout carries data, stderr carries messages for people."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from dzops.scrub import egress, egress_data

# Accepted after the sub-command too (`dzops inventory show --json`), as people type it.
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
# Every command that works on many devices at once; default: the inventory's dzops_forks, else 10.
ForksOption = Annotated[int | None, typer.Option(
    "--forks", min=1, max=500, metavar="N", help="Devices worked on at once (default: dzops_forks, else 10).")]
# Every fan-out command: run again where run ID failed (dzops.cli.runs resolves it before the command runs).
RetryFailedOption = Annotated[int | None, typer.Option(
    "--retry-failed", min=1, metavar="ID",
    help="Run again only on what failed in run ID (see `dzops runs`); with --limit, only those in the limit.")]


@dataclass
class Settings:
    """Global options, shared by every command through the Typer context."""

    inventory: Path
    limit: str | None = None
    check: bool = False
    diff: bool = False
    json: bool = False
    verbose: int = 0
    vault_password_file: Path | None = None
    forks_option: int | None = None  # --forks of a fan-out command
    command: str = ""  # the running command's path ('user add'), set by dzops.cli.contract
    lab: str | None = None  # talk to this lab (its own known_hosts), never to it by accident
    retry_failed: int | None = None  # --retry-failed ID of a fan-out command
    retry: Any = None  # what that run failed on (dzops.cli.runs.Retry), resolved before the command runs
    dzongkhags: tuple[Path, ...] = ()  # several inventories (-i): run once per Dzongkhag (dzops.cli.dzongkhags)
    _inventory_cache: Any = field(default=None, repr=False)
    _declared_cache: Any = field(default=None, repr=False)

    @property
    def forks(self) -> int:
        """Devices at once: --forks, else the inventory's dzops_forks (default 10)."""
        return self.forks_option or self.load_inventory().forks

    def load_inventory(self, declared: bool = False) -> Any:
        """The validated inventory (cached for the command's lifetime).

        With `--lab PREFIX` the devices' host keys are checked against that lab's known_hosts,
        never the inventory's: lab keys and production keys stay apart. And a router the lab runs
        an FRR stand-in for (ios, routeros, ...) is driven as the FRR router it is there
        (`dzops.lab.from_inventory.lab_inventory`); `declared=True` keeps its own platform.
        """
        if self._inventory_cache is None:
            from dzops.cli.startup import release_collector
            from dzops.inventory.loader import load_inventory
            from dzops.scrub import inventory_secrets, register_secrets

            inventory = load_inventory(self.inventory, self.vault_password_file)
            if self.lab:
                from dzops.lab.from_inventory import lab_inventory

                inventory = inventory.model_copy(update={"known_hosts": lab_known_hosts(self.lab)})
                self._declared_cache = inventory
                inventory = lab_inventory(inventory)
            self._inventory_cache = inventory
            # From here on every output path masks the Vault's values (see dzops.scrub.egress).
            register_secrets(inventory_secrets(self._inventory_cache))
            release_collector()  # start-up is over: see dzops.cli.startup
        if declared and self._declared_cache is not None:
            return self._declared_cache
        return self._inventory_cache


def lab_known_hosts(prefix: str) -> Path:
    """The known_hosts a lab keeps under its state dir (`dzops lab up` writes it).

    Not required to exist yet (`dzops lab up` itself runs with --lab): a missing file refuses every
    host key, and the refusal names this path.
    """
    from dzops.lab.builder import KNOWN_HOSTS
    from dzops.lab.from_inventory import STATE_ROOT, lab_prefix

    return STATE_ROOT / lab_prefix(prefix) / KNOWN_HOSTS


def _default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


# Everything below is an exit of dzops: each passes the egress filter (scrub rules of the text's
# syntax, "any" when unknown, plus every registered Vault value) before it is written.

def emit_json(data: Any, syntax: str | None = None) -> None:
    """Data on stdout; strings are scrubbed before serialising (a dict's `platform` picks its rules)."""
    plain = json.loads(json.dumps(data, default=_default))
    sys.stdout.write(json.dumps(egress_data(plain, syntax), indent=2, sort_keys=False) + "\n")


def emit_text(text: str, syntax: str | None = None) -> None:
    text = egress(text, syntax)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def record_results(results: Any, **hints: Any) -> None:
    """Hand the run's per-device results to the run ledger, once, where the command has them all
    (see dzops.cli.runs.hand_over; a run outside a recorded command ignores them)."""
    from dzops.cli.runs import hand_over

    hand_over(results, **hints)


def say(message: str) -> None:
    """A message for people (stderr)."""
    sys.stderr.write(egress(message) + "\n")


def error(message: str) -> None:
    sys.stderr.write(f"dzops: error: {egress(message)}\n")
