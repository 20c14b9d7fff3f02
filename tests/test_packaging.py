"""The wheel is a whole dzops: built from this tree and installed into a fresh venv, it runs from any
directory with its own templates, playbooks, roles, ansible.cfg and sample inventory.

The new venv gets dzops from the wheel only (`--no-deps`); its dependencies come from this venv's
site-packages through a .pth line (no network, and no copy of the checkout on its path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "artifacts", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".ruff_cache")
PROBE = """
import json, sys
from dzops import resources
print(json.dumps({"root": str(resources.data_root()), "missing": resources.missing(),
                  "package": str(__import__("dzops").__file__), "path": sys.path}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding dzops from a wheel built out of a copy of this tree; returns its bin/."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp / "dist").glob("dzops-*.whl"))

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "dzops-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    return venv / "bin"


def _run(bin_dir: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    # As a fresh login would: no PYTHONPATH, no DZOPS_* or ANSIBLE_* settings, the system PATH.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_installed_package_finds_its_files_inside_the_new_venv(installed: Path, tmp_path: Path) -> None:
    proc = _run(installed, tmp_path, str(installed / "python"), "-c", PROBE)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    venv = installed.parent
    assert Path(found["package"]).is_relative_to(venv)
    assert Path(found["root"]).is_relative_to(venv) and Path(found["root"]).name == "_data"
    assert found["missing"] == []
    assert not any(Path(entry) == REPO for entry in found["path"] if entry)
    for name in ("templates/frr/router.j2", "playbooks/patch.yml", "roles/dz_users/tasks/main.yml",
                 "ansible.cfg", "inventory/hosts.yml", "inventory/DEMO-ONLY-vault-password.txt"):
        assert (Path(found["root"]) / name).is_file(), name


@pytest.mark.slow
def test_the_installed_dzops_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    dzops = str(installed / "dzops")
    help_text = _run(installed, tmp_path, dzops, "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "provision-wan" in help_text.stdout

    lab_help = _run(installed, tmp_path, dzops, "lab", "up", "--help")
    assert lab_help.returncode == 0 and "--configured" in lab_help.stdout, lab_help.stderr

    # No ./inventory in the cwd: the shipped sample is the default, and -i names it explicitly too.
    shipped = installed.parent / "lib"
    sample = next(shipped.glob("python3*/site-packages/dzops/_data/inventory"))
    for argv in ([dzops, "inventory", "check"], [dzops, "-i", str(sample), "inventory", "check"]):
        proc = _run(installed, tmp_path, *argv)
        assert proc.returncode == 0, proc.stderr[-2000:]
