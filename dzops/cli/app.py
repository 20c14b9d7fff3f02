"""The `dzops` command: global options, sub-command registration, and the one exit-code mapping.

Only light imports here: `dzops --help` must stay fast, so each command imports ansible,
netmiko and friends inside its own function.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from dzops.cli import backup as backup_cmd
from dzops.cli import complete
from dzops.cli import data_backup as data_backup_cmd
from dzops.cli import diagram as diagram_cmd
from dzops.cli import docs as docs_cmd
from dzops.cli import doctor as doctor_cmd
from dzops.cli import drift as drift_cmd
from dzops.cli import health as health_cmd
from dzops.cli import inventory as inventory_cmd
from dzops.cli import lab as lab_cmd
from dzops.cli import onboard as onboard_cmd
from dzops.cli import patch as patch_cmd
from dzops.cli import provision_ap as provision_ap_cmd
from dzops.cli import provision_wan as provision_wan_cmd
from dzops.cli import runs as runs_cmd
from dzops.cli import schedule as schedule_cmd
from dzops.cli import scrub as scrub_cmd
from dzops.cli import user as user_cmd
from dzops.cli.exit_codes import ExitCode, exit_code_for
from dzops.cli.help import DzopsGroup, DzopsTyper
from dzops.cli.output import Settings, error
from dzops.scrub import egress, install_excepthook, install_log_filter

# `dzops --help` lists the commands under the duties of the README's table, in this order.
DUTIES = (
    "Keep the inventory right",
    "Rehearse on a copy of the Dzongkhag",
    "Keep the WAN up",
    "Configure access points",
    "Keep servers patched",
    "Staff accounts everywhere",
    "Back up configs, report drift",
    "Run jobs from cron",
    "Document the network",
    "Check this machine",
)


# At exit the OS takes the memory back: the interpreter's last full collection over every object
# (pydantic schemas, the inventory, each SSH session's leftovers) cost a backup run 0.1-0.3 s.
# Exit handlers registered later (by the command) still run first; stdout and stderr are still flushed.
atexit.register(gc.freeze)


class DzopsRoot(DzopsGroup):
    duties = DUTIES


app = DzopsTyper(
    cls=DzopsRoot,
    name="dzops",
    help="One safe, repeatable command per duty of a Dzongkhag ICT Services Unit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(inventory_cmd.app, name="inventory", rich_help_panel="Keep the inventory right")
app.add_typer(lab_cmd.app, name="lab", rich_help_panel="Rehearse on a copy of the Dzongkhag")
app.command("provision-wan", rich_help_panel="Keep the WAN up")(provision_wan_cmd.provision_wan)
app.add_typer(health_cmd.app, name="health", rich_help_panel="Keep the WAN up")
app.command("provision-ap", rich_help_panel="Configure access points")(provision_ap_cmd.provision_ap)
app.command("patch", rich_help_panel="Keep servers patched")(patch_cmd.patch)
app.add_typer(user_cmd.app, name="user", rich_help_panel="Staff accounts everywhere")
app.command("backup", rich_help_panel="Back up configs, report drift")(backup_cmd.backup)
app.command("drift", rich_help_panel="Back up configs, report drift")(drift_cmd.drift)
app.add_typer(data_backup_cmd.app, name="data-backup", rich_help_panel="Back up configs, report drift")
app.add_typer(schedule_cmd.app, name="schedule", rich_help_panel="Run jobs from cron")
app.command("diagram", rich_help_panel="Document the network")(diagram_cmd.diagram)
app.command("docs", rich_help_panel="Document the network")(docs_cmd.docs)
app.command("scrub", rich_help_panel="Back up configs, report drift")(scrub_cmd.scrub)
app.add_typer(runs_cmd.app, name="runs", rich_help_panel="Back up configs, report drift")
app.command("doctor", rich_help_panel="Check this machine")(doctor_cmd.doctor)
app.command("onboard", rich_help_panel="Keep the inventory right")(onboard_cmd.onboard)


def default_inventory() -> Path:
    """./inventory when the officer runs dzops inside an inventory repo, else the shipped sample."""
    local = Path("inventory")
    if (local / "hosts.yml").is_file():
        return local
    from dzops.resources import sample_inventory

    return sample_inventory()


@app.callback()
def root(
    ctx: typer.Context,
    inventory: Annotated[list[Path] | None, typer.Option(
        "--inventory", "-i", envvar="DZOPS_INVENTORY", metavar="DIR",
        help="Inventory directory (default ./inventory). Repeat it, or name a folder of Dzongkhag inventories, "
             "to run the command once per Dzongkhag.")] = None,
    limit: Annotated[str | None, typer.Option("--limit", "-l", metavar="PATTERN", autocompletion=complete.hosts_and_groups,
                                                   help="Only these hosts: an Ansible host pattern (a,b  g1:&g2  g:!h  ~regex  @file).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Show what would change; touch nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show the configuration diff per device.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr.")] = 0,
    vault_password_file: Annotated[Path | None, typer.Option(
        "--vault-password-file", envvar="DZOPS_VAULT_PASSWORD_FILE", metavar="FILE",
        help="File holding the Vault password (default: ANSIBLE_VAULT_PASSWORD_FILE, then the demo file)."),
    ] = None,
    lab: Annotated[str | None, typer.Option(
        "--lab", envvar="DZOPS_LAB", metavar="PREFIX",
        help="Talk to the virtual lab PREFIX: host keys from the lab's known_hosts, not the inventory's.")] = None,
) -> None:
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    install_log_filter()  # log records leave through stderr: they pass the egress filter too
    from dzops.cli.dzongkhags import expand
    from dzops.inventory.cache import stretch_ahead

    inventories = expand(inventory or [default_inventory()])
    stretch_ahead(inventories[0], vault_password_file)  # beside the command's own imports
    ctx.obj = Settings(inventory=inventories[0], dzongkhags=tuple(inventories) if len(inventories) > 1 else (),
                       limit=limit, check=check, diff=diff,
                       json=json_output, verbose=verbose, vault_password_file=vault_password_file, lab=lab)


def main() -> None:
    """Console-script entry point: the only place an exception becomes an exit code."""
    from dzops.cli.startup import hold_collector
    from dzops.exceptions import DzopsError, InventoryError

    hold_collector()
    install_excepthook()  # DZOPS_DEBUG=1 re-raises: the traceback passes the egress filter too
    try:
        app()
    except InventoryError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{egress(str(problem))}\n")
        error(f"inventory {'has' if len(exc.problems) != 1 else 'has'} {len(exc.problems)} problem(s)")
        sys.exit(exit_code_for(exc))
    except DzopsError as exc:
        error(str(exc))
        sys.exit(exit_code_for(exc))
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - anything else still gets one line, not a traceback
        if os.environ.get("DZOPS_DEBUG"):
            raise
        error(f"unexpected {type(exc).__name__}: {exc} (set DZOPS_DEBUG=1 for a traceback)")
        sys.exit(ExitCode.ERROR)
