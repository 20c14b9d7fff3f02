"""Run one fake-switches Cisco IOS switch over SSH until killed (a test peer, not product code).

Usage: python fake_ios_server.py PORT, with FAKE_IOS_USER, FAKE_IOS_PASSWORD and FAKE_IOS_ENABLE in the
environment (kept out of argv so `ps` does not show them). Runs in its own process because Twisted's
reactor cannot be restarted inside a test process.
"""

from __future__ import annotations

import logging
import os
import sys

from fake_switches.switch_configuration import SwitchConfiguration
from fake_switches.switch_factory import DEFAULT_MAPPING
from fake_switches.transports.ssh_service import SwitchSshService
from twisted.internet import reactor

MODEL = "cisco_2960_24TT_L"  # FastEthernet0/1-24 plus GigabitEthernet0/1-2


def main() -> None:
    port = int(sys.argv[1])
    core_class = DEFAULT_MAPPING[MODEL]
    configuration = SwitchConfiguration(
        "127.0.0.1", name="fake-rtr1", ports=core_class.get_default_ports(),
        # The enable password is only settable here; the launcher has no option for it.
        privileged_passwords=[os.environ["FAKE_IOS_ENABLE"]],
    )
    service = SwitchSshService(
        ip="127.0.0.1", port=port, switch_core=core_class(configuration),
        users={os.environ["FAKE_IOS_USER"]: os.environ["FAKE_IOS_PASSWORD"].encode()},
    )
    service.hook_to_reactor(reactor)
    print("listening", flush=True)  # the fixture waits for this line
    reactor.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
