"""How much `dzops data-backup run` costs over doing the same by hand: 1 GB of files and a 100 MB
PostgreSQL database on a lab server, backed up over SFTP to another lab server, in the same run.

Builds a two-server lab from the sample inventory (punakha-hq-srv1 with its data_backups, and
punakha-hq-web1 holding the repository), lets dzops prepare the SFTP access once on the small
sample data, then adds the benchmark data (--files-mb of random files under /srv/share/bench, a
table of about --db-mb in the PostgreSQL dzongkhag database) and times, --runs rounds each, every
run into an empty repository, the two sides taking turns to go first:

  * dzops: `python -m dzops -i INV data-backup run` (the whole run: Python and ansible-runner, the
    setup probe, the MariaDB dump too, one snapshot per item, retention);
  * by hand, inside the server as an admin would type it: `restic init`, `pg_dump -Fc` into a file,
    `restic backup` of the dump and /srv/share, over the same SFTP access;

and prints the ratio dzops / by hand (target <= 1.2). Page caches are warmed (the files read once)
before the rounds. The lab is torn down at the end, also on failure or Ctrl-C.

    python benchmarks/data_backup.py [--files-mb 1024] [--db-mb 100] [--runs 3] [--prefix dbb] [--octet 56]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SRV, WEB = "punakha-hq-srv1", "punakha-hq-web1"
DZOPS_REPO = "/srv/restic/punakha-hq-srv1"
HAND_REPO = "/srv/restic/by-hand"


def two_server_inventory(root: Path, octet: int, state_dir: Path) -> Path:
    """The sample inventory cut down to its two HQ servers (no routers: each server's gateway is set)."""
    from tests.labkit import copy_sample_inventory

    inv = copy_sample_inventory(root / "inventory", octet, state_dir)
    (inv / "hosts.yml").write_text(
        "---\nall:\n  children:\n    site_hq:\n      hosts:\n" + "".join(f"        {h}:\n" for h in (SRV, WEB))
        + "    servers:\n      hosts:\n" + "".join(f"        {h}:\n" for h in (SRV, WEB))
        + "    routers:\n      hosts: {}\n    switches:\n      hosts: {}\n")
    for path in (inv / "host_vars").glob("*.yml"):
        if path.stem not in (SRV, WEB):
            path.unlink()
    for host in (SRV, WEB):
        path = inv / "host_vars" / f"{host}.yml"
        path.write_text(path.read_text() + "gateway: 10.30.1.1\n")
    for group in ("access_points", "routers", "switches"):
        (inv / "group_vars" / f"{group}.yml").unlink(missing_ok=True)
    (inv / "group_vars/all/wan_links.yml").write_text("---\nwan_links: []\n")
    (inv / "group_vars/all/lan_links.yml").write_text("---\nlan_links: []\n")
    ops = inv / "group_vars/all/operations.yml"
    ops.write_text("\n".join(f"report_dir: {root / 'reports'}" if line.startswith("report_dir:") else line
                             for line in ops.read_text().splitlines()) + "\n")
    return inv


def console(lab, node: str, script: str, timeout: float = 3600) -> str:
    proc = lab.exec(node, ["sh", "-c", script], timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{node}: {script[:80]}...: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return proc.stdout


HAND = f"""
set -e
export RESTIC_PASSWORD_FILE=/etc/dzops/data-backup/password
export TMPDIR=/var/tmp  # as dzops does: the lab's /tmp is a 64 MB tmpfs, too small for restic's packs
sftp='sftp.command=ssh -F /etc/dzops/data-backup/ssh_config dz-repo-{WEB} -s sftp'
restic -q -r sftp:dz-repo-{WEB}:{HAND_REPO} -o "$sftp" init >/dev/null
runuser -u postgres -- pg_dump -Fc dzongkhag > /var/backups/by-hand.dump
restic -q -r sftp:dz-repo-{WEB}:{HAND_REPO} -o "$sftp" backup /var/backups/by-hand.dump /srv/share >/dev/null
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files-mb", type=int, default=1024)
    parser.add_argument("--db-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefix", default="dbb")  # 1-6 of [a-z0-9]
    parser.add_argument("--octet", type=int, default=56)
    args = parser.parse_args()

    from dzops.inventory.loader import load_inventory
    from dzops.lab.builder import Lab
    from dzops.lab.from_inventory import spec_from_inventory

    root = Path(tempfile.mkdtemp(prefix="dzops-bench-data-"))
    state_root = root / "state"
    inv = two_server_inventory(root, args.octet, state_root / args.prefix)
    lab = Lab(spec_from_inventory(load_inventory(inv), args.prefix, state_root=state_root))
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def dzops_run() -> float:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "dzops", "-i", str(inv), "data-backup", "run"], env=env,
                              capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"dzops data-backup run exited {proc.returncode}: {proc.stdout[-800:]}{proc.stderr[-800:]}")
        return elapsed

    try:
        t0 = time.perf_counter()
        lab.up()
        print(f"lab of 2 servers up in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        dzops_run()  # prepares the server's SFTP access once, on the sample's small data
        chunks = max(1, args.files_mb // 16)
        console(lab, SRV, f"mkdir -p /srv/share/bench && for i in $(seq {chunks}); do "
                          f"head -c 16M /dev/urandom > /srv/share/bench/file-$i.bin; done")
        rows = args.db_mb * 1024 * 1024 // 200
        console(lab, SRV, "runuser -u postgres -- psql -q -d dzongkhag -c "
                          f"\"CREATE TABLE bench AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || "
                          f"repeat('x', 130) AS payload FROM generate_series(1, {rows}) g\"")
        # The new table's autovacuum and the checkpoint that writes it out would otherwise land in the
        # first timed round, on whichever side goes first.
        console(lab, SRV, "runuser -u postgres -- psql -q -d dzongkhag -c 'VACUUM ANALYZE bench' -c CHECKPOINT && sync")
        size = console(lab, SRV, "runuser -u postgres -- psql -Atq -d dzongkhag -c "
                                 "\"SELECT pg_size_pretty(pg_database_size('dzongkhag'))\"").strip()
        files = console(lab, SRV, "du -sh /srv/share | cut -f1").strip()
        print(f"data: /srv/share {files}, database dzongkhag {size}", file=sys.stderr)
        console(lab, SRV, "cat /srv/share/bench/* > /dev/null")  # both sides start with warm caches
        ours, hand = [], []

        def by_hand() -> float:
            start = time.perf_counter()
            console(lab, SRV, HAND)
            return time.perf_counter() - start

        for n in range(args.runs):
            # Each side into an empty repository, in turns (odd rounds by hand first): neither side
            # always meets the caches the other one warmed.
            for side in (("hand", "dzops") if n % 2 else ("dzops", "hand")):
                console(lab, WEB, f"rm -rf {DZOPS_REPO} {HAND_REPO} && install -d -o dzbackup -g dzbackup -m 0700 "
                                  f"{DZOPS_REPO} {HAND_REPO}")
                (ours if side == "dzops" else hand).append(dzops_run() if side == "dzops" else by_hand())
            print(f"round {n + 1}: dzops {ours[-1]:.1f} s, by hand {hand[-1]:.1f} s, ratio {ours[-1] / hand[-1]:.2f} "
                  f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        mine, theirs = statistics.median(ours), statistics.median(hand)
        print(f"dzops data-backup run: {mine:.1f} s (median of {args.runs})")
        print(f"pg_dump + restic backup by hand: {theirs:.1f} s (median of {args.runs})")
        print(f"ratio dzops / by hand: {mine / theirs:.2f} (target <= 1.2)")
        return 0
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
