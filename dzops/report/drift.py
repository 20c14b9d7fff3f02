"""Drift findings and the drift report: pure functions from configs, diffs and backups to text and HTML.

Three kinds of finding per device:
- `intended`: the running configuration differs from the one rendered from the inventory; the
  finding carries the remediation as the CLI session an officer would type (built from what
  `frr-reload` would delete and add; `dzops drift --remediate` applies the intended config with
  the driver's `load_replace_candidate`, which performs exactly that);
- `out-of-band`: a backed-up file changed since the previous drift run (or backup), with its diff
  and when a backup first noticed it;
- `unreachable` / `failed`: the device could not be checked.
Everything here is already scrubbed text: the report never holds a secret.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

from dzops.report.scrub import egress, scrub

Severity = Literal["high", "medium", "low", "info"]
Kind = Literal["intended", "out-of-band", "unreachable", "failed", "note"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low", "info")
SEVERITY_OF: dict[str, Severity] = {"intended": "high", "unreachable": "high", "failed": "high",
                                    "out-of-band": "medium", "note": "info"}
DRIFT_KINDS = ("intended", "out-of-band")


@dataclass(frozen=True)
class Finding:
    host: str
    site: str
    kind: Kind
    title: str
    detail: str = ""  # a diff, the remediation, or an error message
    path: str | None = None  # the file concerned, if any
    noticed: str | None = None  # ISO time a backup first recorded an out-of-band change
    commands: tuple[str, ...] = ()  # the remediation as typed at the device's CLI (intended findings)

    @property
    def severity(self) -> Severity:
        return SEVERITY_OF[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "commands": list(self.commands), "severity": self.severity}


@dataclass
class DeviceReport:
    host: str
    site: str
    function: str
    platform: str
    status: str  # ok | unreachable | failed
    findings: list[Finding] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return any(f.kind in DRIFT_KINDS for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "site": self.site, "function": self.function, "platform": self.platform,
                "status": self.status, "drifted": self.drifted, "findings": [f.to_dict() for f in self.findings]}


@dataclass
class DriftReport:
    dzongkhag: str
    generated: str  # ISO time of the run
    baseline: str | None  # what out-of-band changes are measured against
    devices: list[DeviceReport]
    notes: list[str] = field(default_factory=list)
    site_titles: dict[str, str] = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        return [f for d in self.devices for f in d.findings]

    @property
    def has_drift(self) -> bool:
        return any(d.drifted for d in self.devices)

    @property
    def unreachable(self) -> list[DeviceReport]:
        return [d for d in self.devices if d.status != "ok"]

    def counts(self) -> dict[str, int]:
        findings = self.findings
        return {
            "devices": len(self.devices),
            "drifted": sum(d.drifted for d in self.devices),
            "unreachable": len(self.unreachable),
            "intended": sum(f.kind == "intended" for f in findings),
            "out_of_band": sum(f.kind == "out-of-band" for f in findings),
            **{s: sum(f.severity == s for f in findings) for s in SEVERITIES},
        }

    def sites(self) -> list[tuple[str, list[DeviceReport]]]:
        """Devices grouped by site, sites in the inventory's order of first appearance."""
        grouped: dict[str, list[DeviceReport]] = {}
        for device in self.devices:
            grouped.setdefault(device.site, []).append(device)
        return list(grouped.items())

    def to_dict(self) -> dict[str, Any]:
        return {"dzongkhag": self.dzongkhag, "generated": self.generated, "baseline": self.baseline,
                "drift": self.has_drift, "counts": self.counts(), "notes": self.notes,
                "devices": [d.to_dict() for d in self.devices]}


# -- findings ---------------------------------------------------------------------------------------
def _scrub_commands(commands: list[str], syntax: str, secrets: list[str]) -> list[str]:
    """Scrub each command as the config line it sets: the rules are anchored at the keyword, after `no `."""
    clean = []
    for command in commands:
        body = command.lstrip()
        indent = command[:len(command) - len(body)]
        negated = body.startswith("no ")
        line = scrub(indent + body.removeprefix("no "), syntax, secrets)
        clean.append(line[:len(indent)] + "no " + line[len(indent):] if negated else line)
    return clean


def intended_finding(host: str, site: str, remove: tuple[str, ...], add: tuple[str, ...],
                     syntax: str = "frr", secrets: Iterable[str] = ()) -> Finding | None:
    """A finding when running and intended differ (None when they agree).

    `remove` and `add` are the config-replace delta as the driver reports it (frr-reload's lines);
    the finding shows them as the commands to type.

    >>> intended_finding("r1", "hq", (), ()) is None
    True
    >>> f = intended_finding("r1", "hq", (), ("no ip route 10.9.0.0/16 10.30.255.2",))
    >>> f.title
    'running config differs from intended: 1 line(s) to remove, 0 to add'
    >>> print(f.detail)
    configure terminal
    no ip route 10.9.0.0/16 10.30.255.2
    end
    write memory
    """
    from dzops.plan.remediation import count_changes, remediation_commands

    commands = remediation_commands(remove, add, syntax)
    if not commands:
        return None
    commands = _scrub_commands(commands, syntax, list(secrets))
    removals, additions = count_changes(commands)
    return Finding(host=host, site=site, kind="intended",
                   title=f"running config differs from intended: {removals} line(s) to remove, {additions} to add",
                   detail="\n".join(commands), commands=tuple(commands))


def candidate_finding(inventory: Any, host: str, site: str, running: str, syntax: str,
                      secrets: Iterable[str] = ()) -> Finding | None:
    """Drift of a NAPALM-platform device (IOS, RouterOS) from its backup, never connecting anywhere.

    `running` is the backup as stored (already scrubbed). The whole intended candidate is built on
    it and scrubbed the same way, so a secret compares as `<removed>` on both sides: a secret that
    differs is not seen here, and none is ever shown. IOS: the commands hier_config computes (real
    `no` lines, in order); RouterOS: the export lines to remove and to add.
    """
    from dzops.plan.candidates import candidate, ros_export_lines
    from dzops.plan.remediation import count_changes, hier_remediation

    device = inventory.devices[host]
    intended = scrub(candidate(inventory, device, running), syntax, secrets)
    if syntax == "ios":
        commands = hier_remediation(running, intended)
        if not commands:
            return None
        commands = _scrub_commands(commands, syntax, list(secrets))
        removals, additions = count_changes(commands)
        return Finding(host=host, site=site, kind="intended",
                       title=f"running config differs from intended: {removals} line(s) to remove, {additions} to add",
                       detail="\n".join(commands), commands=tuple(commands))
    # RouterOS exports no accounts: the candidate's guarded account lines have nothing to compare with.
    have, want = ({line for line in ros_export_lines(text) if not line.startswith((":", "/user "))}
                  for text in (running, intended))
    if have == want:
        return None
    lines = [f"- {line}" for line in sorted(have - want)] + [f"+ {line}" for line in sorted(want - have)]
    return Finding(host=host, site=site, kind="intended",
                   title=f"running config differs from intended: {len(have - want)} line(s) to remove, "
                         f"{len(want - have)} to add", detail="\n".join(lines))


def file_diff(path: str, intended: str, running: str) -> str:
    """A unified diff from the running file to the intended one (what restoring it changes).

    >>> print(file_diff("etc/hostapd/wlan1.conf", "ssid=Staff\\nchannel=1\\n", "ssid=Staff\\nchannel=6\\n"))
    --- running etc/hostapd/wlan1.conf
    +++ intended etc/hostapd/wlan1.conf
    @@ -1,2 +1,2 @@
     ssid=Staff
    -channel=6
    +channel=1
    """
    lines = difflib.unified_diff(running.splitlines(), intended.splitlines(), f"running {path}",
                                 f"intended {path}", lineterm="")
    return "\n".join(lines)


def intended_file_findings(host: str, site: str, intended: dict[str, str], running: dict[str, str],
                           syntax: str = "hostapd", secrets: Iterable[str] = ()) -> list[Finding]:
    """Per intended file: missing on the device, or differing (both sides scrubbed the same way).

    >>> [f.title for f in intended_file_findings("ap1", "talo", {"/etc/a.conf": "x=1\\n", "/etc/b.conf": "y=2\\n"},
    ...                                          {"etc/a.conf": "x=1\\n"})]
    ['etc/b.conf is missing on the device']
    """
    findings = []
    for path, text in sorted(intended.items()):
        key = path.lstrip("/")
        want = scrub(text, syntax, secrets)
        if key not in running:
            findings.append(Finding(host, site, "intended", f"{key} is missing on the device",
                                    detail=file_diff(key, want, ""), path=key))
        elif running[key] != want:
            findings.append(Finding(host, site, "intended", f"{key} differs from intended",
                                    detail=file_diff(key, want, running[key]), path=key))
    return findings


def out_of_band_findings(changes: Iterable[Any]) -> list[Finding]:
    """Findings from `dzops.report.store.FileChange`s (already scrubbed backups)."""
    return [Finding(host=c.host, site=c.site, kind="out-of-band", title=f"{c.path} {c.status} since the baseline",
                    detail=c.diff, path=c.path, noticed=c.noticed) for c in changes]


def unreachable_finding(host: str, site: str, status: str, error: str | None) -> Finding:
    """
    >>> unreachable_finding("r2", "talo", "unreachable", "r2: cannot reach 10.30.0.5:22: timed out").title
    'not checked: cannot reach 10.30.0.5:22: timed out'
    """
    reason = (error or status).removeprefix(f"{host}: ")
    return Finding(host=host, site=site, kind="unreachable" if status == "unreachable" else "failed",
                   title=f"not checked: {reason}")


def build_report(*, dzongkhag: str, generated: dt.datetime, baseline: str | None, devices: list[DeviceReport],
                 notes: list[str], site_titles: dict[str, str] | None = None) -> DriftReport:
    return DriftReport(dzongkhag=dzongkhag, generated=generated.isoformat(timespec="seconds"), baseline=baseline,
                       devices=devices, notes=notes, site_titles=site_titles or {})


# -- rendering --------------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def _environment(html: bool) -> Any:
    import jinja2

    from dzops.plan.remediation import command_role
    from dzops.plan.render import TEMPLATES_DIR

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        autoescape=html,  # config lines hold '<' and '&': the HTML report must escape them
    )
    env.filters["command_role"] = command_role
    return env


def egress_report(report: DriftReport) -> DriftReport:
    """A copy of the report fit to leave dzops: every text through the egress filter of its device's syntax.

    Findings are scrubbed where they are made; this is the one rule at the exit as well, so a
    remediation or diff line no rule caught upstream (a key typed at a console) cannot reach the
    text, the HTML or the mail.

    >>> f = Finding("r1", "hq", "intended", "differs", detail="interface lo\\n ip ospf authentication-key K3y")
    >>> r = DriftReport("Punakha", "2026-01-05", None, [DeviceReport("r1", "hq", "routers", "frr", "ok", [f])])
    >>> egress_report(r).devices[0].findings[0].detail
    'interface lo\\n ip ospf authentication-key <removed>'
    """
    from dataclasses import replace

    from dzops.scrub import egress, syntax_for

    def clean(finding: Finding, syntax: str) -> Finding:
        return replace(finding, title=egress(finding.title, syntax), detail=egress(finding.detail, syntax),
                       commands=tuple(egress(c, syntax) for c in finding.commands))

    devices = [replace(d, findings=[clean(f, syntax_for(d.platform)) for f in d.findings]) for d in report.devices]
    return replace(report, devices=devices, notes=[egress(n) for n in report.notes])


def subject(report: DriftReport) -> str:
    """
    >>> r = DriftReport("Punakha", "2026-01-05T06:00:00+06:00", None, [DeviceReport("r1", "hq", "routers", "frr", "ok")])
    >>> subject(r)
    'Punakha drift report 2026-01-05: no drift, 1 device(s) checked'
    """
    c = report.counts()
    state = (f"DRIFT on {c['drifted']} device(s)" if report.has_drift else "no drift")
    if c["unreachable"]:
        state += f", {c['unreachable']} unreachable"
    return egress(f"{report.dzongkhag} drift report {report.generated[:10]}: {state}, {c['devices']} device(s) checked")


def render_text(report: DriftReport) -> str:
    report = egress_report(report)
    return _environment(False).get_template("report/drift.txt.j2").render(
        report=report, counts=report.counts(), subject=subject(report))


def render_html(report: DriftReport) -> str:
    report = egress_report(report)
    return _environment(True).get_template("report/drift.html.j2").render(
        report=report, counts=report.counts(), subject=subject(report), severities=SEVERITIES)


# -- intent -----------------------------------------------------------------------------------------
def intended_frr_configs(inventory: Any, hosts: Iterable[str]) -> dict[str, str]:
    """The whole intended frr.conf of each FRR router among `hosts`, with every declared WAN link.

    A declared link is intended whether or not provision-wan has written its subnet back yet:
    the subnet is the one `dzops.plan.wan` allocates, the same that `lab up --configured` and
    provision-wan use.
    """
    from dzops.plan.wan import intended_router_configs

    return intended_router_configs(inventory, hosts)
