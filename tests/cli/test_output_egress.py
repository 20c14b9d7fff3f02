"""stdout and stderr are exits too: emit_json, emit_text, say and error never print a secret.

Values registered from the inventory (the Vault's) are masked anywhere; config lines are scrubbed
with their platform's rules (a dict's `platform` in JSON) or the conservative "any" table. And
`user apply --json` / `--diff` never print an IOS `secret 9` hash, a value derived from the Vault's
and so known to no registry: the ios rules catch it on the way out.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dzops.cli import output
from dzops.models import HostResult
from dzops.scrub import MARKER, forget_secrets, register_secrets, registered_secrets

VAULT_VALUE = "Druk-Net-Vault-2026"
SAMPLE_INVENTORY = Path(__file__).resolve().parents[2] / "inventory"
IOS_HASH = "$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM"


@pytest.fixture(autouse=True)
def registry() -> Iterator[None]:
    forget_secrets()
    register_secrets([VAULT_VALUE])
    yield
    forget_secrets()


@pytest.mark.parametrize("emit", [
    lambda: output.say(f"dzops: logging in to r1 with {VAULT_VALUE}"),
    lambda: output.error(f"SMTP login refused for password {VAULT_VALUE}"),
    lambda: output.emit_text(f"r1 ok\n  {VAULT_VALUE}"),
    lambda: output.emit_json({"host": "r1", "error": f"auth failed: {VAULT_VALUE}", "nested": [{"v": VAULT_VALUE}]}),
    lambda: output.emit_json({VAULT_VALUE: "a key can hold it too"}),
], ids=["say", "error", "emit_text", "emit_json", "emit_json-key"])
def test_registered_secret_is_never_printed(emit, capsys: pytest.CaptureFixture[str]) -> None:
    emit()
    captured = capsys.readouterr()
    assert VAULT_VALUE not in captured.out + captured.err
    assert MARKER in captured.out + captured.err


def test_emit_json_scrubs_config_strings_with_the_platform_of_their_dict(capsys: pytest.CaptureFixture[str]) -> None:
    output.emit_json({"devices": [
        {"host": "r1", "platform": "frr", "detail": "interface lo\n ip ospf authentication-key Typed-K3y"},
        {"host": "fw1", "platform": "asa", "detail": "enable password 8Ry2YjIyt7RRXU24 encrypted"},
        {"host": "ros1", "platform": "routeros", "detail": "/ppp secret\nadd name=u password=Ros-Pw"},
    ]})
    data = json.loads(capsys.readouterr().out)
    details = [d["detail"] for d in data["devices"]]
    assert details == ["interface lo\n ip ospf authentication-key <removed>",
                       "enable password <removed> encrypted", "/ppp secret\nadd name=u password=<removed>"]


def test_settings_registers_the_inventory_secrets_when_it_loads_it() -> None:
    forget_secrets()
    output.Settings(inventory=SAMPLE_INVENTORY).load_inventory()
    assert len(registered_secrets()) >= 3


def _user_apply(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """`dzops user apply ARGS` on the sample inventory, with an IOS-rendering result for one router."""
    from dzops.cli.app import main
    from dzops.execute import users

    host = "gewog-talo-rtr1"
    lines = f"username karma privilege 15 secret 9 {IOS_HASH}\nip ssh pubkey-chain\n no username karma\nexit"
    monkeypatch.setattr(users, "apply_users", lambda *a, **k: [HostResult(
        host=host, status="skipped", diff=lines, error="no account driver for ios yet: the lines are rendered only")])
    code: int | str | None = 0
    argv = sys.argv
    with CliRunner().isolation(env={"DZOPS_INVENTORY": str(SAMPLE_INVENTORY), "DZOPS_DEBUG": None}) as (out, err, _):
        sys.argv = ["dzops", *args, "--limit", host]
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.argv = argv
        return int(code or 0), out.getvalue().decode(), err.getvalue().decode()


@pytest.mark.parametrize("args", [("user", "apply", "--check", "--json"), ("user", "apply", "--check", "--diff")],
                         ids=["json", "diff"])
def test_user_apply_never_prints_an_ios_secret_9_hash(monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...],
                                                      tmp_path: Path) -> None:
    code, stdout, stderr = _user_apply(monkeypatch, *args)
    assert IOS_HASH not in stdout + stderr and "$9$" not in stdout + stderr
    assert f"username karma privilege 15 secret 9 {MARKER}" in stdout, (code, stdout, stderr)


def test_progress_lines_on_stderr_are_scrubbed() -> None:
    import io
    from types import SimpleNamespace

    from dzops.cli.progress import RunProgress

    stream = io.StringIO()
    with RunProgress("user apply", ["r1"], "lines", stream=stream) as progress:
        progress.step("r1", f"failed: login refused for {VAULT_VALUE}")
        progress.ansible_event(SimpleNamespace(host="r1", task="users", status="failed",
                                               result={"msg": f"chpasswd: username ops secret 9 {IOS_HASH}"}))
    shown = stream.getvalue()
    assert VAULT_VALUE not in shown and IOS_HASH not in shown
    assert "r1: users: failed" in shown and MARKER in shown


def test_a_debug_traceback_is_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    from dzops.scrub import install_excepthook

    saved = sys.excepthook
    try:
        install_excepthook()
        try:
            raise RuntimeError(f"vault said {VAULT_VALUE}")
        except RuntimeError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        sys.excepthook = saved
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "Traceback" in err and VAULT_VALUE not in err


def test_a_kept_schedule_failure_report_holds_no_secret(tmp_path: Path) -> None:
    from dzops.cli.schedule import _keep_failure

    path = _keep_failure(tmp_path, "backup", f"dzops backup exited 1\n\nlogin with {VAULT_VALUE} refused\n")
    kept = path.read_text()
    assert VAULT_VALUE not in kept and f"login with {MARKER} refused" in kept
