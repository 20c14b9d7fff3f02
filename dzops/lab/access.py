"""Lab routers are prepared by `roles/dz_router_access`, run through ansible-runner as on a real box.

The lab builds each router as a stock FRR box whose login is an ordinary admin (group sudo, its
password); this module then does what an officer's `dzops onboard` does on real routers: one play
with the role, become with the admin's password, strict host keys from the lab's own known_hosts.
`dz_router_access_revoke_sudo` takes the login out of group sudo at the end, so everything dzops
does on a lab router afterwards rests on the role's narrow sudo rules only.

Passwords go to a 0600 inventory file in a 0700 private directory that is removed afterwards;
never to a command line or a log.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dzops.exceptions import LabError
from dzops.lab.spec import LabNode

log = logging.getLogger(__name__)

ROLE = "dz_router_access"
# The same play `dzops onboard` runs on real routers; the lab only names its hosts and, so that every
# lab test proves the narrow rules suffice, takes the login out of group sudo afterwards.
PLAYBOOK = "router_access.yml"
EXTRAVARS = {"dz_router_access_hosts": "all", "dz_router_access_revoke_sudo": True}
_MAX_FORKS = 25  # measured: sshd on 2 cores saturates at ~20 sessions/s


def _inventory(nodes: list[LabNode], known_hosts: Path, control_dir: Path) -> dict[str, Any]:
    ssh_args = (f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
                f"-o ControlMaster=auto -o ControlPersist=120s -o ControlPath={control_dir}/%C")
    return {"all": {
        "vars": {"ansible_connection": "ssh", "ansible_ssh_args": ssh_args,
                 "ansible_python_interpreter": "/usr/bin/python3"},
        "hosts": {n.name: {
            "ansible_host": n.mgmt_address.split("/")[0],
            "ansible_user": n.login_user,
            "ansible_password": n.login_password,
            "ansible_become_password": n.login_password,
        } for n in nodes},
    }}


def prepare_routers(nodes: list[LabNode], known_hosts: Path, state_dir: Path) -> None:
    """Run the role on every router in `nodes`; LabError naming each router that failed."""
    import ansible_runner

    from dzops.resources import playbooks_dir, roles_dir

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="access-", dir=state_dir))  # 0700
    # A unix socket path must stay under 108 bytes: a short directory of its own for SSH's masters.
    control_dir = Path(tempfile.mkdtemp(prefix="dzcp-"))
    try:
        inventory = work / "inventory" / "hosts.json"
        inventory.parent.mkdir()
        fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(_inventory(nodes, known_hosts, control_dir), handle)
        failures: list[str] = []

        def on_event(event: dict[str, Any]) -> bool:
            if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
                data = event.get("event_data", {})
                result = data.get("res", {})
                failures.append(f"{data.get('host')}: {data.get('task')}: "
                                f"{str(result.get('msg') or result.get('stderr') or '')[:300]}")
            return False  # keep events out of the artifacts directory

        runner = ansible_runner.run(
            private_data_dir=str(work),
            project_dir=str(playbooks_dir()),
            playbook=PLAYBOOK,
            inventory=str(inventory),
            extravars=EXTRAVARS,
            forks=min(len(nodes), _MAX_FORKS),
            quiet=True,
            event_handler=on_event,
            envvars={
                "ANSIBLE_ROLES_PATH": str(roles_dir()),
                "ANSIBLE_HOST_KEY_CHECKING": "True",
                "ANSIBLE_PIPELINING": "True",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "False",
                "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
                # ansible-playbook must come from the same environment as dzops (e.g. the project's .venv).
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
        )
        if runner.status != "successful" or failures:
            detail = "; ".join(failures) or f"ansible-runner status {runner.status}, rc {runner.rc}"
            raise LabError(f"roles/{ROLE} failed on lab routers: {detail}")
        log.info("roles/%s applied to %d lab routers in %.1f s", ROLE, len(nodes), time.monotonic() - started)
    finally:
        _close_masters(control_dir)
        shutil.rmtree(control_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _close_masters(control_dir: Path) -> None:
    """End the SSH connection masters the play left (ControlPersist), one per router."""
    for sock in control_dir.glob("*") if control_dir.is_dir() else []:
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "dz-lab"],
                       capture_output=True, timeout=10, check=False)
