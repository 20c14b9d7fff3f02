"""`dzops schedule`: cron entries in a temporary crontab file (never root's), the flock wrapper and
the run lock; lab tests run two overlapping scheduled patch runs and mail a failed run's report."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dzops.cli.exit_codes import ExitCode
from tests.execute.test_patch_lab import private_inventory
from tests.labkit import copy_sample_inventory

FOREIGN = "15 3 * * * /usr/local/bin/nightly-rsync # office file sync\n"


def dzops(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dzops", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


@pytest.fixture()
def inventory(tmp_path: Path) -> Path:
    return copy_sample_inventory(tmp_path / "inventory", 52, tmp_path / "state")


@pytest.fixture()
def tabfile(tmp_path: Path) -> Path:
    path = tmp_path / "crontab"
    path.write_text(FOREIGN)
    return path


def _env(tabfile: Path) -> dict[str, str]:
    return {**os.environ, "DZOPS_CRONTAB": str(tabfile)}


@pytest.mark.parametrize(("job", "cron"), [
    ("patch", "0 2 * * 6"), ("drift", "0 6 * * 1"), ("backup", "30 1 * * *"),
], ids=["patch", "drift", "backup"])
def test_install_then_list_shows_the_entry(inventory: Path, tabfile: Path, job: str, cron: str) -> None:
    installed = dzops("-i", str(inventory), "schedule", "install", job, "--cron", cron, env=_env(tabfile))
    assert installed.returncode == 0, installed.stderr
    listed = dzops("-i", str(inventory), "schedule", "list", "--json", env=_env(tabfile))
    [entry] = json.loads(listed.stdout)
    assert (entry["job"], entry["schedule"], entry["inventory"]) == (job, cron, str(inventory.resolve()))
    lock = inventory.parent / "state" / "reports" / "locks" / f"{job}.lock"
    assert entry["command"].startswith(f"flock -n -E 8 {lock} ")
    reports = inventory.parent / "state" / "reports"
    assert f"schedule run {job} --report-dir {reports} >> " in entry["command"]
    assert entry["command"].endswith(f"logs/{job}.log 2>&1")
    line = next(x for x in tabfile.read_text().splitlines() if "dzops:" in x)
    assert line.startswith(f"{cron} flock -n -E 8 ")  # what cron itself reads
    assert FOREIGN.strip() in tabfile.read_text()


@pytest.mark.parametrize(("job", "cron"), [("data-backup", "0 23 * * *"), ("data-backup-check", "0 4 * * 0")])
def test_data_backup_jobs_take_their_schedule_from_the_inventory(inventory: Path, tabfile: Path, job: str,
                                                                 cron: str) -> None:
    installed = dzops("-i", str(inventory), "schedule", "install", job, env=_env(tabfile))  # schedules.data_backup(_check)
    assert installed.returncode == 0, installed.stderr
    [entry] = json.loads(dzops("-i", str(inventory), "schedule", "list", "--json", env=_env(tabfile)).stdout)
    assert (entry["job"], entry["schedule"]) == (job, cron) and f"schedule run {job} --report-dir" in entry["command"]


def test_scheduled_data_backup_runs_its_sub_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from dzops.cli import schedule as schedule_cli
    from dzops.cli.output import Settings

    seen: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 5, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    code, _ = schedule_cli._run_other(Settings(inventory=Path("/inv"), limit="punakha-hq-srv1"), "data-backup")
    assert code == 5 and seen[0][-4:] == ["--limit", "punakha-hq-srv1", "data-backup", "run"]
    schedule_cli._run_other(Settings(inventory=Path("/inv")), "data-backup-check")
    assert seen[1][-2:] == ["data-backup", "check"]


def test_reinstall_replaces_and_remove_keeps_foreign_entries(inventory: Path, tabfile: Path) -> None:
    env = _env(tabfile)
    for cron in ("0 2 * * 6", "0 3 * * 0"):
        assert dzops("-i", str(inventory), "schedule", "install", "patch", "--cron", cron, env=env).returncode == 0
    assert dzops("-i", str(inventory), "schedule", "install", "backup", env=env).returncode == 0  # schedules.backup
    entries = json.loads(dzops("-i", str(inventory), "schedule", "list", "--json", env=env).stdout)
    assert sorted((e["job"], e["schedule"]) for e in entries) == [("backup", "30 1 * * *"), ("patch", "0 3 * * 0")]
    removed = dzops("-i", str(inventory), "schedule", "remove", "--json", env=env)
    assert removed.returncode == 0 and len(json.loads(removed.stdout)) == 2
    assert json.loads(dzops("-i", str(inventory), "schedule", "list", "--json", env=env).stdout) == []
    assert tabfile.read_text().strip() == FOREIGN.strip()


@pytest.mark.parametrize(("args", "message"), [
    (["install", "reboot", "--cron", "0 2 * * 6"], "unknown job 'reboot'"),
    (["install", "patch", "--cron", "0 25 * * 6"], "is not a cron schedule"),
    (["install", "drift", "--check-runs"], "--check-runs is not supported by `dzops schedule install drift`"),
], ids=["unknown-job", "bad-cron", "drift-check-runs"])
def test_bad_requests_are_one_line_usage_errors(inventory: Path, tabfile: Path, args: list[str], message: str) -> None:
    proc = dzops("-i", str(inventory), "schedule", *args, env=_env(tabfile))
    assert proc.returncode == ExitCode.USAGE and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and tabfile.read_text() == FOREIGN


def test_cron_command_does_not_start_while_the_lock_is_held(inventory: Path, tabfile: Path) -> None:
    assert dzops("-i", str(inventory), "schedule", "install", "patch", env=_env(tabfile)).returncode == 0
    [entry] = json.loads(dzops("-i", str(inventory), "schedule", "list", "--json", env=_env(tabfile)).stdout)
    lock = inventory.parent / "state" / "reports" / "locks" / "patch.lock"
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what the running cron job's flock(1) holds
        proc = subprocess.run(["sh", "-c", entry["command"]], capture_output=True, text=True, timeout=60)
    assert proc.returncode == ExitCode.ALREADY_RUNNING
    assert (inventory.parent / "state" / "reports" / "logs" / "patch.log").read_text() == ""  # dzops never ran


# --- vault password source, options passed through, failures kept and mailed -------------------

VAULT_PASSWORD = "punakha-demo-vault-DO-NOT-USE-IN-PRODUCTION"  # the sample's public DEMO-ONLY file


@pytest.fixture()
def private_vault(inventory: Path, tmp_path: Path) -> Path:
    """The vault password in a file of its own (0600), and no demo file beside the inventory: a run
    that does not get the file cannot open the vault."""
    demo = inventory / "DEMO-ONLY-vault-password.txt"
    secret = tmp_path / "secrets" / "vault-pass"
    secret.parent.mkdir()
    secret.write_text(demo.read_text())
    secret.chmod(0o600)
    demo.unlink()
    return secret


def _clean_env(tabfile: Path) -> dict[str, str]:
    env = _env(tabfile)
    for name in ("DZOPS_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE", "DZOPS_INVENTORY"):
        env.pop(name, None)
    return env


def test_install_records_the_vault_file_and_every_global_option(inventory: Path, tabfile: Path,
                                                                 private_vault: Path) -> None:
    proc = dzops("-i", str(inventory), "--vault-password-file", str(private_vault), "--limit", "routers:&site_talo",
                 "schedule", "install", "backup", "--cron", "30 1 * * *", "--check-runs", env=_clean_env(tabfile))
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in tabfile.read_text().splitlines() if "dzops:backup:" in x)
    assert (f" -i {inventory.resolve()} --vault-password-file {private_vault} --limit 'routers:&site_talo' --check "
            f"schedule run backup --report-dir ") in line
    assert VAULT_PASSWORD not in tabfile.read_text()  # the path is recorded, never the password


@pytest.mark.parametrize(("mode", "owner", "message"), [
    (0o644, None, "mode 0644"),
    (0o640, None, "mode 0640"),
    (0o600, 65534, "owned by uid 65534"),
], ids=["world-readable", "group-readable", "someone-elses"])
def test_install_refuses_a_vault_file_others_can_read(inventory: Path, tabfile: Path, private_vault: Path,
                                                      mode: int, owner: int | None, message: str) -> None:
    private_vault.chmod(mode)
    if owner is not None:
        os.chown(private_vault, owner, -1)
    proc = dzops("-i", str(inventory), "--vault-password-file", str(private_vault),
                 "schedule", "install", "patch", env=_clean_env(tabfile))
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert message in proc.stderr and "--vault-password-file" in proc.stderr
    assert tabfile.read_text() == FOREIGN


def test_install_and_remove_with_check_write_nothing(inventory: Path, tabfile: Path) -> None:
    env = _env(tabfile)
    shown = dzops("-i", str(inventory), "--check", "schedule", "install", "drift", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["command"].startswith("flock -n -E 8 ")
    assert tabfile.read_text() == FOREIGN
    assert dzops("-i", str(inventory), "schedule", "install", "drift", env=env).returncode == 0
    installed = tabfile.read_text()
    kept = dzops("-i", str(inventory), "--check", "schedule", "remove", "--json", env=env)
    assert kept.returncode == 0 and [e["job"] for e in json.loads(kept.stdout)] == ["drift"]
    assert tabfile.read_text() == installed


@pytest.fixture()
def smtp(inventory: Path):  # type: ignore[no-untyped-def]
    """A real SMTP server on loopback (aiosmtpd) that accepts the inventory's login, and mail without one."""
    import socket

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    class Inbox:
        def __init__(self) -> None:
            self.messages: list[Any] = []

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
            import email
            import email.policy

            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    def authenticator(_server, _session, _envelope, _mechanism, auth_data):  # type: ignore[no-untyped-def]
        return AuthResult(success=isinstance(auth_data, LoginPassword) and auth_data.login == b"dzops")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    operations = inventory / "group_vars/all/operations.yml"
    text = operations.read_text()
    operations.write_text(text.replace(text[text.index("smtp_port:"):].split("\n")[0], f"smtp_port: {port}"))
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False, auth_required=False)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def _body(message: Any) -> str:
    return str(message.get_body(preferencelist=("plain",)).get_content()).replace("\r\n", "\n")


def test_scheduled_run_hands_every_global_option_to_the_job(inventory: Path, tabfile: Path, private_vault: Path,
                                                             smtp: Any) -> None:
    """The child `dzops backup` opens the vault (no demo file: only the passed file can) and then
    refuses the passed --limit: both options reached it, and the failure is mailed and kept."""
    reports = inventory.parent / "state" / "reports"
    proc = dzops("-i", str(inventory), "--vault-password-file", str(private_vault), "--limit", "gewog-nowhere-rtr9",
                 "schedule", "run", "backup", env=_clean_env(tabfile), timeout=300)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    [mail] = smtp.messages
    assert mail["Subject"] == "dzops backup Punakha: FAILED (exit 2)"
    assert "--limit: no host or group matches 'gewog-nowhere-rtr9'" in _body(mail)
    [kept] = (reports / "schedule-failures").glob("backup-*.txt")
    assert "gewog-nowhere-rtr9" in kept.read_text()


@pytest.mark.parametrize(("options", "job", "refusal"), [
    (["--diff"], "backup", "--diff is not supported by `dzops backup`"),
    (["--check"], "drift", "--check and --diff go with `dzops drift --remediate`"),
    (["--diff"], "patch", "--diff is not supported by `dzops patch`"),
], ids=["diff-to-backup", "check-to-drift", "diff-to-patch"])
def test_scheduled_run_passes_check_and_diff_on(inventory: Path, tabfile: Path, smtp: Any,
                                                options: list[str], job: str, refusal: str) -> None:
    """Each job refuses these options by its own contract: the refusal proves the option arrived."""
    proc = dzops("-i", str(inventory), *options, "schedule", "run", job, env=_clean_env(tabfile), timeout=300)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    [mail] = smtp.messages
    assert refusal in _body(mail)


@pytest.mark.parametrize("breakage", ["yaml-syntax", "failed-check", "wrong-vault-password"])
def test_inventory_that_does_not_load_is_kept_and_mailed(inventory: Path, tabfile: Path, smtp: Any,
                                                         breakage: str, tmp_path: Path) -> None:
    """Run exactly what cron runs, after the inventory broke since `schedule install`."""
    env = _clean_env(tabfile)
    assert dzops("-i", str(inventory), "schedule", "install", "backup", env=env).returncode == 0
    [entry] = json.loads(dzops("-i", str(inventory), "schedule", "list", "--json", env=env).stdout)
    if breakage == "yaml-syntax":
        (inventory / "hosts.yml").write_text((inventory / "hosts.yml").read_text() + "\n  broken: [unclosed\n")
    elif breakage == "failed-check":
        host_vars = inventory / "host_vars" / "gewog-talo-rtr1.yml"
        text = host_vars.read_text()
        host_vars.write_text(text.replace(text[text.index("loopback:"):].split("\n")[0], "loopback: not-an-address"))
    else:
        (inventory / "DEMO-ONLY-vault-password.txt").write_text("not the password\n")
    proc = subprocess.run(["sh", "-c", entry["command"]], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == ExitCode.INVALID_INVENTORY
    reports = inventory.parent / "state" / "reports"
    log = (reports / "logs" / "backup.log").read_text()
    assert "failure report mailed" in log, log
    [mail] = smtp.messages
    assert mail["Subject"] == f"dzops backup {'Punakha' if breakage == 'failed-check' else 'inventory'}: " \
                              "FAILED (the inventory does not load)"
    [kept] = (reports / "schedule-failures").glob("backup-*.txt")
    assert "does not load" in kept.read_text() and kept.read_text() in _body(mail) + "\n"
    assert VAULT_PASSWORD not in _body(mail)


# --- against the lab ---------------------------------------------------------------------------

def _hold_dpkg_lock(lab, node: str) -> None:
    script = ("import fcntl, time; f = open('/var/lib/dpkg/lock-frontend', 'a'); "
              "fcntl.lockf(f, fcntl.LOCK_EX); open('/run/dz-test-lock.pid', 'w').write(str(__import__('os').getpid())); "
              "time.sleep(600)")
    lab.exec(node, ["sh", "-c", f"setsid python3 -c \"{script}\" </dev/null >/dev/null 2>&1 &"])
    for _ in range(100):
        if lab.exec(node, ["test", "-s", "/run/dz-test-lock.pid"]).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{node}: test lock holder did not start")


def _release_dpkg_lock(lab, node: str) -> None:
    lab.exec(node, ["sh", "-c", "kill $(cat /run/dz-test-lock.pid); rm -f /run/dz-test-lock.pid"])


@pytest.mark.lab
def test_failed_scheduled_run_mails_its_report(punakha_lab, tmp_path: Path) -> None:
    from dzops.lab.smtp import read_mail

    lab, node = punakha_lab.lab, "punakha-hq-srv1"
    inventory = private_inventory(punakha_lab, tmp_path)
    maildir = punakha_lab.state_dir / "mail"
    before = len(read_mail(maildir))
    _hold_dpkg_lock(lab, node)  # apt is busy on the host: the pre-check must fail it, touching nothing
    try:
        proc = dzops("-i", str(inventory), "--limit", node, "schedule", "run", "patch", env=punakha_lab.env())
    finally:
        _release_dpkg_lock(lab, node)
    assert proc.returncode == ExitCode.HOSTS_FAILED, proc.stderr
    assert "failure report mailed" in proc.stderr
    mails = read_mail(maildir)[before:]
    assert [m["Subject"] for m in mails] == ["dzops patch Punakha: FAILED on 1 of 1 host(s)"]
    body = mails[0].get_body(preferencelist=("plain",)).get_content()
    assert f"{node}: failed" in body and "package manager lock held (/var/lib/dpkg/lock-frontend" in body
    reports = sorted((tmp_path / "reports").glob("patch-*.json"))
    assert json.loads(reports[-1].read_text())["hosts"][0]["status"] == "failed"


@pytest.mark.lab
def test_second_overlapping_run_exits_at_once(punakha_lab, tmp_path: Path) -> None:
    node = "punakha-hq-web1"
    env = punakha_lab.env()
    inv = str(private_inventory(punakha_lab, tmp_path))
    first = subprocess.Popen([sys.executable, "-m", "dzops", "-i", inv, "--limit", node, "--check",
                              "schedule", "run", "patch"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert first.stderr is not None
        started = first.stderr.readline()
        assert "schedule run patch: started" in started, started
        second = dzops("-i", inv, "--limit", node, "--check", "schedule", "run", "patch", env=env, timeout=120)
        still_running = first.poll() is None  # the second gave up while the first was mid-run
        first_rest = first.stderr.read()
        assert first.wait(timeout=900) == ExitCode.OK, first_rest
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == ExitCode.ALREADY_RUNNING
    assert (f"dzops: error: patch is already running (pid {first.pid} holds "
            f"{tmp_path / 'reports' / 'locks' / 'patch.lock'})") in second.stderr.splitlines()
    assert "dzops: patch" not in second.stderr  # it never started a patch run
    assert still_running
