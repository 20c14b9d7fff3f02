"""Send reports by SMTP without ever losing one: what cannot be sent waits in an outbox.

`deliver` first retries everything in the outbox, then sends the new message; a message leaves
the outbox only after the server accepted it. A message the server refuses for good (a 5xx reply
to it, not to the session) is moved to `outbox/rejected/` with a `.note` holding the reply, so it
never blocks the ones after it; a temporary refusal (4xx) or a server that cannot be reached
leaves it queued. The outbox is owner-only (0700, files 0600), written atomically and locked while
a run delivers, so two runs never send a message twice.

The SMTP password comes from Vault and is never logged, and never sent in clear: AUTH needs
STARTTLS unless the inventory says `insecure_auth: true` (a server on loopback, like the lab's).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from dzops.exceptions import MailError
from dzops.inventory.models import MailSettings
from dzops.state import file_lock, private_dir, write_private

log = logging.getLogger(__name__)

REJECTED = "rejected"  # outbox/rejected/: messages the server refused for good, each with a .note
LOCK_TIMEOUT_S = 300.0  # another run delivering the outbox: it ends within a few SMTP timeouts


class MessageRefused(MailError):
    """The server refused this message (not the session): `permanent` for a 5xx reply."""

    def __init__(self, message: str, reply: str, permanent: bool) -> None:
        super().__init__(message)
        self.reply = reply
        self.permanent = permanent


def compose(settings: MailSettings, subject: str, text: str, html: str | None = None,
            attachments: tuple[tuple[str, bytes, str], ...] = ()) -> EmailMessage:
    """A message with a plain-text part, an optional HTML alternative and attachments (name, data, mime).

    Everything in it passes the egress filter: a mail leaves dzops like any other output.
    """
    from dzops.scrub import egress, egress_html

    subject, text, html = egress(subject), egress(text), egress_html(html) if html is not None else None
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.split("@")[-1])
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, data, mime in attachments:
        maintype, _, subtype = mime.partition("/")
        if maintype == "text":
            data = egress(data.decode(errors="replace")).encode()
        message.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=name)
    return message


def check_auth_policy(settings: MailSettings) -> None:
    """Refuse to send the SMTP password in clear text unless the inventory allows it for this server.

    >>> from pydantic import SecretStr
    >>> base = dict(smtp_host="mail.punakha.gov.bt", sender="d@p.bt", recipients=("i@p.bt",),
    ...             username="dzops", password=SecretStr("x"))
    >>> check_auth_policy(MailSettings(**base, starttls=True))
    >>> check_auth_policy(MailSettings(**base, insecure_auth=True))
    >>> check_auth_policy(MailSettings(**base))
    Traceback (most recent call last):
    ...
    dzops.exceptions.MailError: refusing SMTP AUTH to mail.punakha.gov.bt:25 without TLS: the password would cross the network in clear; set mail.starttls: true (or mail.insecure_auth: true for a server on a trusted local link)
    """
    if settings.username and settings.password is not None and not settings.starttls and not settings.insecure_auth:
        raise MailError(f"refusing SMTP AUTH to {settings.smtp_host}:{settings.smtp_port} without TLS: the password "
                        f"would cross the network in clear; set mail.starttls: true (or mail.insecure_auth: true "
                        f"for a server on a trusted local link)")


def _reply(code: int, text: bytes | str) -> str:
    return f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}".strip()


def send(settings: MailSettings, message: EmailMessage, timeout: float = 20.0) -> None:
    """Send one message now; raises MessageRefused (this message) or MailError (the session), one line each."""
    check_auth_policy(settings)
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username and settings.password is not None:
                smtp.login(settings.username, settings.password.get_secret_value())
            refused = smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"SMTP login to {where} refused ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        reply = "; ".join(f"{rcpt}: {_reply(code, text)}" for rcpt, (code, text) in exc.recipients.items())
        raise MessageRefused(f"{where} refused every recipient: {reply}", reply,
                             permanent=all(500 <= code < 600 for code in codes)) from None
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        reply = _reply(exc.smtp_code, exc.smtp_error)
        raise MessageRefused(f"{where} refused the message: {reply}", reply,
                             permanent=500 <= exc.smtp_code < 600) from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise MailError(f"cannot send mail via {where}: {reason}") from None
    for rcpt, (code, text) in refused.items():
        log.warning("%s refused recipient %s: %s", where, rcpt, _reply(code, text))


def queue(outbox: Path, message: EmailMessage) -> Path:
    """Write a message into the outbox (0600, atomically: a crash never leaves half a message)."""
    private_dir(outbox)
    path = outbox / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
    write_private(path, bytes(message))
    return path


def set_aside(outbox: Path, path: Path, reply: str, server: str) -> Path:
    """Move a message the server refused for good to outbox/rejected/, with a .note giving the reply."""
    rejected = private_dir(outbox / REJECTED)
    target = rejected / path.name
    write_private(target.with_suffix(".note"),
                  f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}: refused for good by {server}: {reply}\n"
                  f"Fix the cause (e.g. the recipient list), then move {path.name} back to {outbox} to send it again.\n")
    os.replace(path, target)
    return target


def deliver(settings: MailSettings, message: EmailMessage, outbox: Path) -> list[Path]:
    """Send what waits in the outbox, then this message; unsent ones stay queued.

    Returns the outbox files that were delivered. Raises MailError (after queueing) if anything
    could not be sent or was refused for good, so the caller can report it and exit MAIL_FAILED.
    """
    from email import policy
    from email.parser import BytesParser

    private_dir(outbox)
    server = f"{settings.smtp_host}:{settings.smtp_port}"
    with file_lock(outbox, f"outbox {outbox}", timeout=LOCK_TIMEOUT_S):
        pending = sorted(outbox.glob("*.eml"))
        pending.append(queue(outbox, message))
        delivered: list[Path] = []
        rejected: list[tuple[Path, str]] = []
        kept: list[Path] = []
        failure: MailError | None = None
        for index, path in enumerate(pending):
            queued = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            try:
                send(settings, queued)  # type: ignore[arg-type]
            except MessageRefused as exc:
                if exc.permanent:
                    rejected.append((set_aside(outbox, path, exc.reply, server), exc.reply))
                    log.warning("%s refused for good, moved aside: %s", path.name, exc.reply)
                else:
                    kept.append(path)
                    failure = failure or exc
                continue
            except MailError as exc:  # the session itself failed: the rest would fail the same way
                kept += pending[index:]
                failure = exc
                break
            path.unlink()
            delivered.append(path)
            log.info("delivered %s", path.name)
    problems = []
    if failure is not None:
        problems.append(f"{failure}; {len(kept)} report(s) kept in {outbox} for the next run")
    if rejected:
        problems.append(f"{len(rejected)} report(s) refused for good by {server} ({rejected[0][1]}), moved to "
                        f"{outbox / REJECTED} with a .note each")
    if problems:
        raise MailError("; ".join(problems) + (f"; {len(delivered)} delivered" if delivered else ""))
    return delivered
