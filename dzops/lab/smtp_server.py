"""The lab's SMTP server process: aiosmtpd storing mail in a Maildir, with real SMTP AUTH.

Started by `dzops.lab.smtp.start` as `python -m dzops.lab.smtp_server HOST PORT MAILDIR`; the
login and password arrive as one JSON line on stdin (never argv or the environment, which other
users can read). With a login set, mail without AUTH is refused (530) and a wrong password gets
535, as from the Dzongkhag's real mail server.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Mailbox
    from aiosmtpd.smtp import AuthResult, LoginPassword

    host, port, maildir = argv[0], int(argv[1]), Path(argv[2])
    credentials = json.loads(sys.stdin.readline() or "{}")
    username, password = credentials.get("username", ""), credentials.get("password", "")

    def authenticator(_server: Any, _session: Any, _envelope: Any, _mechanism: str, auth_data: Any) -> Any:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username
              and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False)

    controller = Controller(Mailbox(maildir), hostname=host, port=port, authenticator=authenticator,
                            auth_require_tls=False, auth_required=bool(username))
    controller.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
