"""`dzops lab up|status|down`: the virtual Dzongkhag built from the inventory."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build, inspect and remove the virtual lab of the inventory.", no_args_is_help=True,
                  rich_markup_mode=None)
