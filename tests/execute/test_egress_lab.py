"""The defect found in the field, end to end on the lab: a key typed at a router's console reaches no output.

An officer types `ip ospf authentication-key` and `ip ospf message-digest-key` on a real FRR
router. The drift run sees them as drift (frr-reload would remove them); its text and HTML
reports, the mail, the JSON on stdout and stderr must show `<removed>` where the keys were.
"""

from __future__ import annotations

import json

import pytest

from dzops.cli.exit_codes import ExitCode
from tests.execute.test_backup_drift_lab import ROUTER, Env, bk  # noqa: F401 - bk is the shared fixture

pytestmark = pytest.mark.lab

TYPED = ("Typ3dK3y", "Typed-Md5-K3y")  # OSPF simple keys are at most 8 characters (FRR truncates)


def test_console_typed_ospf_keys_reach_no_drift_output(bk: Env) -> None:  # noqa: F811
    from dzops.lab.smtp import read_mail

    lab = bk.lab
    typed = lab.exec(ROUTER, ["vtysh", "-c", "conf t", "-c", "interface lo",
                              "-c", f"ip ospf authentication-key {TYPED[0]}",
                              "-c", f"ip ospf message-digest-key 1 md5 {TYPED[1]}"])
    assert typed.returncode == 0, typed.stderr
    try:
        running = lab.exec(ROUTER, ["vtysh", "-c", "show running-config"]).stdout
        assert TYPED[0] in running, (typed.stdout, typed.stderr, running)
        mails_before = len(read_mail(bk.maildir))
        reports_before = set(bk.reports.glob("drift-*"))
        mailed = bk.run("drift", "--email", "--limit", ROUTER)
        assert mailed.returncode == ExitCode.DRIFT_FOUND, mailed.stderr
        as_json = bk.run("drift", "--json", "--limit", ROUTER)
        assert as_json.returncode == ExitCode.DRIFT_FOUND, as_json.stderr

        texts = {str(p): p.read_text() for p in set(bk.reports.glob("drift-*")) - reports_before}
        mails = read_mail(bk.maildir)[mails_before:]
        assert len(mails) == 1
        texts.update({f"mail part {i}": part.get_content() for i, part in enumerate(mails[0].walk())
                      if not part.is_multipart()})
        texts.update({"mail subject": str(mails[0]["Subject"]), "stdout": mailed.stdout + as_json.stdout,
                      "stderr": mailed.stderr + as_json.stderr})
        assert [(where, key) for where, text in texts.items() for key in TYPED if key in text] == []

        [text_report] = [t for p, t in texts.items() if p.endswith(".txt")][-1:]
        assert "ip ospf authentication-key <removed>" in text_report
        assert "ip ospf message-digest-key 1 md5 <removed>" in text_report
        assert any("ip ospf authentication-key &lt;removed&gt;" in t for p, t in texts.items() if p.endswith(".html"))
        findings = [f for d in json.loads(as_json.stdout)["devices"] for f in d["findings"]]
        remediation = "\n".join(f["detail"] for f in findings if f["kind"] == "intended")
        assert "no ip ospf authentication-key <removed>" in remediation, remediation
    finally:
        lab.exec(ROUTER, ["vtysh", "-c", "conf t", "-c", "interface lo", "-c", "no ip ospf authentication-key",
                          "-c", "no ip ospf message-digest-key 1"])
    assert TYPED[0] not in lab.exec(ROUTER, ["vtysh", "-c", "show running-config"]).stdout
