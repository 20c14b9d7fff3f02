"""`dzops scrub`: a configuration without its secrets, for pasting into a ticket or a mail.

The same rules every dzops output passes through (`dzops.scrub`), on any text an officer has:
a config copied from a router, a file from a server. Every line stays (volatile ones too): only
secret values become `<removed>`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from dzops.cli.contract import contract
from dzops.cli.output import emit_text


def platform_names() -> list[str]:
    """Every name --platform accepts: the scrub tables and the inventory's platform names.

    >>> {"ios", "junos", "routeros", "debian"} <= set(platform_names())
    True
    """
    from dzops.platforms import PLATFORMS
    from dzops.scrub import SYNTAXES

    return sorted(set(SYNTAXES) | set(PLATFORMS))


@contract
def scrub(
    ctx: typer.Context,
    platform: Annotated[str, typer.Option("--platform", "-p", metavar="NAME",
                                          help="Configuration syntax: ios, nxos, eos, asa, junos, routeros, vyos, "
                                               "cumulus, frr, hostapd, linux (or an inventory platform name).")],
    files: Annotated[Optional[list[Path]], typer.Argument(  # noqa: UP045 - typer reads the annotation
        metavar="FILE", help="Files to scrub, printed one after the other (default: standard input).")] = None,
) -> None:
    """Print a configuration with every secret removed (stdin when no FILE is given)."""
    from dzops.exceptions import UsageError
    from dzops.scrub import scrub_secrets, syntax_for

    names = platform_names()
    if platform not in names:
        raise UsageError(f"--platform: unknown platform '{platform}' (known: {', '.join(names)})")
    syntax = syntax_for(platform)
    texts = []
    for path in files or []:
        try:
            texts.append(path.read_text(errors="replace"))
        except OSError as exc:
            raise UsageError(f"{path}: {exc.strerror}") from None
    if not files:
        texts.append(sys.stdin.read())
    for text in texts:
        if text:
            emit_text(scrub_secrets(text, syntax), syntax)
