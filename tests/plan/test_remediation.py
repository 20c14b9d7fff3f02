"""Remediation commands from real frr-reload output.

Each directory of tests/fixtures/remediation holds a running config, an intended config, what FRR
8.4.4's `/usr/lib/frr/frr-reload.py --test --input running.conf intended.conf` printed for them,
and the session an officer would type (commands.txt). A new shape is a new directory, not code.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dzops.execute.drivers.frr import parse_reload_test
from dzops.plan.remediation import command_role, count_changes, negate, reload_sections, remediation_commands

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "remediation"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
FRR_RELOAD = Path("/usr/lib/frr/frr-reload.py")


def _expected(case: str) -> list[str]:
    return (FIXTURES / case / "commands.txt").read_text().splitlines()


def test_every_case_is_there() -> None:
    assert len(CASES) >= 7
    for case in CASES:
        assert {p.name for p in (FIXTURES / case).iterdir()} >= {"running.conf", "intended.conf",
                                                                  "frr-reload-test.txt", "commands.txt"}


@pytest.mark.parametrize("case", CASES)
def test_commands_from_frr_reload_output(case: str) -> None:
    remove, add = reload_sections((FIXTURES / case / "frr-reload-test.txt").read_text())
    assert remediation_commands(remove, add) == _expected(case)


@pytest.mark.parametrize("case", CASES)
def test_the_drivers_collapsed_diff_gives_the_same_commands(case: str) -> None:
    # The FRR driver shows each context once; the session must not depend on that.
    diff = parse_reload_test((FIXTURES / case / "frr-reload-test.txt").read_text())
    assert remediation_commands(diff.remove, diff.add) == _expected(case)


@pytest.mark.parametrize("case", CASES)
def test_session_shape(case: str) -> None:
    commands = _expected(case)
    assert commands[0] == "configure terminal" and commands[-2:] == ["end", "write memory"]
    body = commands[1:-2]
    assert not any(c.lstrip().startswith("no no ") for c in body)
    # Inside each context: every removal before any addition, and every context left with exit.
    depth = 0
    roles: list[str] = []
    for line in body:
        indent = len(line) - len(line.lstrip())
        if line.strip().startswith("exit"):
            assert indent == depth - 1
            depth -= 1
            roles = []
            continue
        if command_role(line) == "context" and indent == depth:
            depth += 1
            roles = []
            continue
        if indent:
            roles.append(command_role(line))
            assert roles == sorted(roles, key=lambda r: r != "remove"), (case, line)
    assert depth == 0


@pytest.mark.parametrize("case", CASES)
def test_fixtures_are_what_frr_reload_prints_today(case: str, tmp_path: Path) -> None:
    # The fixtures are real output: the installed frr-reload still prints them for the same configs.
    for name in ("running.conf", "intended.conf"):
        shutil.copy(FIXTURES / case / name, tmp_path / name)
    proc = subprocess.run([str(FRR_RELOAD), "--test", "--input", "running.conf", "intended.conf"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert reload_sections(proc.stdout) == reload_sections((FIXTURES / case / "frr-reload-test.txt").read_text())


@pytest.mark.parametrize(("remove", "add", "expected"), [
    ([], [], []),
    # only a context alone: entered and left again
    ([], ["interface eth5"], ["configure terminal", "interface eth5", "exit", "end", "write memory"]),
    # a whole context removed at top level
    (["no router ospf"], [], ["configure terminal", "no router ospf", "end", "write memory"]),
    # a doubled no from a driver that negates naively becomes the positive command
    (["no no ipv6 forwarding"], [], ["configure terminal", "ipv6 forwarding", "end", "write memory"]),
    # the same line deleted and re-added by frr-reload is typed once
    (["no ipv6 forwarding"], ["no ipv6 forwarding"], ["configure terminal", "no ipv6 forwarding", "end",
                                                     "write memory"]),
], ids=["nothing", "empty-context", "remove-context", "no-no", "deduplicated"])
def test_edge_shapes(remove, add, expected) -> None:
    assert remediation_commands(remove, add) == expected


def test_negate_and_count() -> None:
    assert [negate(x) for x in (" ip ospf cost 20", "no ipv6 forwarding", "ip route 1.0.0.0/8 2.2.2.2")] == [
        " no ip ospf cost 20", "ipv6 forwarding", "no ip route 1.0.0.0/8 2.2.2.2"]
    assert count_changes(_expected("wrong-address-extra-interface")) == (6, 2)
