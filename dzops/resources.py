"""Where dzops' own files are: templates, playbooks, roles, ansible.cfg and the sample inventory.

The one place that knows. A source checkout (an editable install included) keeps them at the
repository's top level, where people edit them; a built wheel carries the same files as package
data in `dzops/_data/` (copied there by the build step in setup.py, never kept twice in git).
Both are found through importlib.resources from the installed `dzops` package, so an install by
pip or pipx works from any directory.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

# What dzops reads at run time, as named in the repository and in the wheel's dzops/_data/.
SHIPPED = ("templates", "playbooks", "roles", "ansible.cfg", "inventory")
PACKAGED_DIR = "_data"


@cache
def data_root() -> Path:
    """The directory holding SHIPPED: dzops/_data in an installed wheel, else the source checkout."""
    package = Path(str(resources.files("dzops")))
    packaged = package / PACKAGED_DIR
    if packaged.is_dir():
        return packaged
    return package.parent


def templates_dir() -> Path:
    """templates/<platform>/*.j2 and templates/report/."""
    return data_root() / "templates"


def playbooks_dir() -> Path:
    return data_root() / "playbooks"


def roles_dir() -> Path:
    return data_root() / "roles"


def ansible_cfg() -> Path:
    return data_root() / "ansible.cfg"


def sample_inventory() -> Path:
    """The shipped sample (Punakha Dzongkhag), used when no ./inventory exists."""
    return data_root() / "inventory"


def missing() -> list[str]:
    """The shipped files that are not where dzops looks for them (empty when the install is whole).

    >>> missing()
    []
    """
    root = data_root()
    return [name for name in SHIPPED if not (root / name).exists()]
