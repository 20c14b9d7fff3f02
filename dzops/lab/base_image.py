"""The read-only Debian root filesystem every lab node boots from (as an overlayfs lower layer).

Routers, switches, access points and servers all run on it: a stock Debian box with FRR, lldpd,
hostapd, Open vSwitch and OpenSSH from Debian's own packages, so nothing of the machine's files is visible in a
node. The image lives under a directory named after its recipe stamp, so two checkouts with
different recipes never replace each other's image under running labs.

Built once with debootstrap from the host's own Debian mirror (the only place that can reach it is
the root namespace), slimmed, stamped with a recipe version and cached outside the repository.
Concurrent callers serialise on a lock file; the build goes to a temporary directory that is
renamed into place, so a half-built image is never seen.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dzops.exceptions import LabError
from dzops.lab import pkgrepo

log = logging.getLogger(__name__)

CACHE_DIR = Path("/var/cache/dzops")
SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
INCLUDE = (
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "iputils-ping",
    "ca-certificates",
    "lldpd",
    "frr",
    "frr-pythontools",  # frr-reload.py: config replace on routers
    "hostapd",
    "procps",  # ps/pkill: what an admin (and sudo's tests) expect on a box
    "openvswitch-switch",  # switches' and APs' VLAN-aware br0 (user-space datapath: no 8021q here)
    "postgresql",  # the HQ file-and-database server's databases (data-backup dumps them)
    "mariadb-server",
    "restic",  # present as on a server roles/dz_data_backup already ran on: lab nodes reach no mirror
)
# Bump when the build steps change in a way the package lists do not show.
RECIPE_REVISION = 3
MARKER = "etc/dzops-base-image.json"  # inside the image, so a server can tell what it runs

# Keeps upgrades inside a host from bringing back what the slimming removed.
_DPKG_NODOC = """\
# dzops lab: no documentation, manual pages or translations in lab hosts
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
"""
_SLIM_GLOBS = (
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/lintian/*",
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "etc/ssh/ssh_host_*",  # every server gets the host key the lab generated for it
)


def recipe_stamp() -> str:
    """A digest of everything that shapes the image; a different stamp means rebuild."""
    recipe = {
        "revision": RECIPE_REVISION,
        "suite": SUITE,
        "include": INCLUDE,
        "lab_packages": pkgrepo.lab_packages(),
        "nodoc": _DPKG_NODOC,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def host_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The first bookworm mirror URI the host itself uses (deb822 file first, then sources.list)."""
    deb822 = sources_dir / "sources.list.d" / "debian.sources"
    if deb822.exists():
        uri = _mirror_from_deb822(deb822.read_text())
        if uri:
            return uri
    one_line = sources_dir / "sources.list"
    if one_line.exists():
        uri = _mirror_from_sources_list(one_line.read_text())
        if uri:
            return uri
    log.warning("no %s mirror found in %s; using %s", SUITE, sources_dir, FALLBACK_MIRROR)
    return FALLBACK_MIRROR


def _mirror_from_deb822(text: str) -> str | None:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        # `bookworm` exactly: bookworm-security lives on another host with another layout.
        if SUITE in fields.get("suites", "").split() and fields.get("uris"):
            return fields["uris"].split()[0]
    return None


def _mirror_from_sources_list(text: str) -> str | None:
    for line in text.splitlines():
        words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")]
        if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
            return words[1]
    return None


def is_current(path: Path) -> bool:
    """True when path holds a finished image built from the current recipe."""
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("stamp") == recipe_stamp()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Exclusive flock: a second caller waits for the first build instead of starting its own."""
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_path() -> Path:
    """Where the image of the current recipe lives (one directory per recipe stamp)."""
    return CACHE_DIR / f"base-{SUITE}-{recipe_stamp()}"


def ensure_base_image(path: Path | None = None, mirror: str | None = None) -> Path:
    """Return path, building the image there first if it is missing or stale."""
    path = path or default_path()
    if is_current(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent / f".{path.name}.lock"):
        if is_current(path):  # another caller built it while we waited
            return path
        _remove_leftovers(path)
        build_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.build-", dir=path.parent))
        try:
            _build(build_dir, mirror or host_mirror())
            _swap_into_place(build_dir, path)
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
    return path


def _remove_leftovers(path: Path) -> None:
    """Delete half-built or replaced images a crashed earlier run left (we hold the lock)."""
    for pattern in (f".{path.name}.build-*", f".{path.name}.old-*"):
        for leftover in path.parent.glob(pattern):
            log.info("removing leftover %s", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


def _swap_into_place(build_dir: Path, path: Path) -> None:
    build_dir.chmod(0o755)  # mkdtemp made it 0700; it becomes the servers' /
    if path.exists():
        # Servers still running on the stale image keep its inodes; the lab must be rebuilt anyway.
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        old.rmdir()
        path.rename(old)
        build_dir.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        build_dir.rename(path)
    log.info("base image ready in %s", path)


def _run(argv: list[str], what: str) -> None:
    log.debug("running %s", argv)
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} is not installed (needed for {what})") from exc
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stdout + exc.stderr).strip().splitlines()[-15:])
        raise LabError(f"{what} failed ({exc.returncode}): {tail}") from exc


def _build(root: Path, mirror: str) -> None:
    log.info("building the %s base image in %s from %s (about a minute)", SUITE, root, mirror)
    _run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(root), mirror],
        "debootstrap of the lab base image",
    )
    _install_lab_packages(root)
    _slim(root)
    _write_marker(root, mirror)


def _install_lab_packages(root: Path) -> None:
    """Install the old version of the lab packages so `apt-get upgrade` has real work in a host."""
    staging = root / "tmp" / "dz-lab-packages"
    debs = pkgrepo.build_packages(staging, pkgrepo.INSTALLED_VERSION)
    _run(
        ["chroot", str(root), "dpkg", "-i", *(f"/tmp/dz-lab-packages/{d.name}" for d in debs)],
        "installing the lab packages in the base image",
    )
    shutil.rmtree(staging)


def _slim(root: Path) -> None:
    nodoc = root / "etc" / "dpkg" / "dpkg.cfg.d" / "01-dzops-nodoc"
    nodoc.write_text(_DPKG_NODOC)
    for pattern in _SLIM_GLOBS:
        for victim in root.glob(pattern):
            if victim.is_dir() and not victim.is_symlink():
                shutil.rmtree(victim)
            else:
                victim.unlink()
    locale_dir = root / "usr" / "share" / "locale"
    for victim in locale_dir.glob("*"):
        if victim.name != "locale.alias":
            shutil.rmtree(victim) if victim.is_dir() else victim.unlink()
    for logfile in (root / "var" / "log").rglob("*"):
        if logfile.is_file():
            logfile.write_bytes(b"")
    # Each server sets its own; a copied build-host identity would be misleading.
    (root / "etc" / "hostname").write_text("localhost\n")
    (root / "etc" / "machine-id").write_text("")


def _write_marker(root: Path, mirror: str) -> None:
    marker = {
        "stamp": recipe_stamp(),
        "suite": SUITE,
        "include": list(INCLUDE),
        "mirror": mirror,
        "lab_packages": pkgrepo.lab_packages(),
    }
    (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    os.sync()  # the rename that publishes the image must not outrun its contents
