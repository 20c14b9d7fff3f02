"""One egress rule: reports, mail, log records and runner artifacts pass the scrubber before they leave.

The drift case is the one found in the field: a key typed at an FRR router's console
(`ip ospf authentication-key`, `ip ospf message-digest-key`) reached the report's remediation and
the out-of-band diff in clear. The report here is built by hand with the raw lines in it, so the
test holds whatever upstream code forgets to scrub.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from dzops.report import drift as report
from dzops.report.scrub import MARKER, egress, forget_secrets, install_log_filter, register_secrets

TYPED = ("Console-Typed-K3y", "Console-Md5-Key")
VAULT_VALUE = "Druk-Net-Vault-2026"


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    forget_secrets()
    register_secrets([VAULT_VALUE])
    yield
    forget_secrets()


def _raw_report() -> report.DriftReport:
    commands = ("configure terminal", "interface lo", f" no ip ospf authentication-key {TYPED[0]}",
                f" no ip ospf message-digest-key 1 md5 {TYPED[1]}", "exit", "end", "write memory")
    intended = report.Finding("gewog-talo-rtr1", "talo", "intended", "running config differs from intended",
                              detail="\n".join(commands), commands=commands)
    out_of_band = report.Finding(
        "gewog-talo-rtr1", "talo", "out-of-band", "running-config changed since the baseline",
        detail=("--- a/running-config\n+++ b/running-config\n@@ -4,2 +4,4 @@\n interface lo\n"
                f"+ ip ospf authentication-key {TYPED[0]}\n+ ip ospf message-digest-key 1 md5 {TYPED[1]}\n"
                f"+ description {VAULT_VALUE}\n exit"),
        path="running-config")
    device = report.DeviceReport("gewog-talo-rtr1", "talo", "routers", "frr", "ok", [intended, out_of_band])
    return report.DriftReport("Punakha", "2026-01-05T06:00:00+06:00", None, [device],
                              notes=[f"note naming {VAULT_VALUE}"])


def _assert_clean(text: str, marker: str = MARKER) -> None:
    for secret in (*TYPED, VAULT_VALUE):
        assert secret not in text
    assert f"ip ospf authentication-key {marker}" in text
    assert f"ip ospf message-digest-key 1 md5 {marker}" in text


def test_drift_text_report_shows_the_marker_for_console_typed_keys() -> None:
    text = report.render_text(_raw_report())
    _assert_clean(text)
    assert f"no ip ospf authentication-key {MARKER}" in text  # the remediation line, not only the diff
    assert "interface lo" in text and "write memory" in text


def test_drift_html_report_shows_the_marker_for_console_typed_keys() -> None:
    html = report.render_html(_raw_report())
    _assert_clean(html, "&lt;removed&gt;")


def test_drift_mail_holds_no_secret_in_any_part() -> None:
    from dzops.inventory.models import MailSettings
    from dzops.report.mail import compose

    raw = _raw_report()
    settings = MailSettings(smtp_host="mail.punakha.gov.bt", sender="dzops@punakha.gov.bt",
                            recipients=("ict@punakha.gov.bt",))
    # Even a caller that hands compose() unscrubbed text and HTML gets a clean message.
    message = compose(settings, f"drift {VAULT_VALUE}", report.render_text(raw) + f"\nsigned {VAULT_VALUE}\n",
                      report.render_html(raw) + f"<p>{VAULT_VALUE}</p>",
                      attachments=(("running.txt", f"ip ospf authentication-key {TYPED[1]}\n".encode(), "text/plain"),))
    parsed = BytesParser(policy=policy.default).parsebytes(bytes(message))
    assert VAULT_VALUE not in parsed["Subject"]
    parts = [part.get_content() for part in parsed.walk() if not part.is_multipart()]
    assert len(parts) == 3
    _assert_clean(parts[0])
    assert VAULT_VALUE not in parts[1] and TYPED[0] not in parts[1]
    assert parts[2] == f"ip ospf authentication-key {MARKER}\n"


def test_drift_subject_masks_vault_values() -> None:
    raw = _raw_report()
    raw.dzongkhag = VAULT_VALUE
    assert VAULT_VALUE not in report.subject(raw)


def test_log_records_are_scrubbed_message_args_and_traceback() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("dzops.test.egress")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install_log_filter()
        logger.warning("sent %s to r1", f" ip ospf authentication-key {TYPED[0]}")
        logger.warning("vault value %s in a message", VAULT_VALUE)
        try:
            raise RuntimeError(f"device said: username ops privilege 15 secret 9 $9$Derived$Hash {VAULT_VALUE}")
        except RuntimeError:
            logger.exception("apply failed")
    finally:
        root.removeHandler(handler)
    written = stream.getvalue()
    assert TYPED[0] not in written and VAULT_VALUE not in written and "$9$Derived$Hash" not in written
    assert f"ip ospf authentication-key {MARKER}" in written
    assert "RuntimeError" in written and "apply failed" in written


def test_kept_runner_artifacts_are_scrubbed_on_disk(tmp_path: Path) -> None:
    from dzops.execute.ansible import scrub_artifacts

    stdout = tmp_path / "artifacts" / "1" / "stdout"
    stdout.parent.mkdir(parents=True)
    stdout.write_text(f"TASK [users]\nok: [r1] => {{\"password_hash\": \"$6$abc$def\", \"msg\": \"{VAULT_VALUE}\"}}\n")
    scrub_artifacts(tmp_path)
    kept = stdout.read_text()
    assert "$6$abc$def" not in kept and VAULT_VALUE not in kept
    assert kept.startswith("TASK [users]\nok: [r1] => {")


def test_egress_is_the_identity_on_text_without_secrets() -> None:
    text = "dzops: drift check of 24 device(s)\n  gewog-talo-rtr1: collected running-config\n"
    assert egress(text) == text


def test_patch_report_files_hold_no_secret(tmp_path: Path) -> None:
    from dzops.report.patch import save

    report = {"started": "2026-01-05T02:00:00+06:00", "check": False, "security_only": False, "batch": [1],
              "max_fail": 0, "stopped": False,
              "hosts": [{"host": "srv1", "status": "failed", "changed": False, "diff": "", "data": {},
                         "error": f"apt: https://deploy:{VAULT_VALUE}@pkgs.dz.bt unreachable"}]}
    json_path, text_path = save(report, tmp_path)
    for path in (json_path, text_path):
        assert VAULT_VALUE not in path.read_text()
    assert "https://deploy:<removed>@pkgs.dz.bt" in json_path.read_text()


def test_docs_site_holds_no_secret_a_device_reported(tmp_path: Path) -> None:
    from dzops.execute.discover import DeviceDiscovery
    from dzops.inventory.loader import load_inventory
    from dzops.report.docs import build_site
    from dzops.report.topology import build_topology

    inventory = load_inventory(Path(__file__).resolve().parents[2] / "inventory")
    host = next(iter(inventory.devices))
    found = {host: DeviceDiscovery(host=host, status="failed",
                                   error=f"show run: snmp-server community Docs-Comm RO; {VAULT_VALUE}")}
    topology = build_topology(inventory, found)
    files = build_site(inventory, topology, found, {}, tmp_path / "site")
    texts = {str(p): p.read_text(errors="replace") for p in files if p.suffix in (".html", ".csv")}
    assert texts
    assert [p for p, t in texts.items() if VAULT_VALUE in t or "Docs-Comm" in t] == []
    assert any("snmp-server community &lt;removed&gt;" in t for t in texts.values())
