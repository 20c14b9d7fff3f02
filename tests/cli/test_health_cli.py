"""`dzops health` through the console-script entry point, the execute layer replaced by a spy:
findings and exit codes, history recorded, alerts confirmed after `alert_after` runs and kept in
the outbox while SMTP is down, and the scheduled job under the same lock rules as the others."""

from __future__ import annotations

import json
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from dzops.cli.exit_codes import ExitCode
from dzops.plan.health import Result
from tests.cli.test_option_contract import World, dzops, world, world_root, world_template  # noqa: F401 - fixtures

DOWN = {"link:hq-talo", "lan:talo", "device:gewog-talo-ap1", "ap:gewog-talo-ap1"}


def _spy(monkeypatch: pytest.MonkeyPatch, down: set[str], unmeasured: set[str] = frozenset(),
         status: str = "down") -> None:
    from dzops.execute import health

    def run_health(inventory: Any, checks: list[Any], progress: Any = None) -> list[Any]:
        # a device's answer may quote a secret (here the routers' login password): no mail may carry it
        password = inventory.devices["gewog-talo-rtr1"].password.get_secret_value()
        return health.HealthResults(
            [Result(c.key, c.kind, c.site, status if c.key in down else "up",
                    f"no echo reply (as {password})" if c.key in down else "", 3.0, 0.5 if c.key in down else 0.0)
             for c in checks if c.key not in unmeasured],
            [health.Unmeasured(c.key, c.kind, c.site, "not measurable on this login: vtysh's ping")
             for c in checks if c.key in unmeasured])

    monkeypatch.setattr(health, "run_health", run_health)


def _reports(w: World) -> Path:
    return w.root / "state" / "reports"


def _outbox(w: World) -> list[Any]:
    return [BytesParser(policy=policy.default).parsebytes(p.read_bytes())
            for p in sorted((_reports(w) / "outbox").glob("*.eml"))]


def test_a_cut_site_is_one_finding_and_one_queued_alert_after_n_runs(world: World,  # noqa: F811
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _spy(monkeypatch, DOWN)
    first = dzops(world, "health")
    assert first.code == ExitCode.HEALTH_DEGRADED, first.stderr
    [line] = [ln for ln in first.stdout.splitlines() if ln.startswith("DOWN")]
    assert "link:hq-talo" in line and "talo unreachable behind hq-talo" in line
    assert _outbox(world) == []  # one bad run is not yet an outage (alert_after: 2)

    second = dzops(world, "health")
    assert second.code == ExitCode.HEALTH_DEGRADED
    assert "alert kept in the outbox" in second.stderr  # the world's SMTP port is closed
    [mail] = _outbox(world)
    assert mail["Subject"] == "[dzops Punakha] DOWN: WAN link hq-talo; unreachable behind it: talo"
    # the status page goes with the alert: its summary under the text, the page (alert on top) as HTML
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Punakha network status at" in text and "WAN links not up:\n  hq-talo down" in text
    [talo_line] = [line for line in text.splitlines() if line.startswith("talo ")]
    assert talo_line.split()[1] == "down" and talo_line.count("%") == 3
    assert '<pre id="notice">' in html and 'data-site="talo" data-status="down"' in html
    assert 'http-equiv="refresh"' not in html  # a mail is not a page to reload
    password = world_password(world)
    assert password not in text and password not in html and "as <removed>)" in text

    assert dzops(world, "health").code == ExitCode.HEALTH_DEGRADED
    assert len(_outbox(world)) == 1  # still down: no second alert, the first still waits

    _spy(monkeypatch, set())
    assert dzops(world, "health").code == ExitCode.OK
    assert dzops(world, "health").code == ExitCode.OK
    # outbox names sort by the second queued, then at random: within one second the order is not kept
    subjects = sorted(str(m["Subject"]) for m in _outbox(world))
    assert len(subjects) == 2 and subjects[0].startswith("[dzops Punakha] DOWN: WAN link hq-talo")
    assert subjects[1].startswith("[dzops Punakha] RECOVERED: WAN link hq-talo (down ")

    history = dzops(world, "--json", "health", "history", "--since", "1h", "--site", "talo")
    assert history.code == ExitCode.OK, history.stderr
    subjects_by_key = {s["key"]: s for s in json.loads(history.stdout)["subjects"]}
    assert set(subjects_by_key) >= {"link:hq-talo", "lan:talo", "site:talo"}
    assert all(s["site"] == "talo" for s in subjects_by_key.values())
    [outage] = subjects_by_key["link:hq-talo"]["outages"]
    assert outage["end"] is not None and outage["status"] == "down"
    assert (_reports(world) / "status" / "index.html").is_file()


def test_a_link_that_comes_back_lossy_is_one_outage_from_its_first_down_run_to_its_recovery(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import re

    for status, runs in (("down", 2), ("degraded", 2)):
        _spy(monkeypatch, {"link:hq-talo"}, status=status)
        for _ in range(runs):
            assert dzops(world, "health").code == ExitCode.HEALTH_DEGRADED
    _spy(monkeypatch, set())
    for _ in range(2):
        assert dzops(world, "health").code == ExitCode.OK
    mails = sorted(_outbox(world), key=lambda m: ("DOWN" not in m["Subject"], "RECOVERED" in m["Subject"]))
    assert [str(m["Subject"]).split(":")[0] for m in mails] == \
        ["[dzops Punakha] DOWN", "[dzops Punakha] DEGRADED", "[dzops Punakha] RECOVERED"]
    history = dzops(world, "--json", "health", "history", "--since", "1h")
    [outage] = {s["key"]: s for s in json.loads(history.stdout)["subjects"]}["link:hq-talo"]["outages"]
    lasted = re.search(r"The outage lasted (\d+) s \(degraded before\)", mails[2].get_body(("plain",)).get_content())
    assert lasted is not None
    # the whole outage, from the first down run, not only its lossy end
    assert abs(int(lasted.group(1)) - outage["duration_s"]) <= 1, (lasted.group(0), outage)


def world_password(w: World) -> str:
    from dzops.inventory.loader import load_inventory

    return load_inventory(w.inventory, w.vault_file).devices["gewog-talo-rtr1"].password.get_secret_value()


def test_what_the_login_cannot_measure_is_shown_as_data_not_as_down(world: World,  # noqa: F811
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _spy(monkeypatch, set(), unmeasured={"lan:talo", "lan:guma"})
    run = dzops(world, "--check", "health")
    assert run.code == ExitCode.OK, run.stderr
    na = sorted(line.split()[1] for line in run.stdout.splitlines() if line.startswith("N/A "))
    assert na == ["lan:guma", "lan:talo"]
    assert run.stdout.splitlines()[-1].endswith("0 finding(s), 2 not measurable")
    data = json.loads(dzops(world, "--check", "--json", "health").stdout)
    assert data["status"] == "up" and sorted(u["key"] for u in data["unmeasured"]) == ["lan:guma", "lan:talo"]
    assert "lan:talo" not in {r["key"] for r in data["results"]}


def test_check_runs_the_checks_and_records_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    _spy(monkeypatch, DOWN)
    run = dzops(world, "--check", "--json", "health", "--site", "talo")
    assert run.code == ExitCode.HEALTH_DEGRADED, run.stderr
    data = json.loads(run.stdout)
    assert data["check"] is True and {r["site"] for r in data["results"]} == {"talo"}
    assert not _reports(world).exists()
    # The run itself is in the run ledger (every --check run is); the health history stays empty.
    import sqlite3

    with sqlite3.connect(world.root / "state" / "dzops.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)
        assert conn.execute("SELECT command, check_mode FROM ledger_runs").fetchall() == [("health", 1)]


@pytest.mark.parametrize(("args", "message"), [
    (["health", "--site", "tallo"], "--site: unknown site 'tallo'"),
    (["health", "history", "--since", "soon"], "--since: a number and a unit"),
])
def test_bad_options_are_usage_errors(world: World, args: list[str], message: str) -> None:  # noqa: F811
    run = dzops(world, *args)
    assert run.code == ExitCode.USAGE and message in run.stderr


def test_health_is_a_schedulable_job_and_a_degraded_run_is_not_a_failed_job(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    install = dzops(world, "schedule", "install", "health", "--cron", "*/5 * * * *")
    assert install.code == ExitCode.OK, install.stderr
    [entry] = [ln for ln in world.crontab.read_text().splitlines() if "schedule run health" in ln]
    assert entry.startswith("*/5 * * * * ") and "locks/health.lock" in entry

    from dzops.cli import schedule as schedule_cli

    monkeypatch.setattr(schedule_cli, "_run_other", lambda settings, job: (ExitCode.HEALTH_DEGRADED, "degraded\n"))
    run = dzops(world, "schedule", "run", "health")
    assert run.code == ExitCode.HEALTH_DEGRADED
    assert not (_reports(world) / "schedule-failures").exists()  # its alerts are health's own, on state change
    assert "failure report" not in run.stderr
