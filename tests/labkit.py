"""Helpers for tests that need the virtual lab of the sample inventory.

Only the management network lives in the root namespace, so a test lab differs from a demo lab
(or another developer's lab) by its prefix and its management /24; everything else stays as in
the shipped sample.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parents[1] / "inventory"
SAMPLE_MGMT = "10.30.0."


def smtp_port(mgmt_octet: int) -> int:
    """Loopback is shared by every lab: each test lab's SMTP server gets a port of its own."""
    return 20000 + mgmt_octet


def copy_sample_inventory(dest: Path, mgmt_octet: int, state_dir: Path) -> Path:
    """A private copy of the sample whose management network is 10.<mgmt_octet>.0.0/24."""
    shutil.copytree(SAMPLE, dest)
    mgmt = f"10.{mgmt_octet}.0."
    for path in list(dest.glob("host_vars/*.yml")) + [dest / "group_vars/all/dzongkhag.yml"]:
        path.write_text(path.read_text().replace(SAMPLE_MGMT, mgmt))
    connection = dest / "group_vars/all/connection.yml"
    connection.write_text(connection.read_text().replace(
        "/var/lib/dzops/punakha/known_hosts", str(state_dir / "known_hosts")))
    operations = dest / "group_vars/all/operations.yml"
    operations.write_text(operations.read_text().replace("/var/lib/dzops/punakha", str(state_dir))
                          .replace("smtp_port: 8025", f"smtp_port: {smtp_port(mgmt_octet)}"))
    return dest


@dataclass
class LabHandle:
    lab: Any  # dzops.lab.builder.Lab
    inventory_dir: Path
    state_dir: Path

    def inventory(self) -> Any:
        from dzops.inventory.loader import load_inventory

        return load_inventory(self.inventory_dir)

    def env(self) -> dict[str, str]:
        """Environment for running `dzops` against this lab in a subprocess."""
        return {**os.environ, "DZOPS_INVENTORY": str(self.inventory_dir), "DZOPS_LAB_PREFIX": self.lab.spec.prefix,
                "DZOPS_LAB_STATE": str(self.state_dir.parent)}
