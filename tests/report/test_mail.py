"""The outbox against a real SMTP server (aiosmtpd on loopback): refusals, retries, AUTH policy, modes."""

from __future__ import annotations

import socket
import stat
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from dzops.exceptions import MailError
from dzops.inventory.models import MailSettings
from dzops.report.mail import deliver, queue

GONE, BUSY, ICT = "gone@punakha.gov.bt", "busy@punakha.gov.bt", "ict@punakha.gov.bt"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Handler:
    """Accepts mail for anybody but GONE (550: for good) and BUSY (451: try later)."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.logins: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address == GONE:
            return "550 5.1.1 <gone@punakha.gov.bt>: Recipient address rejected: User unknown"
        if address == BUSY:
            return "451 4.2.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture()
def smtp() -> Any:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    handler = Handler()

    def authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"dzops", b"s3cret-smtp")
        if ok:
            handler.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    yield controller, handler
    controller.stop()


def settings(port: int, **extra: Any) -> MailSettings:
    return MailSettings(smtp_host="127.0.0.1", smtp_port=port, sender="dzops@punakha.gov.bt", recipients=(ICT,),
                        **extra)


def message(to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "dzops@punakha.gov.bt", to, subject
    msg["Message-ID"] = make_msgid(domain="punakha.gov.bt")
    msg.set_content(f"{subject}\n")
    return msg


def subjects(handler: Handler) -> list[str]:
    from email import message_from_bytes

    return [message_from_bytes(e.original_content)["Subject"] for e in handler.received]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_message_refused_for_good_is_moved_aside_and_the_next_is_delivered(smtp: Any, tmp_path: Path) -> None:
    controller, handler = smtp
    outbox = tmp_path / "reports" / "outbox"
    stuck = queue(outbox, message(GONE, "drift report of last week"))  # an earlier run's leftover
    with pytest.raises(MailError, match=r"1 report\(s\) refused for good .*550 5\.1\.1.*moved to .*rejected"):
        deliver(settings(controller.port), message(ICT, "drift report of today"), outbox)
    assert subjects(handler) == ["drift report of today"]
    assert list(outbox.glob("*.eml")) == []
    aside = outbox / "rejected" / stuck.name
    note = aside.with_suffix(".note").read_text()
    assert aside.is_file() and "550 5.1.1" in note and "User unknown" in note and GONE in note
    # the next run is not blocked by it, and does not send it again
    assert len(deliver(settings(controller.port), message(ICT, "drift report of tomorrow"), outbox)) == 1
    assert subjects(handler) == ["drift report of today", "drift report of tomorrow"]


def test_a_temporary_refusal_stays_queued_and_the_rest_are_sent(smtp: Any, tmp_path: Path) -> None:
    controller, handler = smtp
    outbox = tmp_path / "outbox"
    waiting = queue(outbox, message(BUSY, "patch report"))
    with pytest.raises(MailError, match=r"451 4\.2\.0.*1 report\(s\) kept in"):
        deliver(settings(controller.port), message(ICT, "drift report"), outbox)
    assert subjects(handler) == ["drift report"]
    assert list(outbox.glob("*.eml")) == [waiting] and not (outbox / "rejected").exists()


def test_a_server_that_cannot_be_reached_keeps_everything_queued(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    queue(outbox, message(ICT, "older"))
    with pytest.raises(MailError, match=r"cannot send mail via 127\.0\.0\.1:\d+: .*2 report\(s\) kept in"):
        deliver(settings(free_port()), message(ICT, "newer"), outbox)
    assert len(list(outbox.glob("*.eml"))) == 2


def test_auth_without_tls_is_refused_unless_the_inventory_allows_it(smtp: Any, tmp_path: Path) -> None:
    controller, handler = smtp
    outbox = tmp_path / "outbox"
    login = {"username": "dzops", "password": SecretStr("s3cret-smtp")}
    with pytest.raises(MailError, match=r"refusing SMTP AUTH to 127\.0\.0\.1:\d+ without TLS") as refused:
        deliver(settings(controller.port, **login), message(ICT, "report"), outbox)
    assert "s3cret-smtp" not in str(refused.value)
    assert handler.received == [] and handler.logins == [] and len(list(outbox.glob("*.eml"))) == 1
    sent = deliver(settings(controller.port, insecure_auth=True, **login), message(ICT, "report 2"), outbox)
    assert len(sent) == 2 and handler.logins == ["dzops", "dzops"]


def test_the_outbox_and_its_messages_are_owner_only(smtp: Any, tmp_path: Path) -> None:
    controller, _ = smtp
    outbox = tmp_path / "reports" / "outbox"
    queued = queue(outbox, message(ICT, "waiting"))
    assert (mode(tmp_path / "reports"), mode(outbox), mode(queued)) == (0o700, 0o700, 0o600)
    queue(outbox, message(GONE, "refused"))
    with pytest.raises(MailError):
        deliver(settings(controller.port), message(ICT, "new"), outbox)
    [note] = (outbox / "rejected").glob("*.note")
    [aside] = (outbox / "rejected").glob("*.eml")
    assert (mode(outbox / "rejected"), mode(note), mode(aside)) == (0o700, 0o600, 0o600)


def test_a_crash_while_queueing_leaves_no_half_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outbox = tmp_path / "outbox"

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        queue(outbox, message(ICT, "report"))
    monkeypatch.undo()
    assert list(outbox.iterdir()) == []
