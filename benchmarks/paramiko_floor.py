"""The floor of benchmarks/backup_fanout.py: plain paramiko, connect + `show running-config` + close per router.

Imported, `floor(inventory, workers)` times the fan-out alone, in a process that has paramiko and the
inventory loaded already. Run as a script, it is the same fan-out as a whole process of its own:

    python benchmarks/paramiko_floor.py INVENTORY_DIR VAULT_PASSWORD_FILE WORKERS

Python starts, imports paramiko while the Vault key is derived (as dzops does), loads the inventory
from dzops' warm cache (DZOPS_STATE_DIR) and fans out: the least any command-line tool built on this inventory and paramiko pays for a backup.
Only what that needs is imported here, so the process measures no benchmark machinery.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def floor(inventory, workers: int) -> tuple[float, float]:
    """(wall, CPU seconds of this process) of connect + `show running-config` + close on every router,
    `workers` at a time."""
    import paramiko

    devices = list(inventory.devices.values())

    def one(device) -> int:
        client = paramiko.SSHClient()
        client.load_host_keys(str(inventory.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(str(device.mgmt_address), username=device.username,
                       password=device.password.get_secret_value(), look_for_keys=False, allow_agent=False,
                       timeout=30)
        try:
            _, stdout, _ = client.exec_command("vtysh -c 'show running-config'", timeout=60)
            return len(stdout.read())
        finally:
            client.close()

    start, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sizes = list(pool.map(one, devices))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert all(size > 100 for size in sizes), "a router answered with an empty config"
    return elapsed, cpu


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from dzops.inventory.cache import load_validated, stretch_ahead

    inventory_dir, password_file = Path(sys.argv[1]), Path(sys.argv[2])
    stretch_ahead(inventory_dir, password_file)  # the Vault key derived beside paramiko's import, as dzops does
    import paramiko  # noqa: F401 - imported while the key is derived

    loaded, problems = load_validated(inventory_dir, password_file)
    if loaded is None:
        raise SystemExit(f"inventory did not load: {problems[:3]}")
    floor(loaded, int(sys.argv[3]))
