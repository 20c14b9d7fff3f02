"""The lab's mail server: aiosmtpd storing every message in a Maildir, so report mails can be read back.

Runs as a subprocess in its own session (it must outlive `dzops lab up`), on loopback by default.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from dzops.exceptions import LabError
from dzops.lab.pkgrepo import terminate

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 15.0


def start(port: int, maildir: Path, host: str = "127.0.0.1", username: str = "", password: str = "") -> int:
    """Start the SMTP server on host:port storing mail in maildir; returns its PID once it greets.

    With a username, clients must log in with it and the password (SMTP AUTH without TLS: loopback).
    """
    import json

    maildir.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "dzops.lab.smtp_server", host, str(port), str(maildir)]
    log_path = maildir.parent / f"{maildir.name}.smtpd.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=out, stderr=out, start_new_session=True
        )
    assert proc.stdin is not None
    proc.stdin.write((json.dumps({"username": username, "password": password}) + "\n").encode())
    proc.stdin.close()
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise LabError(
                f"aiosmtpd exited ({proc.returncode}) before listening on {host}:{port}: {' | '.join(tail)}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5) as sock:
                sock.recv(128)  # wait for the 220 greeting: the handler is really up
            log.info("SMTP sink on %s:%d (pid %d), mail in %s", host, port, proc.pid, maildir)
            return proc.pid
        except OSError:
            time.sleep(0.05)
    terminate(proc.pid)
    raise LabError(f"aiosmtpd did not listen on {host}:{port} within {_START_TIMEOUT_S:.0f} s")


def stop(pid: int) -> None:
    """Stop the SMTP sink started by `start` (no error if it is already gone)."""
    terminate(pid)


def read_mail(maildir: Path) -> list[EmailMessage]:
    """Every message delivered so far, oldest first (Maildir file names start with the time)."""
    if not (maildir / "new").exists() and not (maildir / "cur").exists():
        return []
    box = mailbox.Maildir(maildir, factory=None, create=False)
    messages: list[EmailMessage] = []
    for key in sorted(box.keys(), key=_delivery_order):
        with box.get_file(key) as raw:
            data = raw.read()
        messages.append(email.message_from_bytes(data, policy=email.policy.default))
    return messages


def _delivery_order(key: str) -> tuple[int, str]:
    """Maildir keys are `<unix time>.<unique>.<host>`: order by the time, then the name."""
    head = key.split(".", 1)[0]
    return (int(head) if head.isdigit() else 0, key)
