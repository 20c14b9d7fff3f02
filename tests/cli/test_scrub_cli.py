"""`dzops scrub --platform NAME [FILE...]`: an officer's config, secrets removed, through the real entry point."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dzops.cli.app import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scrub"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def dzops(*args: str, stdin: str = "") -> Run:
    """`dzops ARGS` through the console-script entry point, in-process (exit codes mapped by main)."""
    code: int | str | None = 0
    argv = sys.argv
    with CliRunner().isolation(input=stdin.encode(), env={"DZOPS_DEBUG": None}) as (out, err, _):
        sys.argv = ["dzops", *args]
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.argv = argv
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert isinstance(code, int) or code is None, f"exited with {code!r}"
    return Run(code or 0, stdout, stderr)


def test_stdin_is_scrubbed_and_every_other_line_kept() -> None:
    text = "hostname r1\ninterface lo\n ip ospf authentication-key Typed-At-Console\n description password reset desk\n"
    run = dzops("scrub", "--platform", "frr", stdin=text)
    assert run.code == 0, run.stderr
    assert run.stdout == ("hostname r1\ninterface lo\n ip ospf authentication-key <removed>\n"
                          " description password reset desk\n")


@pytest.mark.parametrize("platform", ["ios", "junos", "routeros", "vyos", "linux"])
def test_files_are_scrubbed_with_their_platform_rules(platform: str) -> None:
    secrets = [s for s in (FIXTURES / f"{platform}.secrets").read_text().splitlines() if s]
    run = dzops("scrub", "--platform", platform, str(FIXTURES / f"{platform}.conf"))
    assert run.code == 0, run.stderr
    assert run.stdout.count("\n") == (FIXTURES / f"{platform}.conf").read_text().count("\n")
    assert not [s for s in secrets if s.strip("'\"") in run.stdout]


def test_several_files_are_printed_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    first.write_text("hostname a\nenable secret 9 $9$first$hash\n")
    second.write_text("hostname b\nsnmp-server community Second-Comm RO\n")
    run = dzops("scrub", "-p", "ios", str(first), str(second))
    assert run.stdout == "hostname a\nenable secret 9 <removed>\nhostname b\nsnmp-server community <removed> RO\n"


def test_inventory_platform_names_are_accepted() -> None:
    run = dzops("scrub", "--platform", "debian", stdin="smtp_password = Mail-Pass\n")
    assert run.code == 0 and run.stdout == "smtp_password = <removed>\n"


def test_unknown_platform_exits_2_and_lists_the_names() -> None:
    run = dzops("scrub", "--platform", "cisco", stdin="password x\n")
    assert run.code == 2
    assert run.stdout == ""
    assert "unknown platform 'cisco'" in run.stderr
    for name in ("ios", "nxos", "eos", "asa", "junos", "routeros", "vyos", "cumulus", "frr", "hostapd", "linux"):
        assert name in run.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    run = dzops("scrub", "--platform", "ios", str(tmp_path / "absent.conf"))
    assert run.code == 2 and "absent.conf" in run.stderr
