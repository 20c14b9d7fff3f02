"""`dzops drift --email` against the lab: private files, and SMTP AUTH only where the inventory allows it in clear."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dzops.cli.exit_codes import ExitCode

pytestmark = pytest.mark.lab


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def private_copy(handle, root: Path, *, insecure_auth: bool) -> Path:
    inventory = root / "inventory"
    shutil.copytree(handle.inventory_dir, inventory)
    operations = inventory / "group_vars/all/operations.yml"
    lines = []
    for line in operations.read_text().splitlines():
        if line.startswith("backup_repository:"):
            line = f"backup_repository: {root / 'config-backups'}"
        elif line.startswith("report_dir:"):
            line = f"report_dir: {root / 'reports'}"
        elif line.strip().startswith("insecure_auth:"):
            line = f"  insecure_auth: {'true' if insecure_auth else 'false'}"
        lines.append(line)
    operations.write_text("\n".join(lines) + "\n")
    return inventory


def drift(handle, inventory: Path) -> subprocess.CompletedProcess[str]:
    env = dict(handle.env(), DZOPS_INVENTORY=str(inventory))
    return subprocess.run([sys.executable, "-m", "dzops", "--limit", "gewog-talo-rtr1", "drift", "--email"],
                          env=env, capture_output=True, text=True, timeout=600)


def test_drift_keeps_every_file_private_and_mails_with_insecure_auth_allowed(provisioned_lab, tmp_path):
    from dzops.lab.smtp import read_mail

    handle = provisioned_lab.handle
    root = tmp_path / "ops"
    root.mkdir(mode=0o755)
    inventory = private_copy(handle, root, insecure_auth=True)
    before = len(read_mail(handle.state_dir / "mail"))
    proc = drift(handle, inventory)
    assert proc.returncode in (ExitCode.OK, ExitCode.DRIFT_FOUND), proc.stderr
    assert "mailed 1 report(s)" in proc.stderr
    assert len(read_mail(handle.state_dir / "mail")) == before + 1
    reports, repo = root / "reports", root / "config-backups"
    assert (mode(reports), mode(repo)) == (0o700, 0o700)
    files = [*reports.glob("drift-*"), reports / "drift-state.json", *(repo / "talo").rglob("*")]
    assert files and {p.name: mode(p) for p in files if p.is_file()} == {p.name: 0o600 for p in files if p.is_file()}
    assert mode(reports / "locks") == 0o700 and mode(reports / "locks" / "drift.lock") == 0o600


def test_smtp_auth_in_clear_is_refused_and_the_report_waits_in_the_outbox(provisioned_lab, tmp_path):
    from dzops.lab.smtp import read_mail

    handle = provisioned_lab.handle
    inventory = private_copy(handle, tmp_path, insecure_auth=False)
    before = len(read_mail(handle.state_dir / "mail"))
    proc = drift(handle, inventory)
    assert proc.returncode == ExitCode.MAIL_FAILED, proc.stderr
    assert "refusing SMTP AUTH to 127.0.0.1" in proc.stderr and "without TLS" in proc.stderr
    assert len(read_mail(handle.state_dir / "mail")) == before
    [queued] = (tmp_path / "reports" / "outbox").glob("*.eml")
    assert (mode(queued.parent), mode(queued)) == (0o700, 0o600)
