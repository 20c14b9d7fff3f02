"""A cache of validated inventories, keyed on the content of every file ansible reads for them.

Loading 5,000 hosts through ansible-core takes seconds, and the same files always load the same
way. So the validated inventory and its problems are kept in dzops' private state folder
(`dzops.state.home.state_dir()/inventory-cache`, 0700, entries 0600, written atomically under a
lock), under a fingerprint of:

* every file below the inventory folder (hosts.yml, group_vars, host_vars, Vault files, anything
  else there; hidden folders such as .git left out), by path and content hash;
* the ansible settings that could change how they load (ANSIBLE_* variables, every ansible.cfg
  ansible would look at);
* the vault identity (see below), and the dzops, ansible-core, pydantic and Python versions plus a
  stamp of dzops' own code (a working tree changes without a new version number).

Any edit of any of them is a miss; a miss loads through ansible as before and replaces the entry.
A problem's file is kept absolute and shown relative to the current folder on the way out, so a
warm `inventory check` prints exactly what a cold one prints.

Secrets: a validated inventory holds the Vault's values in clear (device passwords, PSKs). With a
vault password, an entry is encrypted and authenticated (AES-256-GCM, the fingerprint as associated
data) with a key stretched from the password (PBKDF2-SHA256 with a random salt kept in the cache
folder); the vault identity in the fingerprint is an HMAC from that same stretched secret, never
the password or a plain hash of it. Without a vault password, an inventory with any Vault content
(a `$ANSIBLE_VAULT` file or an inline `!vault`) is never cached; one without holds no decrypted
secret, and is kept unencrypted like the files it came from. A wrong password gives another
identity, so another entry, and the load then fails as it always did.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import pickle
import secrets
import stat
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dzops.exceptions import AlreadyRunning, Problem

log = logging.getLogger(__name__)

FORMAT = b"dzops-inventory-cache 1\n"
PBKDF2_ROUNDS = 200_000
SALT_BYTES = 32
NONCE_BYTES = 12
MAX_STRETCHES = 4  # vault passwords x cache salts a process has opened; kept for the process
MAX_ENTRIES = 64  # one per inventory folder and vault identity; the least recently used go first
LOCK_WAIT_S = 2.0  # another run storing: skip storing rather than wait long
VAULT_MARKERS = (b"$ANSIBLE_VAULT", b"!vault")
_STRETCHES: dict[tuple[bytes, bytes], Future[tuple[bytes, bytes]]] = {}
_STRETCHES_LOCK = threading.Lock()
ANSIBLE_CFG_CANDIDATES = ("ansible.cfg", "~/.ansible.cfg", "/etc/ansible/ansible.cfg")
ENCRYPTED, PLAIN = b"E", b"P"


def cache_dir() -> Path:
    from dzops.state.home import state_dir

    return state_dir() / "inventory-cache"


def enabled() -> bool:
    """DZOPS_INVENTORY_CACHE=0 turns the cache off (every load goes through ansible)."""
    return os.environ.get("DZOPS_INVENTORY_CACHE", "1").lower() not in ("0", "off", "no", "false")


def inventory_files(root: Path) -> list[Path]:
    """Every file below `root`, sorted, following links once; hidden folders (.git) left out.

    ansible reads hosts.yml and whatever group_vars/ and host_vars/ hold; hashing the whole folder
    also covers a file a later ansible or a vars plugin might read.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += (Path(folder, name) for name in sorted(files))
    return found


def _code_stamp() -> bytes:
    """The dzops code a load runs (dzops/inventory/ and the top-level modules it uses), as installed:
    a working tree changes without a new version number. The other layers cannot change a load."""
    import pydantic.version

    import dzops

    package = Path(dzops.__file__).parent
    h = hashlib.sha256()
    for value in (dzops.__version__, pydantic.version.VERSION, sys.version):
        h.update(value.encode() + b"\0")
    h.update(ansible_release() + b"\0")
    for folder in (package, package / "inventory"):
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                info = os.stat(folder / name)
                h.update(f"{folder.name}/{name}:{info.st_size}:{info.st_mtime_ns}\0".encode())
    return h.digest()


def ansible_release() -> bytes:
    """ansible-core's `release.py` as installed (its version and codename), read without importing
    ansible: importing the package sets up its vendored modules, 5-12 ms of every warm start for a
    version string."""
    import importlib.util

    spec = importlib.util.find_spec("ansible")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        with contextlib.suppress(OSError):
            return Path(folder, "release.py").read_bytes()
    return b"no ansible-core"


def _ansible_settings() -> bytes:
    h = hashlib.sha256()
    for key, value in sorted(os.environ.items()):
        if key.startswith("ANSIBLE_"):
            h.update(f"{key}={value}\0".encode())
    candidates = [os.environ.get("ANSIBLE_CONFIG", ""), *ANSIBLE_CFG_CANDIDATES]
    for candidate in candidates:
        path = Path(candidate).expanduser() if candidate else None
        if path is not None and path.is_file():
            with contextlib.suppress(OSError):
                h.update(str(path.resolve()).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.digest()


@dataclass(frozen=True)
class Snapshot:
    """What the inventory folder held when it was read: the fingerprint's inputs."""

    digest: bytes  # of every file's path and content
    stats: tuple[tuple[str, int, int, int], ...]  # path, inode, size, mtime: did anything move while loading?
    has_vault_content: bool


def snapshot(root: Path) -> Snapshot:
    h = hashlib.sha256()
    stats = []
    vaulted = False
    for path in inventory_files(root):
        try:
            data = path.read_bytes()
            info = path.stat()
        except OSError as exc:  # unreadable: ansible will say so; this content is never cached
            raise CacheMiss(f"cannot read {path}: {exc.strerror}") from None
        relative = os.path.relpath(path, root)
        h.update(relative.encode(errors="surrogateescape") + b"\0" + hashlib.sha256(data).digest())
        stats.append((str(path), info.st_ino, info.st_size, info.st_mtime_ns))
        vaulted = vaulted or any(marker in data for marker in VAULT_MARKERS)
    return Snapshot(h.digest(), tuple(stats), vaulted)


def unchanged(root: Path, before: Snapshot) -> bool:
    """Whether the folder still holds what `before` read (cheap: names and stat only)."""
    try:
        now = tuple((str(p), (s := p.stat()).st_ino, s.st_size, s.st_mtime_ns) for p in inventory_files(root))
    except OSError:
        return False
    return now == before.stats


class CacheMiss(Exception):  # noqa: N818 - a reason to load through ansible, never seen outside this module
    pass


def _stored_salt(folder: Path) -> bytes | None:
    """The salt an earlier load left in the cache folder; None when there is none, or it is damaged."""
    with contextlib.suppress(FileNotFoundError):
        salt = (folder / "salt").read_bytes()
        if len(salt) == SALT_BYTES:
            return salt
    return None


def _salt(folder: Path) -> bytes:
    from dzops.state.files import private_dir, write_private

    path = private_dir(folder) / "salt"
    if (salt := _stored_salt(folder)) is not None:
        return salt
    try:  # the first run creates it; a concurrent first run must not replace the one already used
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        salt = path.read_bytes()
        if len(salt) == SALT_BYTES:
            return salt
        write_private(path, salt := secrets.token_bytes(SALT_BYTES))  # damaged: start over
        return salt
    salt = secrets.token_bytes(SALT_BYTES)
    with os.fdopen(fd, "wb") as fh:
        fh.write(salt)
        fh.flush()
        os.fsync(fh.fileno())
    return salt


def vault_keys(secret: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(identity, encryption key) from a vault password: one slow stretch, two independent HMACs.
    Kept for the process (it holds the password anyway): a run over several Dzongkhag inventories
    opened with one vault password stretches it once, not once per inventory. A caller that comes
    while the same stretch is under way (`stretch_ahead`'s thread) waits for it, not stretch again.

    >>> ident, key = vault_keys(b"pw", b"s" * 32)
    >>> ident != key and len(key) == 32 and vault_keys(b"other", b"s" * 32)[0] != ident
    True
    """
    wanted = (secret, salt)
    with _STRETCHES_LOCK:
        stretch = _STRETCHES.get(wanted)
        mine = stretch is None
        if stretch is None:
            stretch = _STRETCHES[wanted] = Future()
            while len(_STRETCHES) > MAX_STRETCHES:  # the oldest: its waiters hold their own Future
                del _STRETCHES[next(iter(_STRETCHES))]
    if mine:
        try:
            master = hashlib.pbkdf2_hmac("sha256", secret, salt, PBKDF2_ROUNDS)
            stretch.set_result(
                (hmac.new(master, b"dzops inventory cache: vault identity", hashlib.sha256).digest(),
                 hmac.new(master, b"dzops inventory cache: encryption key", hashlib.sha256).digest()))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiters, raised below
            with _STRETCHES_LOCK:  # not kept: the next caller stretches again
                if _STRETCHES.get(wanted) is stretch:
                    del _STRETCHES[wanted]
            stretch.set_exception(exc)
    keys: tuple[bytes, bytes] = stretch.result()
    return keys


def stretch_ahead(root: Path, vault_password_file_path: Path | None) -> None:
    """Start stretching `root`'s vault password on a thread of its own, now.

    The stretch takes 60-90 ms of one core and releases Python's lock (hashlib), so started where
    a command's options are known, it runs beside the command's imports and the inventory load
    finds it done instead of waiting for it. Reads only: nothing happens when the cache is off,
    the password file cannot be read, or the cache has no salt yet (its first load makes one);
    the load itself then stretches, or reports the problem, as it always did.
    """
    if not enabled():
        return
    try:
        secret = _vault_secret(root, vault_password_file_path)
        salt = _stored_salt(cache_dir())
    except OSError:
        return
    if secret and salt is not None:
        threading.Thread(target=vault_keys, args=(secret, salt), name="dzops-vault-stretch", daemon=True).start()


def _vault_secret(root: Path, vault_password_file_path: Path | None) -> bytes | None:
    """The vault password the load of `root` would use (None: no password file); OSError if unreadable."""
    from dzops.inventory.vault_password import vault_password_file

    password_file = vault_password_file(root, vault_password_file_path)
    return password_file.read_bytes().strip() if password_file is not None else None


@dataclass
class Entry:
    """One inventory's place in the cache and the fingerprint its content must match."""

    path: Path
    fingerprint: bytes
    key: bytes | None  # None: stored unencrypted (no vault password, no vault content)
    snapshot: Snapshot

    @classmethod
    def for_inventory(cls, source: Path, secret: bytes | None) -> Entry:
        folder = cache_dir()
        content = snapshot(source.parent)
        if secret is None:
            if content.has_vault_content:
                raise CacheMiss("vault content without a vault password: never cached")
            identity, key = b"no vault", None
        else:
            identity, key = vault_keys(secret, _salt(folder))
        fingerprint = hashlib.sha256(b"\0".join(
            (FORMAT, str(source).encode(errors="surrogateescape"), content.digest, identity, _ansible_settings(),
             _code_stamp()))).digest()
        name = hashlib.sha256(str(source).encode(errors="surrogateescape") + b"\0" + identity).hexdigest()[:32]
        return cls(folder / f"{name}.entry", fingerprint, key, content)

    def read(self) -> tuple[Any, list[Problem]] | None:
        try:
            with open(self.path, "rb") as fh:
                info = os.fstat(fh.fileno())
                # only what this user wrote and nobody else could have: the payload is a pickle
                if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
                    return None
                blob = fh.read()
        except OSError:
            return None
        head = len(FORMAT) + 32 + 1
        if not blob.startswith(FORMAT) or blob[len(FORMAT):head - 1] != self.fingerprint:
            return None
        mode, body = blob[head - 1:head], blob[head:]
        try:
            if mode == ENCRYPTED and self.key is not None:
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM

                body = AESGCM(self.key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], self.fingerprint)
            elif not (mode == PLAIN and self.key is None):
                return None
            inventory, problems = pickle.loads(body)  # noqa: S301 - our own 0600 file, authenticated when encrypted
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign entry is a miss, never an error
            log.debug("inventory cache entry %s unusable: %s", self.path, exc)
            return None
        with contextlib.suppress(OSError):
            os.utime(self.path)  # recently used: pruned last
        return inventory, [_shown(p) for p in problems]

    def store(self, inventory: Any, problems: list[Problem], root: Path) -> bool:
        """Keep the result, unless the files moved while they were loaded; False if not stored."""
        from dzops.state.files import private_dir, write_private
        from dzops.state.lock import file_lock

        if not unchanged(root, self.snapshot):
            return False
        body = pickle.dumps((inventory, [_absolute(p) for p in problems]), protocol=pickle.HIGHEST_PROTOCOL)
        if self.key is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            nonce = secrets.token_bytes(NONCE_BYTES)
            body = ENCRYPTED + nonce + AESGCM(self.key).encrypt(nonce, body, self.fingerprint)
        else:
            body = PLAIN + body
        folder = private_dir(self.path.parent)
        try:
            with file_lock(folder / "lock", "inventory cache", timeout=LOCK_WAIT_S):
                write_private(self.path, FORMAT + self.fingerprint + body)
                _prune(folder)
        except (AlreadyRunning, OSError) as exc:
            log.debug("inventory cache not stored: %s", exc)
            return False
        return True


def _absolute(problem: Problem) -> Problem:
    return replace(problem, file=os.path.abspath(problem.file)) if problem.file else problem


def _shown(problem: Problem) -> Problem:
    from dzops.inventory.loader import display_path

    return replace(problem, file=display_path(problem.file)) if problem.file else problem


def _prune(folder: Path, keep: int = MAX_ENTRIES) -> None:
    entries = sorted(folder.glob("*.entry"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in entries[keep:]:
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def load_validated(root: Path, vault_password_file_path: Path | None = None) -> tuple[Any, list[Problem]]:
    """`loader.load` without its raw ansible values, from the cache when the files are unchanged.

    Raises as `load` does for an inventory that cannot be loaded at all (those are never cached).
    """
    from dzops.inventory.loader import inventory_source, load

    entry = None
    if enabled():
        source = inventory_source(root).resolve()
        try:
            secret = _vault_secret(root, vault_password_file_path)
            entry = Entry.for_inventory(source, secret)
            hit = entry.read()
        except (CacheMiss, OSError) as exc:  # an unreadable password file: the load below says so
            log.debug("inventory cache not used: %s", exc)
            entry, hit = None, None
        if hit is not None:
            return hit
    inventory, problems, loaded = load(root, vault_password_file_path)
    if entry is not None:
        entry.store(inventory, problems, loaded.root)
    return inventory, problems
