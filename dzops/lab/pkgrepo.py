"""The lab's offline Debian package repository.

The lab's servers cannot reach a real Debian mirror from inside their namespaces, yet `dzops patch`
must have real upgrades to do. So a few tiny packages are built here in two versions: the old one
is installed in the base image (`dzops.lab.base_image`), the new one is served over HTTP from the
management gateway address, and every server's only apt source is that repository.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dzops.exceptions import LabError

log = logging.getLogger(__name__)

INSTALLED_VERSION = "1.0"
AVAILABLE_VERSION = "1.1"

# name -> one-line description. Each package only ships /usr/share/<name>/VERSION: enough for apt
# and dpkg to do a real upgrade, nothing that could start a daemon inside a lab host.
_PACKAGES: dict[str, str] = {
    "dz-motd": "Dzongkhag ICT lab: login banner text",
    "dz-health-agent": "Dzongkhag ICT lab: health check agent (dummy)",
    "dz-backup-agent": "Dzongkhag ICT lab: backup agent (dummy)",
}

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


def lab_packages() -> dict[str, tuple[str, str]]:
    """Name -> (version installed in the base image, version the repository offers)."""
    return {name: (INSTALLED_VERSION, AVAILABLE_VERSION) for name in _PACKAGES}


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a tool, turning a failure into a LabError that says which tool and why."""
    try:
        return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} is not installed (needed to build the lab package repository)") from exc
    except subprocess.CalledProcessError as exc:
        raise LabError(f"{' '.join(argv)} failed ({exc.returncode}): {exc.stderr.strip()}") from exc


def _build_one(name: str, description: str, version: str, out_dir: Path) -> Path:
    """Build `<name>_<version>_all.deb` in out_dir from a throw-away staging tree."""
    deb = out_dir / f"{name}_{version}_all.deb"
    with tempfile.TemporaryDirectory(prefix=f"dz-pkg-{name}-") as staging_str:
        staging = Path(staging_str)
        (staging / "DEBIAN").mkdir()
        share = staging / "usr" / "share" / name
        share.mkdir(parents=True)
        (share / "VERSION").write_text(f"{version}\n")
        (staging / "DEBIAN" / "control").write_text(
            f"Package: {name}\n"
            f"Version: {version}\n"
            "Architecture: all\n"
            "Section: misc\n"
            "Priority: optional\n"
            "Maintainer: dzops lab <lab@dzops.invalid>\n"
            f"Description: {description}\n"
            " Built by dzops for its virtual lab; installs only a VERSION file.\n"
        )
        # tempfile creates 0700 directories; dpkg would install them with that mode.
        for directory in [staging, *staging.rglob("*")]:
            if directory.is_dir():
                directory.chmod(0o755)
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(staging), str(deb)])
    return deb


def build_packages(out_dir: Path, version: str) -> list[Path]:
    """Build every lab package in `version` into out_dir; returns the .deb paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_build_one(name, desc, version, out_dir) for name, desc in _PACKAGES.items()]


def build_repo(repo_dir: Path) -> Path:
    """Build the flat repository (AVAILABLE_VERSION debs, Packages, Release) in repo_dir.

    Idempotent: skipped when the index already lists every package in the available version.
    """
    packages_file = repo_dir / "Packages"
    if packages_file.exists() and _index_is_current(packages_file.read_text()):
        return repo_dir
    repo_dir.mkdir(parents=True, exist_ok=True)
    for old in repo_dir.glob("*.deb"):
        old.unlink()
    build_packages(repo_dir, AVAILABLE_VERSION)
    packages = _run(["apt-ftparchive", "packages", "."], cwd=repo_dir).stdout
    packages_file.write_text(packages)
    # Release is generated after Packages and written afterwards: a shell `> Release` would
    # create an empty Release first and index it into itself.
    (repo_dir / "Release").unlink(missing_ok=True)
    release = _run(["apt-ftparchive", "release", "."], cwd=repo_dir).stdout
    (repo_dir / "Release").write_text(release)
    log.info("lab package repository built in %s", repo_dir)
    return repo_dir


def _index_is_current(packages_text: str) -> bool:
    wanted = {f"Package: {name}\nVersion: {AVAILABLE_VERSION}\n" for name in _PACKAGES}
    return all(entry in packages_text for entry in wanted)


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Poll until host:port accepts a TCP connection, or fail if the server died."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"{what} exited with status {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    terminate(proc.pid)
    raise LabError(f"{what} did not listen on {host}:{port} within {_START_TIMEOUT_S:.0f} s")


def start(bind_address: str, port: int, repo_dir: Path, log_file: Path | None = None) -> int:
    """Serve repo_dir over HTTP on bind_address:port; returns the server's PID.

    Builds the repository first unless repo_dir already holds the current one. The server runs
    in its own session so it outlives the calling process (`dzops lab down` may run elsewhere).
    """
    build_repo(repo_dir)
    argv = [
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        bind_address,
        "--directory",
        str(repo_dir),
        str(port),
    ]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    finally:
        if log_file:
            out.close()  # type: ignore[union-attr]
    _wait_listening(bind_address, port, proc, "package repository HTTP server")
    log.info("package repository http://%s:%d/ served by pid %d", bind_address, port, proc.pid)
    return proc.pid


def stop(pid: int) -> None:
    """Stop the HTTP server started by `start`."""
    terminate(pid)


def terminate(pid: int, timeout: float = _STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after timeout; reaps the process if it is our child.

    Safe to call for a process that is already gone.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _reap(pid)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _reap(pid) or not _alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while _alive(pid) and not _reap(pid):
        time.sleep(0.02)


def _reap(pid: int) -> bool:
    """Reap pid if it is an exited child of ours; True when it is gone for good."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not _alive(pid)
    return done == pid


def _alive(pid: int) -> bool:
    """True while pid exists and is not a zombie (a zombie of another parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def clean(repo_dir: Path) -> None:
    """Remove the repository directory (part of lab teardown)."""
    shutil.rmtree(repo_dir, ignore_errors=True)
