"""Send reports by SMTP without ever losing one: what cannot be sent waits in an outbox.

`deliver` first retries everything in the outbox, then sends the new message; a message leaves
the outbox only after the server accepted it. The SMTP password comes from Vault and is never
logged.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from dzops.exceptions import MailError
from dzops.inventory.models import MailSettings

log = logging.getLogger(__name__)


def compose(settings: MailSettings, subject: str, text: str, html: str | None = None,
            attachments: tuple[tuple[str, bytes, str], ...] = ()) -> EmailMessage:
    """A message with a plain-text part, an optional HTML alternative and attachments (name, data, mime)."""
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
        message.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=name)
    return message


def send(settings: MailSettings, message: EmailMessage, timeout: float = 20.0) -> None:
    """Send one message now; raises MailError with a one-line reason."""
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username and settings.password is not None:
                smtp.login(settings.username, settings.password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(f"SMTP login to {settings.smtp_host}:{settings.smtp_port} refused ({exc.smtp_code})") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise MailError(f"cannot send mail via {settings.smtp_host}:{settings.smtp_port}: {reason}") from None


def queue(outbox: Path, message: EmailMessage) -> Path:
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{time.strftime('%Y%m%dT%H%M%S')}-{abs(hash(message['Message-ID'])) % 10**8:08d}.eml"
    path.write_bytes(bytes(message))
    return path


def deliver(settings: MailSettings, message: EmailMessage, outbox: Path) -> list[Path]:
    """Send what waits in the outbox, then this message; unsent ones stay queued.

    Returns the outbox files that were delivered. Raises MailError (after queueing) if anything
    could not be sent, so the caller can report it and exit with MAIL_FAILED.
    """
    from email import policy
    from email.parser import BytesParser

    pending = sorted(outbox.glob("*.eml")) if outbox.is_dir() else []
    pending.append(queue(outbox, message))
    delivered = []
    for path in pending:
        queued = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        try:
            send(settings, queued)  # type: ignore[arg-type]
        except MailError as exc:
            remaining = len(pending) - len(delivered)
            raise MailError(f"{exc}; {remaining} report(s) kept in {outbox} for the next run") from None
        path.unlink()
        delivered.append(path)
        log.info("delivered %s", path.name)
    return delivered
