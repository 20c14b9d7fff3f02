"""Paths and runners shared by the collection's tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "collections" / "ansible_collections" / "dzops" / "dzongkhag"
MODULES = ("backup", "drift", "provision_wan", "provision_ap", "health", "data_backup")
JOB_PLAYBOOKS = tuple(REPO / "playbooks" / f"job_{name}.yml" for name in MODULES)
BIN = Path(sys.executable).parent


def ansible_env(**extra: str) -> dict[str, str]:
    """The environment ansible-* commands get: the repository's ansible.cfg (its collections_path
    finds the in-repository collection), this venv first on PATH, no colour."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(extra)
    return env


def job_support() -> ModuleType:
    """The collection's module_utils, loaded from its file (it imports nothing from Ansible)."""
    path = COLLECTION / "plugins" / "module_utils" / "dzops_job.py"
    spec = importlib.util.spec_from_file_location("dzops_collection_job_support", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(argv: list[str], timeout: int = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, env=ansible_env(**env), capture_output=True, text=True, timeout=timeout)


class Run:
    """One ansible-runner run: its rc, the module results of each task (per loop item for a looped
    task), and everything Ansible printed."""

    def __init__(self, rc: int, results: list[dict], stdout: str) -> None:
        self.rc = rc
        self.results = results
        self.stdout = stdout

    @property
    def only(self) -> dict:
        (result,) = self.results
        return result


RESULT_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_item_on_ok",
                 "runner_item_on_failed", "runner_item_on_skipped"}


def runner(tmp_path: Path, *, playbook: str | None = None, module: str | None = None, args: dict | None = None,
           extravars: dict | None = None, cmdline: str = "") -> Run:
    """A job play (or one module, ad hoc) on localhost through ansible-runner, as AWX runs them.

    A looped task's per-item results are kept; its closing summary (the list of every item) is not.
    """
    import json

    import ansible_runner

    private = tmp_path / "runner"
    private.mkdir(mode=0o700)
    inventory = private / "localhost.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    results: list[dict] = []

    def handler(event: dict) -> bool:
        if event.get("event") in RESULT_EVENTS:
            res = dict(event["event_data"].get("res", {}))
            # An item's result says how it ended only through the event's name.
            res.setdefault("failed", event["event"].endswith("_failed"))
            res.setdefault("skipped", event["event"].endswith("_skipped"))
            if "results" not in res or event["event"].startswith("runner_item"):
                results.append(res)
        return True

    kwargs: dict = {"playbook": str(REPO / playbook)} if playbook else {
        "module": f"dzops.dzongkhag.{module}", "module_args": json.dumps(args or {}), "host_pattern": "localhost"}
    outcome = ansible_runner.run(private_data_dir=str(private), project_dir=str(REPO), inventory=str(inventory),
                                 extravars=extravars or {}, cmdline=cmdline or None, envvars=ansible_env(),
                                 event_handler=handler, quiet=True, **kwargs)
    return Run(outcome.rc, results, outcome.stdout.read())
