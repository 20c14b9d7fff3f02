"""Drift findings, the report's text and HTML, and the backup repository (local git in a temp dir)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest

from dzops.report import drift as report
from dzops.report.scrub import MARKER
from dzops.report.store import Snapshot, changes_between, head, write_and_commit

T0 = dt.datetime(2026, 1, 5, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=6)))


def _device(host: str, site: str, *findings: report.Finding, status: str = "ok") -> report.DeviceReport:
    return report.DeviceReport(host=host, site=site, function="routers", platform="frr", status=status,
                               findings=list(findings))


@pytest.mark.parametrize(("remove", "add", "title", "commands"), [
    ((), (), None, []),
    # frr-reload puts the removal of a static route among its additions, already negated
    ((), ("no ip route 10.9.0.0/16 10.30.255.2",), "1 line(s) to remove, 0 to add",
     ["configure terminal", "no ip route 10.9.0.0/16 10.30.255.2", "end", "write memory"]),
    ((), ("interface eth1", " ip ospf passive"), "0 line(s) to remove, 1 to add",
     ["configure terminal", "interface eth1", " ip ospf passive", "exit", "end", "write memory"]),
    (("interface eth1", " no description hand edited", "interface eth1", " no ip ospf cost 20"),
     ("interface eth1", " description LAN"), "2 line(s) to remove, 1 to add",
     ["configure terminal", "interface eth1", " no description", " no ip ospf cost 20",
      " description LAN", "exit", "end", "write memory"]),
], ids=["agree", "extra-route", "missing-lines", "changed-description"])
def test_intended_finding_carries_the_commands_to_type(remove, add, title, commands) -> None:
    finding = report.intended_finding("r1", "hq", remove, add)
    if title is None:
        assert finding is None
        return
    assert finding is not None and finding.severity == "high" and title in finding.title
    assert list(finding.commands) == commands and finding.detail.splitlines() == commands
    assert finding.to_dict()["commands"] == commands
    assert not any(line.startswith(("- ", "+ ")) for line in finding.detail.splitlines())


def test_intended_finding_never_shows_a_secret() -> None:
    finding = report.intended_finding("r1", "hq", ("interface eth0", " no ip ospf authentication-key Old-K3y"),
                                      ("interface eth0", " ip ospf authentication-key OspfK3y", "banner Druk-Net-X"),
                                      secrets=["Druk-Net-X"])
    assert finding is not None
    assert not any(s in finding.detail or s in str(finding.commands) for s in ("OspfK3y", "Old-K3y", "Druk-Net-X"))
    assert finding.detail.count(MARKER) == 3
    assert f" no ip ospf authentication-key {MARKER}" in finding.commands


@pytest.mark.parametrize(("intended", "running", "titles"), [
    ({"/etc/hostapd/wlan0.conf": "ssid=A\n"}, {"etc/hostapd/wlan0.conf": "ssid=A\n"}, []),
    ({"/etc/hostapd/wlan0.conf": "ssid=A\nchannel=1\n"}, {"etc/hostapd/wlan0.conf": "ssid=A\nchannel=6\n"},
     ["etc/hostapd/wlan0.conf differs from intended"]),
    ({"/etc/hostapd/wlan0.conf": "ssid=A\n"}, {}, ["etc/hostapd/wlan0.conf is missing on the device"]),
    # The intended side holds the real PSK, the backup the marker: the same scrub makes them equal.
    ({"/etc/hostapd/wlan0.conf": "wpa_passphrase=Real-Psk-123\n"}, {"etc/hostapd/wlan0.conf": f"wpa_passphrase={MARKER}\n"},
     []),
], ids=["same", "changed", "missing", "psk-compared-scrubbed"])
def test_intended_file_findings(intended, running, titles) -> None:
    findings = report.intended_file_findings("ap1", "talo", intended, running)
    assert [f.title for f in findings] == titles
    assert all("Real-Psk-123" not in f.detail for f in findings)


def test_changed_file_diff_is_running_to_intended() -> None:
    [finding] = report.intended_file_findings("ap1", "talo", {"/etc/a.conf": "channel=1\n"}, {"etc/a.conf": "channel=6\n"})
    assert "-channel=6" in finding.detail.splitlines() and "+channel=1" in finding.detail.splitlines()


def _sample_report() -> report.DriftReport:
    devices = [
        _device("punakha-hq-rtr1", "hq"),
        _device("gewog-talo-rtr1", "talo",
                report.intended_finding("gewog-talo-rtr1", "talo", (), ("no ip route 10.99.0.0/16 10.30.255.33",)),
                report.Finding("gewog-talo-rtr1", "talo", "out-of-band", "running-config modified",
                               detail="+ip route 10.99.0.0/16 <b>x</b>", path="running-config",
                               noticed="2026-01-05T01:30:00+06:00")),
        _device("gewog-barp-rtr1", "barp",
                report.unreachable_finding("gewog-barp-rtr1", "barp", "unreachable", "gewog-barp-rtr1: cannot reach"),
                status="unreachable"),
    ]
    return report.build_report(dzongkhag="Punakha", generated=T0, baseline="2026-01-04T01:30:00+06:00",
                               devices=devices, notes=["a note"], site_titles={"hq": "Punakha HQ", "talo": "Talo"})


def test_counts_and_drift_flag() -> None:
    r = _sample_report()
    assert r.has_drift
    assert r.counts() == {"devices": 3, "drifted": 1, "unreachable": 1, "intended": 1, "out_of_band": 1,
                          "high": 2, "medium": 1, "low": 0, "info": 0}
    assert not report.build_report(dzongkhag="P", generated=T0, baseline=None, devices=[_device("r", "hq")],
                                   notes=[]).has_drift


def test_unreachable_alone_is_not_drift() -> None:
    r = report.build_report(dzongkhag="P", generated=T0, baseline=None, notes=[], devices=[
        _device("r", "hq", report.unreachable_finding("r", "hq", "unreachable", "r: down"), status="unreachable")])
    assert not r.has_drift and len(r.unreachable) == 1


def test_text_report_lists_each_finding_per_site() -> None:
    text = report.render_text(_sample_report())
    assert text.startswith("Punakha drift report 2026-01-05: DRIFT on 1 device(s), 1 unreachable, 3 device(s) checked")
    assert "devices with drift     1" in text
    assert text.index("Site Punakha HQ") < text.index("Site Talo") < text.index("Site barp")
    assert "[HIGH] intended: running config differs from intended" in text
    assert "\n      configure terminal\n      no ip route 10.99.0.0/16 10.30.255.33\n      end\n      write memory\n" in text
    assert "(noticed 2026-01-05T01:30:00+06:00)" in text
    assert "[HIGH] unreachable: not checked: cannot reach" in text
    assert "punakha-hq-rtr1 (frr): as intended, no change" in text


def test_html_report_escapes_config_text_and_shows_counts_first() -> None:
    html = report.render_html(_sample_report())
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert html.index("devices with drift") < html.index("<h2>Punakha HQ</h2>") < html.index("<h2>Talo</h2>")
    assert html.count('class="sev sev-high"') >= 2 and 'class="sev sev-medium"' in html
    assert '<span class="del">no ip route 10.99.0.0/16 10.30.255.33</span>\n' in html  # lines stay lines
    assert '<pre class="commands">' in html


# -- the backup repository ------------------------------------------------------------------------
def _log(repo: Path) -> list[str]:
    return subprocess.run(["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_one_commit_per_run_and_none_when_nothing_changed(tmp_path: Path) -> None:
    repo = tmp_path / "backups"
    snaps = [Snapshot("r1", "hq", {"running-config": "hostname r1\n"}), Snapshot("ap1", "talo", {"etc/hosts": "x\n"})]
    first = write_and_commit(repo, snaps, when=T0)
    assert first.commit and first.previous is None and set(first.changed) == {"r1", "ap1"}
    assert (repo / "hq/r1/running-config").read_text() == "hostname r1\n"
    again = write_and_commit(repo, snaps, when=T0 + dt.timedelta(days=1))
    assert again.commit is None and head(repo) == first.commit
    assert _log(repo) == ["backup 2026-01-05 01:30: 2 device(s), 2 changed, 0 unreachable"]


def test_unreachable_device_keeps_its_backup_and_is_named_in_the_message(tmp_path: Path) -> None:
    repo = tmp_path / "backups"
    write_and_commit(repo, [Snapshot("r1", "hq", {"running-config": "a\n"}), Snapshot("r2", "hq", {"running-config": "b\n"})],
                     when=T0)
    result = write_and_commit(repo, [Snapshot("r1", "hq", {"running-config": "a2\n"}),
                                     Snapshot("r2", "hq", error="r2: cannot reach 10.30.0.2:22")],
                              when=T0 + dt.timedelta(days=1))
    assert (repo / "hq/r2/running-config").read_text() == "b\n"
    assert result.changed == {"r1": ["hq/r1/running-config"]}
    assert "unreachable:\n  r2: cannot reach 10.30.0.2:22" in result.message
    assert _log(repo)[0] == "backup 2026-01-06 01:30: 2 device(s), 1 changed, 1 unreachable"


def test_removed_file_is_removed_from_the_backup(tmp_path: Path) -> None:
    repo = tmp_path / "backups"
    write_and_commit(repo, [Snapshot("s1", "hq", {"etc/hosts": "a\n", "etc/sudoers.d/x": "y\n"})], when=T0)
    result = write_and_commit(repo, [Snapshot("s1", "hq", {"etc/hosts": "a\n"})], when=T0 + dt.timedelta(hours=1))
    assert result.changed == {"s1": ["hq/s1/etc/sudoers.d/x"]} and not (repo / "hq/s1/etc/sudoers.d/x").exists()


def test_changes_between_says_what_changed_and_when_it_was_first_noticed(tmp_path: Path) -> None:
    repo = tmp_path / "backups"
    base = write_and_commit(repo, [Snapshot("r1", "hq", {"running-config": "hostname r1\n!\n"}),
                                   Snapshot("s1", "hq", {"etc/hosts": "127.0.0.1 localhost\n"})], when=T0).commit
    noticed = T0 + dt.timedelta(days=1)
    write_and_commit(repo, [Snapshot("r1", "hq", {"running-config": "hostname r1\nip route 10.9.0.0/16 10.0.0.2\n!\n"})],
                     when=noticed)
    tip = write_and_commit(repo, [Snapshot("s1", "hq", {"etc/hosts": "127.0.0.1 localhost\n10.1.1.1 rogue\n"}),
                                  Snapshot("r1", "hq", {"running-config": "hostname r1\nip route 10.9.0.0/16 10.0.0.2\n!\n"})],
                           when=noticed + dt.timedelta(days=1)).commit
    changes = {c.host: c for c in changes_between(repo, base, tip)}
    assert set(changes) == {"r1", "s1"}
    assert changes["r1"].noticed == noticed.isoformat() and changes["r1"].status == "modified"
    assert "+ip route 10.9.0.0/16 10.0.0.2" in changes["r1"].diff.splitlines()
    assert changes["s1"].noticed == (noticed + dt.timedelta(days=1)).isoformat()
    assert [c.host for c in changes_between(repo, base, tip, {"s1": "hq"})] == ["s1"]
    assert [f.kind for f in report.out_of_band_findings(changes.values())] == ["out-of-band", "out-of-band"]
