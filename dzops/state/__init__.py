"""Files dzops owns on the officer's machine: atomic writes, private modes, advisory locks.

Everything that writes state below the CLI (inventory write-back, drift state, the outbox, the
backup repository, job locks) goes through here, so a crash or Ctrl-C mid-write never leaves a
half-written file and two runs never interleave their writes.
"""

from dzops.state.files import PRIVATE_DIR, PRIVATE_FILE, atomic_write, private_dir, write_private
from dzops.state.lock import file_lock, job_lock

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "atomic_write", "file_lock", "job_lock", "private_dir", "write_private"]
