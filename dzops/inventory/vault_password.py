"""Where an inventory's Vault password comes from, without loading anything else.

Kept apart from the loader (which imports pydantic and the models) so the start of a command can
find the password file before those imports: `dzops.inventory.cache.stretch_ahead`.
"""

from __future__ import annotations

import os
from pathlib import Path

DEMO_VAULT_PASSWORD_FILE = "DEMO-ONLY-vault-password.txt"


def vault_password_file(root: Path, explicit: Path | None) -> Path | None:
    """Where the vault password comes from: option, then environment, then the demo file."""
    for candidate in (explicit, os.environ.get("DZOPS_VAULT_PASSWORD_FILE"),
                      os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")):
        if candidate:
            return Path(candidate)
    demo = (root if root.is_dir() else root.parent) / DEMO_VAULT_PASSWORD_FILE
    return demo if demo.is_file() else None
