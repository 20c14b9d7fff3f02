"""Where dzops keeps its own private state on this machine, whatever inventory it works on.

Per-inventory state (reports, backups, the health database) lives beside the inventory's
report_dir; what belongs to no single inventory (the inventory load cache) lives here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """DZOPS_STATE_DIR, else $XDG_STATE_HOME/dzops, else ~/.local/state/dzops (not created here).

    >>> str(state_dir({"DZOPS_STATE_DIR": "/srv/dzops-state"}))
    '/srv/dzops-state'
    >>> str(state_dir({"XDG_STATE_HOME": "/home/karma/.state"}))
    '/home/karma/.state/dzops'
    """
    environ = os.environ if environ is None else environ
    explicit = environ.get("DZOPS_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "dzops"
