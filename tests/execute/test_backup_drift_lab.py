"""`dzops backup` and `dzops drift` against the provisioned lab: real routers, APs, servers and SMTP.

Every CLI run uses a private copy of the lab's inventory whose backup repository and report
directory live in this module's temp dir (the lab's SMTP server has no AUTH, so the copy sends
without a login). Hand-made changes are undone before each test ends.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode

pytestmark = pytest.mark.lab

ROUTER = "gewog-talo-rtr1"
AP = "gewog-talo-ap1"
SERVER = "punakha-hq-srv1"
HAND_ROUTE = "ip route 10.99.0.0/16 blackhole"
HOSTS_LINE = "10.30.1.99 rogue.punakha.gov.bt"
HOSTAPD_LINE = "# tuned by hand at the console"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@dataclass
class Env:
    inventory_dir: Path
    repo: Path
    reports: Path
    maildir: Path
    lab: object
    env: dict[str, str]
    captured: list[str] = field(default_factory=list)  # every stdout/stderr of every run, for the secrets test

    def run(self, *args: str, inventory: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, DZOPS_INVENTORY=str(inventory or self.inventory_dir))
        proc = subprocess.run([sys.executable, "-m", "dzops", *args], env=env, capture_output=True, text=True,
                              timeout=600)
        self.captured += [proc.stdout, proc.stderr]
        return proc


def _set_operations(inventory_dir: Path, repo: Path, reports: Path, smtp_port: int | None = None) -> None:
    path = inventory_dir / "group_vars/all/operations.yml"
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("backup_repository:"):
            line = f"backup_repository: {repo}"
        elif line.startswith("report_dir:"):
            line = f"report_dir: {reports}"
        elif smtp_port is not None and line.strip().startswith("smtp_port:"):
            line = f"  smtp_port: {smtp_port}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def bk(provisioned_lab, tmp_path_factory) -> Iterator[Env]:
    handle = provisioned_lab.handle
    root = tmp_path_factory.mktemp("backup-drift")
    inventory_dir = root / "inventory"
    shutil.copytree(handle.inventory_dir, inventory_dir)
    repo, reports = root / "config-backups", root / "reports"
    _set_operations(inventory_dir, repo, reports)
    yield Env(inventory_dir=inventory_dir, repo=repo, reports=reports, maildir=handle.state_dir / "mail",
              lab=handle.lab, env=handle.env())


def _head(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _read(lab, node: str, path: str) -> str:
    proc = lab.exec(node, ["cat", path])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _write(lab, node: str, path: str, text: str) -> None:
    proc = lab.exec(node, ["sh", "-c", f"cat > {path}"], input=text)
    assert proc.returncode == 0, proc.stderr


def _running(lab, node: str) -> str:
    return lab.exec(node, ["vtysh", "-c", "show running-config"]).stdout


def test_backup_commits_every_device_then_nothing_when_unchanged(bk: Env) -> None:
    first = bk.run("backup", "--json")
    assert first.returncode == ExitCode.OK, first.stderr
    data = json.loads(first.stdout)
    assert {d["status"] for d in data["devices"]} == {"ok"} and len(data["devices"]) == 37
    assert (bk.repo / "talo" / ROUTER / "running-config").read_text().count("hostname gewog-talo-rtr1") == 1
    assert (bk.repo / "talo" / AP / "etc/default/hostapd").is_file()
    assert (bk.repo / "hq" / SERVER / "etc/hosts").is_file()
    assert (bk.repo / "hq" / SERVER / "etc/sudoers.d").is_dir()  # read as root
    assert not list(bk.repo.rglob("shadow"))
    assert "Building configuration" not in (bk.repo / "talo/gewog-talo-sw1/running-config").read_text()
    commit = _head(bk.repo)
    second = bk.run("backup")
    assert second.returncode == ExitCode.OK, second.stderr
    assert "nothing changed, no commit" in second.stderr and _head(bk.repo) == commit


def test_unreachable_device_is_listed_not_fatal(bk: Env) -> None:
    bk.lab.stop_daemon(ROUTER, "sshd")
    try:
        proc = bk.run("backup", "--json", "--limit", f"{ROUTER},gewog-talo-sw1")
    finally:
        bk.lab.start_daemon(ROUTER, "sshd")
    assert proc.returncode == ExitCode.UNREACHABLE, proc.stderr
    states = {d["host"]: d["status"] for d in json.loads(proc.stdout)["devices"]}
    assert states == {ROUTER: "unreachable", "gewog-talo-sw1": "ok"}
    assert f"unreachable: {ROUTER}: cannot reach" in proc.stderr
    assert (bk.repo / "talo" / ROUTER / "running-config").is_file()  # the last backup stays


def _findings(report: dict, kind: str) -> set[tuple[str, str | None]]:
    return {(d["host"], f["path"]) for d in report["devices"] for f in d["findings"] if f["kind"] == kind}


def test_drift_lists_exactly_the_hand_made_changes_and_remediation_restores(bk: Env, provisioned_lab) -> None:
    from dzops.execute.drivers import driver_for
    from dzops.execute.ssh import credentials
    from dzops.inventory.loader import load_inventory
    from dzops.report.drift import intended_frr_configs

    lab = bk.lab
    # Provisioned APs: edit one of the SSID files provision-ap wrote; factory APs: Debian's own file.
    ap_file = "/etc/default/hostapd"
    if provisioned_lab.extra.get("ap"):
        from dzops.plan.ap import intended_ap_files

        inventory = load_inventory(bk.inventory_dir)
        ap_file = sorted(p for p in intended_ap_files(inventory, inventory.devices[AP])
                         if p.startswith("/etc/hostapd/") and p.endswith(".conf"))[0]
    baseline = bk.run("drift", "--json")  # the baseline every later change is measured against
    assert baseline.returncode in (ExitCode.OK, ExitCode.DRIFT_FOUND), baseline.stderr
    before_router = _running(lab, ROUTER)
    hosts_file, hostapd_file = _read(lab, SERVER, "/etc/hosts"), _read(lab, AP, ap_file)
    inventory = load_inventory(bk.inventory_dir)
    [intended] = intended_frr_configs(inventory, [ROUTER]).values()
    try:
        console = lab.exec(ROUTER, ["vtysh", "-c", "conf t", "-c", HAND_ROUTE])
        assert console.returncode == 0, console.stderr
        _write(lab, SERVER, "/etc/hosts", hosts_file + HOSTS_LINE + "\n")
        _write(lab, AP, ap_file, hostapd_file + HOSTAPD_LINE + "\n")

        proc = bk.run("drift", "--json")
        assert proc.returncode == ExitCode.DRIFT_FOUND, proc.stderr
        report = json.loads(proc.stdout)
        assert _findings(report, "out-of-band") == {(ROUTER, "running-config"), (SERVER, "etc/hosts"),
                                                    (AP, ap_file.lstrip("/"))}
        by_host = {d["host"]: d for d in report["devices"]}
        [router_oob] = [f for f in by_host[ROUTER]["findings"] if f["kind"] == "out-of-band"]
        assert f"+{HAND_ROUTE}" in router_oob["detail"].splitlines()
        assert router_oob["noticed"].startswith(report["generated"][:10])
        [hosts_oob] = [f for f in by_host[SERVER]["findings"] if f["kind"] == "out-of-band"]
        assert hosts_oob["detail"].splitlines().count(f"+{HOSTS_LINE}") == 1
        [ap_oob] = [f for f in by_host[AP]["findings"] if f["kind"] == "out-of-band"]
        assert f"+{HOSTAPD_LINE}" in ap_oob["detail"].splitlines()
        if provisioned_lab.extra.get("ap"):
            # The provisioned AP matches its intent except for the hand-edited file, and only there.
            assert {p for h, p in _findings(report, "intended") if h == AP} == {ap_file.lstrip("/")}
            [ap_intended] = [f for f in by_host[AP]["findings"] if f["kind"] == "intended"]
            assert f"-{HOSTAPD_LINE}" in ap_intended["detail"].splitlines()
        # Intended vs running: only the hand-changed router drifted, and the remediation undoes that one line.
        routers_drifted = {h for h, _ in _findings(report, "intended") if inventory.devices[h].function == "routers"}
        assert routers_drifted == {ROUTER}
        [router_intended] = [f for f in by_host[ROUTER]["findings"] if f["kind"] == "intended"]
        assert router_intended["severity"] == "high"
        assert router_intended["commands"] == ["configure terminal", f"no {HAND_ROUTE}", "end", "write memory"]
        assert router_intended["detail"].splitlines() == router_intended["commands"]
        saved = Path(report["report"]["text"]).read_text()
        assert HAND_ROUTE in saved and HOSTS_LINE in saved and Path(report["report"]["html"]).is_file()

        # Applying the remediation (the intended config, replaced) restores the router exactly.
        driver = driver_for("frr", credentials(inventory, inventory.devices[ROUTER]))
        driver.open()
        try:
            applied = driver.load_replace_candidate(intended)
            assert not applied.empty
            assert driver.compare_config(intended).empty
        finally:
            driver.close()
        assert HAND_ROUTE not in _running(lab, ROUTER)
        assert _running(lab, ROUTER) == before_router
    finally:
        if HAND_ROUTE in _running(lab, ROUTER):
            lab.exec(ROUTER, ["vtysh", "-c", "conf t", "-c", f"no {HAND_ROUTE}"])
        _write(lab, SERVER, "/etc/hosts", hosts_file)
        _write(lab, AP, ap_file, hostapd_file)
    after = bk.run("drift", "--json", "--limit", ROUTER)
    assert not _findings(json.loads(after.stdout), "intended"), after.stdout


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _parts(message) -> set[str]:
    return {part.get_content_type() for part in message.walk()}


def test_email_arrives_with_html_and_text_and_renders_in_chromium(bk: Env) -> None:
    from dzops.lab.smtp import read_mail

    before = len(read_mail(bk.maildir))
    proc = bk.run("drift", "--email")
    assert proc.returncode in (ExitCode.OK, ExitCode.DRIFT_FOUND), proc.stderr
    mails = read_mail(bk.maildir)[before:]
    assert len(mails) == 1 and "drift report" in mails[0]["Subject"]
    assert {"text/plain", "text/html"} <= _parts(mails[0])
    html_part = mails[0].get_body(preferencelist=("html",)).get_content()
    assert "devices with drift" in html_part and ROUTER in html_part

    [html_path] = sorted(bk.reports.glob("drift-*.html"))[-1:]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "drift.png"
    shot.unlink(missing_ok=True)
    profile = bk.reports.parent / "chromium-profile"
    chromium = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1280,2000", f"--screenshot={shot}", html_path.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert chromium.returncode == 0, chromium.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)


def test_smtp_down_keeps_the_report_and_the_next_run_delivers_it(bk: Env, tmp_path: Path) -> None:
    from dzops.lab.smtp import read_mail

    down = tmp_path / "inventory-smtp-down"
    shutil.copytree(bk.inventory_dir, down)
    _set_operations(down, bk.repo, bk.reports, smtp_port=_closed_port())
    outbox = bk.reports / "outbox"
    reports_before = set(bk.reports.glob("drift-*.txt"))
    mails_before = len(read_mail(bk.maildir))

    failed = bk.run("drift", "--email", inventory=down)
    assert failed.returncode == ExitCode.MAIL_FAILED, failed.stderr
    assert "kept in" in failed.stderr and len(list(outbox.glob("*.eml"))) == 1
    assert len(set(bk.reports.glob("drift-*.txt")) - reports_before) == 1  # saved anyway
    assert len(read_mail(bk.maildir)) == mails_before

    delivered = bk.run("drift", "--email")
    assert delivered.returncode in (ExitCode.OK, ExitCode.DRIFT_FOUND), delivered.stderr
    assert "mailed 2 report(s)" in delivered.stderr
    assert not list(outbox.glob("*.eml"))
    assert len(read_mail(bk.maildir)) == mails_before + 2


def test_no_vault_value_in_any_backup_report_or_log(bk: Env) -> None:
    import yaml
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = (bk.inventory_dir / "DEMO-ONLY-vault-password.txt").read_bytes().strip()
    vault = VaultLib([("default", VaultSecret(password))])
    values = [str(v) for v in yaml.safe_load(vault.decrypt((bk.inventory_dir / "group_vars/all/vault.yml")
                                                           .read_bytes())).values()]
    assert len(values) >= 5
    # Verbose runs of both commands, so their logs are in the captured output too.
    for args in (("-vv", "backup"), ("-vv", "drift", "--email")):
        proc = bk.run(*args)
        assert proc.returncode in (ExitCode.OK, ExitCode.DRIFT_FOUND), proc.stderr
    texts: dict[str, str] = {}
    for root in (bk.repo, bk.reports):
        for path in root.rglob("*"):
            if path.is_file() and ".git" not in path.relative_to(root).parts:
                texts[str(path)] = path.read_text(errors="replace")
    texts["git log"] = subprocess.run(["git", "-C", str(bk.repo), "log", "-p", "--all"], capture_output=True,
                                      text=True, check=True).stdout
    texts.update({f"run {i}": out for i, out in enumerate(bk.captured)})
    assert len([k for k in texts if k.endswith((".html", ".txt"))]) >= 2
    leaks = [(where, value) for where, text in texts.items() for value in values if value in text]
    assert leaks == []
