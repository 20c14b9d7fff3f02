"""Edits of the inventory files that keep comments, order and style (round-trip YAML), for git diff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dzops.exceptions import InventoryError, Problem


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def file_defining(root: Path, key: str) -> Path:
    """The group_vars file that defines a top-level key (vault files are never edited)."""
    yaml = _yaml()
    for path in sorted((root / "group_vars").rglob("*.y*ml")):
        if path.read_bytes()[:14] == b"$ANSIBLE_VAULT":
            continue
        data = yaml.load(path.read_text())
        if isinstance(data, dict) and key in data:
            return path
    raise InventoryError([Problem(f"no group_vars file defines '{key}'", file=str(root / "group_vars"))])


def write_wan_subnets(root: Path, subnets: dict[str, str]) -> Path | None:
    """Record allocated subnets on their links; links that already have one are left alone."""
    if not subnets:
        return None
    path = file_defining(root, "wan_links")
    yaml = _yaml()
    text = path.read_text()
    yaml.explicit_start = text.lstrip().startswith("---")
    data = yaml.load(text)
    changed = False
    for link in data["wan_links"]:
        name = link.get("name")
        if name in subnets and not link.get("subnet"):
            link["subnet"] = subnets[name]
            changed = True
    if changed:
        with path.open("w") as fh:
            yaml.dump(data, fh)
    return path if changed else None
