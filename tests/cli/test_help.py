"""Help reads as words (no Python types), commands come grouped by duty, and TAB completes
hosts, links, sites, users and jobs from the inventory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from dzops.cli import complete
from dzops.cli.app import DUTIES, app
from dzops.cli.help import DzopsCommand, DzopsGroup

SAMPLE = Path(__file__).resolve().parents[2] / "inventory"
# What Typer's plain help printed before: `<list[str]>`, `<path>`, `<str>`, `{login}`.
PYTHON_TYPES = re.compile(r"<(list\[|str>|path>|int>|float>|file>)|\{[a-z_]+\}")


def _walk(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _walk(sub, (*path, name))
    return found


COMMANDS = _walk(get_command(app))


def _help(*argv: str) -> str:
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def test_top_level_help_groups_commands_under_the_readme_duties_in_order() -> None:
    text = _help()
    titles = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    duties = [t for t in titles if t not in ("Options", "Arguments")]
    assert duties == [d for d in DUTIES if d in duties] and len(duties) >= 9, duties
    sections = dict(re.findall(r"^(\S[^\n]*):\n((?:  \S[^\n]*\n?)+)", text, flags=re.M))
    for duty, commands in [("Keep the WAN up", ["provision-wan"]), ("Configure access points", ["provision-ap"]),
                           ("Back up configs, report drift", ["backup", "drift"]),
                           ("Document the network", ["diagram", "docs"]), ("Run jobs from cron", ["schedule"]),
                           ("Check this machine", ["doctor"])]:
        listed = [line.split()[0] for line in sections[duty].splitlines()]
        assert listed[:len(commands)] == commands, (duty, listed)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "dzops" for p, _ in COMMANDS])
def test_every_help_page_names_values_by_words(path: tuple[str, ...], command: Any) -> None:
    assert isinstance(command, DzopsCommand | DzopsGroup), f"{' '.join(path)} is built without dzops' help classes"
    text = _help(*path)
    assert not PYTHON_TYPES.search(text), text


@pytest.mark.parametrize(("argv", "shown"), [
    ([], "-i, --inventory DIR"),
    ([], "-l, --limit PATTERN"),
    ([], "--vault-password-file FILE"),
    (["provision-wan"], "dzops provision-wan [OPTIONS] [LINK]..."),
    (["provision-wan"], "--site SITE"),
    (["provision-ap"], "dzops provision-ap [OPTIONS] [AP]..."),
    (["user", "add"], "dzops user add [OPTIONS] LOGIN"),
    (["user", "add"], "--key FILE"),
    (["inventory", "show"], "[HOST]"),
    (["diagram"], "--format svg|png|drawio|mermaid[,...]"),
    (["schedule", "install"], "dzops schedule install [OPTIONS] JOB"),
    (["lab", "link"], "NODE IFACE up|down"),
])
def test_help_shows_the_words_people_type(argv: list[str], shown: str) -> None:
    assert shown in " ".join(_help(*argv).split())


def _context(inventory: Path | None) -> typer.Context:
    root = get_command(app)
    ctx = typer.Context(root, info_name="dzops", resilient_parsing=True)
    ctx.params = {"inventory": inventory, "vault_password_file": None}
    return ctx


@pytest.mark.parametrize(("callback", "typed", "expected"), [
    (complete.hosts, "punakha-hq-", ["punakha-hq-rtr1", "punakha-hq-srv1", "punakha-hq-sw1", "punakha-hq-web1"]),
    (complete.access_points, "gewog-t", ["gewog-talo-ap1", "gewog-toebesa-ap1", "gewog-toewang-ap1"]),
    (complete.links, "hq-t", ["hq-talo", "hq-toebesa", "hq-toewang"]),
    (complete.sites, "t", ["talo", "toebesa", "toewang"]),
    (complete.hosts_and_groups, "site_g", ["site_goenshari", "site_guma"]),
    (complete.users, "karm", ["karma"]),
])
def test_completion_offers_what_the_inventory_declares(callback: Any, typed: str, expected: list[str]) -> None:
    assert callback(_context(SAMPLE), typed) == expected


def test_completion_reads_the_inventory_given_with_i(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(SAMPLE, inventory)
    links = inventory / "group_vars" / "all" / "wan_links.yml"
    links.write_text(links.read_text().replace("name: hq-talo\n", "name: hq-talo-fibre\n"))
    assert complete.links(_context(inventory), "hq-talo") == ["hq-talo-fibre"]


def test_completion_of_a_broken_inventory_is_empty_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text("all: [not, a, mapping\n")
    assert complete.hosts(_context(tmp_path), "") == []


@pytest.mark.parametrize(("words", "expected"), [
    ("dzops provision-wan hq-to", ["hq-toebesa", "hq-toewang"]),
    ("dzops schedule install ", ["backup", "data-backup", "data-backup-check", "drift", "health", "patch"]),
    ("dzops diagram --format svg,d", ["svg,drawio"]),
    ("dzops lab link gewog-talo-rtr1 eth0 ", ["down", "up"]),
])
def test_the_shell_gets_the_completions(words: str, expected: list[str]) -> None:
    """The protocol the installed bash completion script speaks to dzops."""
    env = {**os.environ, "_DZOPS_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)), "DZOPS_INVENTORY": str(SAMPLE)}
    dzops = Path(sys.executable).parent / "dzops"  # the venv's own console script, not whatever PATH finds
    proc = subprocess.run([str(dzops)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == expected, proc.stderr


@pytest.mark.parametrize(("argv", "scope", "check"), [
    ([], "every", True),  # what officers type: every AP, what would change, nothing touched
    (["--all"], "every", False),
    (["--check", "gewog-talo-ap1"], ["gewog-talo-ap1"], True),
], ids=["bare", "all", "one-checked"])
def test_a_bare_provision_ap_checks_every_access_point(monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                       scope: Any, check: bool) -> None:
    calls: dict[str, Any] = {}

    def provision(inventory: Any, aps: list[str], **kwargs: Any) -> list[Any]:
        from dzops.models import HostResult

        calls.update(scope=sorted(aps), check=kwargs["check"])
        return [HostResult(host=ap) for ap in aps]  # one result per AP, as the real run gives

    monkeypatch.setattr("dzops.execute.ap.provision_ap", provision)
    result = CliRunner().invoke(app, ["-i", str(SAMPLE), "provision-ap", *argv])
    assert result.exit_code == 0, result.output
    every = complete.access_points(_context(SAMPLE), "")
    assert calls == {"scope": every if scope == "every" else scope, "check": check} and len(every) == 11
