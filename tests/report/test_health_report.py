"""Health history read back from synthetic runs: uptime, outages, alerts, and the status page."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from dzops.report.health import (
    Change,
    alert_mail,
    changes,
    confirmed,
    history_text,
    summarize,
)
from dzops.state.db import Row

MIN = 60.0


def runs(key: str, statuses: str, every: float = 5 * MIN, site: str = "talo", start: float = 0.0) -> list[Row]:
    """One row per character: u(p), d(own), g (degraded), every `every` seconds from `start`."""
    names = {"u": "up", "d": "down", "g": "degraded"}
    return [Row(start + i * every, key, key.split(":")[0], site, names[c], "", None, None)
            for i, c in enumerate(statuses)]


@pytest.mark.parametrize(("statuses", "until", "uptime", "outages"), [
    ("uuuu", 20 * MIN, 100.0, []),
    # down from 10 to 20 min of 40: 25 %
    ("uuddu", 25 * MIN, 75.0 * 20 / 25 + 0.0, [(10 * MIN, 20 * MIN, "down")]),
    ("dddd", 20 * MIN, 0.0, [(0.0, None, "down")]),
    # degraded then down is one outage, as bad as its worst
    ("ugdu", 20 * MIN, 50.0, [(5 * MIN, 15 * MIN, "down")]),
    ("udud", 20 * MIN, 50.0, [(5 * MIN, 10 * MIN, "down"), (15 * MIN, None, "down")]),
], ids=["all-up", "one-outage", "never-up", "degraded-then-down", "flapping"])
def test_uptime_and_outages(statuses: str, until: float, uptime: float,
                            outages: list[tuple[float, float | None, str]]) -> None:
    [link, site] = summarize(runs("link:hq-talo", statuses), 0.0, until)[::-1]
    assert link.key == "link:hq-talo" and site.key == "site:talo"
    assert link.uptime_pct == pytest.approx(uptime)
    assert [(o.start, o.end, o.status) for o in link.outages] == outages
    assert site.uptime_pct == pytest.approx(uptime)  # the site's only check


def test_a_site_is_as_bad_as_its_worst_check_and_durations_are_shown() -> None:
    rows = runs("lan:talo", "uuuu") + runs("device:gewog-talo-ap1", "uddu")
    by_key = {s.key: s for s in summarize(rows, 0.0, 20 * MIN)}
    assert by_key["site:talo"].uptime_pct == pytest.approx(50.0)
    assert by_key["lan:talo"].uptime_pct == 100.0
    text = history_text(list(by_key.values()), 20 * MIN)
    assert "down from 1970-01-01T00:05:00Z to 1970-01-01T00:15:00Z (10 min)" in text


def test_the_window_cuts_older_runs_and_worst_rtt_and_loss_are_kept() -> None:
    rows = [Row(t, "link:hq-talo", "link", "talo", "up", "", rtt, loss)
            for t, rtt, loss in ((0.0, 90.0, 0.4), (600.0, 2.0, 0.0), (1200.0, 7.5, 0.2))]
    [link] = [s for s in summarize(rows, 300.0, 1800.0) if s.kind == "link"]
    assert (link.samples, link.worst_rtt_ms, link.worst_loss) == (2, 7.5, 0.2)


@pytest.mark.parametrize(("recent", "n", "expected"), [
    ([(30.0, "down"), (20.0, "down"), (10.0, "up")], 2, ("down", 20.0)),
    ([(30.0, "down"), (20.0, "up")], 2, None),  # one bad run is a flap, not an outage
    ([(30.0, "down")], 2, None),
    ([(30.0, "down")], 1, ("down", 30.0)),
    ([(40.0, "up"), (30.0, "up"), (20.0, "up"), (10.0, "down")], 3, ("up", 20.0)),
])
def test_flap_suppression_needs_n_equal_results(recent: list[tuple[float, str]], n: int,
                                                expected: tuple[str, float] | None) -> None:
    assert confirmed(recent, n) == expected


def test_changes_alert_once_per_state_change_with_the_outage_length() -> None:
    down = changes({}, {"link:hq-talo": ("down", 600.0), "lan:hq": ("up", 600.0), "device:x": None},
                   {"link:hq-talo": "no echo reply"}, {"link:hq-talo": ("talo",)})
    assert [(c.key, c.old, c.new) for c in down] == [("link:hq-talo", "up", "down")]
    assert changes({"link:hq-talo": ("down", 600.0)}, {"link:hq-talo": ("down", 600.0)}, {}, {}) == []
    [back] = changes({"link:hq-talo": ("down", 600.0)}, {"link:hq-talo": ("up", 2400.0)}, {}, {})
    assert back.outage_s == 1800.0
    subject, text = alert_mail(back, "Punakha")
    assert "RECOVERED" in subject and "30 min" in subject and "lasted 30 min" in text
    subject, text = alert_mail(down[0], "Punakha")
    assert subject == "[dzops Punakha] DOWN: WAN link hq-talo; unreachable behind it: talo"
    assert "no echo reply" in text and "Unreachable behind hq-talo: talo" in text


def _page(tmp_path: Path) -> Path:
    """A status page of the sample from synthetic runs: hq-talo down for the last two runs."""
    from dzops.cli.health import write_status_page
    from dzops.inventory.loader import load_inventory
    from dzops.plan.health import plan_checks
    from dzops.state import db
    from tests.labkit import copy_sample_inventory

    inventory_dir = copy_sample_inventory(tmp_path / "inventory", 96, tmp_path / "state")
    inventory = load_inventory(inventory_dir)
    now = 1_800_000_000.0
    checks = plan_checks(inventory)
    with db.connect(db.db_path(inventory.report_dir)) as conn:
        for i in range(6):
            at = now - (5 - i) * 300
            rows = []
            for c in checks:
                bad = i >= 4 and c.site == "talo" and c.kind in ("link", "lan")
                rows.append(db.Row(at, c.key, c.kind, c.site, "down" if bad else "up", "", None if bad else 3.0,
                                   1.0 if bad else 0.0))
            db.record_run(conn, at, at + 10, "down" if i >= 4 else "up", rows)
    return write_status_page(inventory, tmp_path / "page", now=now)


def test_status_page_colours_the_map_and_shows_bars_and_links(tmp_path: Path) -> None:
    html = _page(tmp_path).read_text()
    assert re.search(r'data-site="talo" data-status="down"', html)
    assert re.search(r'data-site="barp" data-status="up"', html)
    assert re.search(r'data-link="hq-talo" data-status="down"', html)
    # runs every 5 min for 25 min, down in the last two: down for the last 5 of 25 minutes
    row = re.search(r'<tr data-site="talo">.*?</tr>', html, re.S)
    assert row and row.group(0).count("80.00%") == 3 and "no data" not in row.group(0)
    link_row = re.search(r'<tr data-link="hq-talo">.*?</tr>', html, re.S)
    assert link_row and "3.0 ms" in link_row.group(0) and "100%" in link_row.group(0)


def test_status_page_in_headless_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "apt-get install -y chromium"
    page = _page(tmp_path)
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}"]
        dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                             timeout=180)
        shot = tmp_path / "status.png"
        subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri()],
                       capture_output=True, text=True, timeout=180)
    assert "Punakha" in dom.stdout and "network status" in dom.stdout
    # the browser parsed the map: every site's group is in the DOM, talo drawn in the down colour
    assert dom.stdout.count('class="site"') == 12
    talo = re.search(r'<g class="site" data-site="talo" data-status="down">\s*<rect[^>]*stroke="#c62828"', dom.stdout)
    assert talo, dom.stdout[:2000]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_change_is_frozen() -> None:
    change = Change("link:a", "up", "down", 1.0, "x")
    with pytest.raises(AttributeError):
        change.new = "up"  # type: ignore[misc]
