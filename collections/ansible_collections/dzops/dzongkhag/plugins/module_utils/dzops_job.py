"""The one bridge between this collection's modules and dzops: one implementation, two front doors.

A module runs its job as the dzops command it is (`python -m dzops --json ... backup`, with the
Python running the module): the same plan, execute, report and state code, the same locks, run
ledger, history and backup commits, the same refusals and exit codes as the command line. Nothing
here re-implements a job; it turns the command's JSON into per-device results and computes
`changed` and `failed` from them.

Secrets: the command's stdout and stderr have passed dzops' egress filter (rules and the Vault's
values) in the dzops process; the module's whole result passes it again here (rules) before it
leaves. A Vault password given to the module reaches dzops as a 0600 file, never as an argument.

The modules run where ansible-playbook runs (the plays target localhost), so dzops must be
importable by the Python that runs them: the plays set ansible_python_interpreter to
ansible_playbook_python, the interpreter of the environment dzops is installed in.

No Ansible imports here: tests load this file on its own to check the pure functions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any

# Options every job module takes (documented once, in the doc fragment dzops.dzongkhag.job).
COMMON_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "inventory": {"type": "path", "required": True},
    "limit": {"type": "str"},
    "forks": {"type": "int"},
    "vault_password_file": {"type": "path", "no_log": False},
    "vault_password": {"type": "str", "no_log": True},
    "lab": {"type": "str"},
}

# Statuses of a device (HostResult, LinkResult, backup, drift) that make a job fail, as the CLI's
# exit codes do (dzops.cli.exit_codes.exit_code_for_results).
FAILED_STATUSES = frozenset({"failed", "rolled_back", "unreachable"})

# The dzops command the data_backup module runs; it is built on another branch. Until dzops
# registers it, the module fails and says so.
DATA_BACKUP_COMMAND = "data-backup"


class DzopsRun:
    """One dzops command run: its exit code, its JSON on stdout, its stderr lines."""

    def __init__(self, argv: list[str], code: int, data: Any, messages: list[str]) -> None:
        self.argv = argv
        self.code = code
        self.data = data
        self.messages = messages

    def error(self) -> str:
        """The command's own error lines (`dzops: error: ...`), else its last message."""
        errors = [m for m in self.messages if m.startswith("dzops: error:") or not m.startswith("dzops:")]
        return "; ".join(errors) if errors else (self.messages[-1] if self.messages else f"exit code {self.code}")


def missing_dzops_message() -> str | None:
    """Why dzops cannot be used from this interpreter, or None when it can."""
    if importlib.util.find_spec("dzops") is not None:
        return None
    return (f"dzops is not importable by {sys.executable}: run the play with "
            "ansible_python_interpreter set to the Python dzops is installed in (the plays in playbooks/ "
            "use ansible_playbook_python), or install dzops into the execution environment")


def global_argv(params: dict[str, Any], *, check: bool, diff: bool, vault_file: str | None) -> list[str]:
    """dzops' global options from the module's parameters: always --json (the module reads data).

    >>> global_argv({"inventory": "/inv", "limit": "talo", "lab": None}, check=True, diff=False, vault_file=None)
    ['--inventory', '/inv', '--json', '--limit', 'talo', '--check']
    """
    argv = ["--inventory", str(params["inventory"]), "--json"]
    if params.get("limit"):
        argv += ["--limit", str(params["limit"])]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if params.get("lab"):
        argv += ["--lab", str(params["lab"])]
    if vault_file:
        argv += ["--vault-password-file", vault_file]
    return argv


def forks_argv(params: dict[str, Any]) -> list[str]:
    return ["--forks", str(params["forks"])] if params.get("forks") else []


@contextlib.contextmanager
def vault_password_path(params: dict[str, Any]):
    """The Vault password as dzops reads it (a file): the given file, or the given password in a
    0600 file of a private 0700 directory for the run only, removed after it."""
    if params.get("vault_password") is None:
        yield params.get("vault_password_file")
        return
    folder = tempfile.mkdtemp(prefix="dzops-module-")
    path = os.path.join(folder, "vault-password")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(params["vault_password"] + "\n")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_command(argv: list[str]) -> DzopsRun:
    """Run `dzops ARGV` with this module's Python, as the console script (its exit code, its egress).

    A child process and not this one: dzops loads inventories with ansible-core's controller code,
    which cannot share a process with the module's own bundled ansible.module_utils.
    """
    proc = subprocess.run([sys.executable, "-m", "dzops", *argv], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else None
    except ValueError:
        data = None
    return DzopsRun(argv, proc.returncode, data, proc.stderr.splitlines())


def command_available(name: str) -> bool:
    """Whether this dzops has the top-level command `name` (a command or a group of them)."""
    proc = subprocess.run([sys.executable, "-m", "dzops", name, "--help"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    return proc.returncode == 0


def device_row(host: str, status: str, changed: bool, **extra: Any) -> dict[str, Any]:
    """One device's result as every module returns it: host, status, changed, failed, then the rest.

    >>> device_row("r1", "unreachable", False)["failed"]
    True
    """
    return {"host": host, "status": status, "changed": bool(changed), "failed": status in FAILED_STATUSES,
            **extra}


# -- per job: the command's JSON -> the module's result -------------------------------------------------
# Each returns (result, failed); `result` holds `changed` and the per-device rows.

def backup_result(data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`dzops backup --json`: a device changed when its files differ from the repository's.

    >>> result, failed = backup_result({"repository": "/r", "commit": "abc", "previous": None, "check": False,
    ...     "devices": [{"host": "r1", "site": "hq", "status": "ok", "error": None, "files": ["running-config"],
    ...                  "changed": ["hq/r1/running-config"]},
    ...                 {"host": "r2", "site": "hq", "status": "unreachable", "error": "timed out", "files": [],
    ...                  "changed": []}]})
    >>> result["changed"], failed, [(d["host"], d["changed"], d["failed"]) for d in result["devices"]]
    (True, True, [('r1', True, False), ('r2', False, True)])
    """
    devices = [device_row(d["host"], d["status"], bool(d.get("changed")), site=d.get("site"), error=d.get("error"),
                          files=d.get("files", []), changed_files=d.get("changed", []))
               for d in data.get("devices", [])]
    result = {"changed": any(d["changed"] for d in devices), "devices": devices,
              "repository": data.get("repository"), "commit": data.get("commit"), "previous": data.get("previous")}
    return result, any(d["failed"] for d in devices)


def drift_result(data: dict[str, Any], fail_on_drift: bool) -> tuple[dict[str, Any], bool]:
    """`dzops drift --json`: a report changes no device; drift fails the job as the CLI's exit 6 does.

    >>> result, failed = drift_result({"drift": True, "counts": {"drifted": 1}, "notes": [], "commit": None,
    ...     "report": {"html": "/d.html", "text": "/d.txt"}, "devices": [
    ...     {"host": "r1", "site": "hq", "function": "routers", "platform": "frr", "status": "ok", "drifted": True,
    ...      "findings": [{"kind": "intended"}]}]}, fail_on_drift=True)
    >>> result["changed"], failed, result["drifted"]
    (False, True, ['r1'])
    """
    devices = [device_row(d["host"], d["status"], False, drifted=bool(d.get("drifted")), site=d.get("site"),
                          function=d.get("function"), platform=d.get("platform"), findings=d.get("findings", []))
               for d in data.get("devices", [])]
    drifted = [d["host"] for d in devices if d["drifted"]]
    result = {"changed": False, "devices": devices, "drift": bool(data.get("drift")), "drifted": drifted,
              "counts": data.get("counts", {}), "notes": data.get("notes", []), "report": data.get("report"),
              "commit": data.get("commit")}
    failed = any(d["failed"] for d in devices) or (fail_on_drift and bool(drifted)) or bool(data.get("mail_failed"))
    return result, failed


def remediate_result(data: dict[str, Any], check: bool) -> tuple[dict[str, Any], bool]:
    """`dzops drift --remediate --json`: a device changed when commands were (or, checking, would be) applied.

    >>> result, failed = remediate_result({"remediate": True, "check": True, "refused": ["sw1"], "devices": [
    ...     {"host": "r1", "site": "hq", "status": "ok", "changed": False, "rolled_back": False, "error": None,
    ...      "commands": ["no ip route 10.99.0.0/16 blackhole"], "checks": [], "not_checked": []}]}, check=True)
    >>> result["changed"], failed, result["refused"]
    (True, False, ['sw1'])
    """
    devices = []
    for d in data.get("devices", []):
        changed = bool(d.get("commands")) if check else bool(d.get("changed"))
        devices.append(device_row(d["host"], d["status"], changed, site=d.get("site"), error=d.get("error"),
                                  commands=d.get("commands", []), rolled_back=bool(d.get("rolled_back")),
                                  checks=d.get("checks", []), not_checked=d.get("not_checked", [])))
    result = {"changed": any(d["changed"] for d in devices), "devices": devices, "refused": data.get("refused", [])}
    return result, any(d["failed"] for d in devices)


def wan_result(data: list[dict[str, Any]], check: bool) -> tuple[dict[str, Any], bool]:
    """`dzops provision-wan --json`: per link, and per router (a hub's result over all its links).

    >>> link = lambda name, status, diff: {"link": name, "status": status, "changed": False, "verified": False,
    ...     "rolled_back": False, "error": None, "subnet": None, "checks": [], "failed_check": None,
    ...     "hosts": {"hq": {"host": "hq", "status": status, "changed": False, "diff": diff, "error": None},
    ...               name: {"host": name, "status": "ok", "changed": False, "diff": "", "error": None}}}
    >>> result, failed = wan_result([link("a", "ok", "+ x"), link("b", "failed", "")], check=True)
    >>> result["changed"], failed, [(d["host"], d["status"], d["changed"], d["links"]) for d in result["devices"]]
    (True, True, [('hq', 'failed', True, ['a', 'b']), ('a', 'ok', False, ['a']), ('b', 'ok', False, ['b'])])
    """
    links, per_host = [], {}
    for r in data:
        link_changed = bool(r.get("changed")) or (check and any(h.get("diff") for h in r.get("hosts", {}).values()))
        links.append({"link": r["link"], "status": r["status"], "changed": link_changed,
                      "failed": r["status"] in FAILED_STATUSES, "verified": bool(r.get("verified")),
                      "rolled_back": bool(r.get("rolled_back")), "subnet": r.get("subnet"), "error": r.get("error"),
                      "failed_check": r.get("failed_check"), "checks": r.get("checks", [])})
        for name, h in r.get("hosts", {}).items():
            changed = bool(h.get("changed")) or (check and bool(h.get("diff")))
            row = per_host.setdefault(name, {"host": name, "statuses": [], "changed": False, "links": [], "diff": ""})
            row["statuses"].append(h.get("status", "ok"))
            row["changed"] = row["changed"] or changed
            row["links"].append(r["link"])
            row["diff"] = row["diff"] or h.get("diff", "")
    devices = [device_row(row["host"], worst(row["statuses"]), row["changed"], links=row["links"], diff=row["diff"])
               for row in per_host.values()]
    result = {"changed": any(link["changed"] for link in links), "links": links, "devices": devices}
    return result, any(link["failed"] for link in links) or any(d["failed"] for d in devices)


def ap_result(data: list[dict[str, Any]], check: bool) -> tuple[dict[str, Any], bool]:
    """`dzops provision-ap --json`: one HostResult per access point.

    >>> result, failed = ap_result([{"host": "ap1", "status": "ok", "changed": False, "diff": "+ ssid=x",
    ...     "error": None, "data": {"ssids": [{"ssid": "x", "vlan": 10}], "switch_port": {"status": "ok"}}}], check=True)
    >>> result["changed"], failed, result["devices"][0]["ssids"]
    (True, False, [{'ssid': 'x', 'vlan': 10}])
    """
    devices = [device_row(r["host"], r["status"], bool(r.get("changed")) or (check and bool(r.get("diff"))),
                          error=r.get("error"), diff=r.get("diff", ""), ssids=r.get("data", {}).get("ssids", []),
                          switch_port=r.get("data", {}).get("switch_port", {}))
               for r in data]
    return {"changed": any(d["changed"] for d in devices), "devices": devices}, any(d["failed"] for d in devices)


def health_result(data: dict[str, Any], fail_on_findings: bool) -> tuple[dict[str, Any], bool]:
    """`dzops health --json`: every check's state; a finding fails the job as the CLI's exit 6 does.

    >>> result, failed = health_result({"status": "degraded", "check": False, "findings": [{"key": "link:a"}],
    ...     "results": [{"key": "link:a", "kind": "link", "site": "a", "status": "down", "message": "no reply"}]},
    ...     fail_on_findings=False)
    >>> result["changed"], failed, result["checks"][0]["failed"]
    (False, False, True)
    """
    checks = [{**r, "failed": r.get("status") != "up"} for r in data.get("results", [])]
    findings = data.get("findings", [])
    result = {"changed": False, "status": data.get("status"), "checks": checks, "findings": findings}
    return result, fail_on_findings and bool(findings)


def data_backup_result(data: Any) -> tuple[dict[str, Any], bool]:
    """`dzops data-backup run|verify --json`: the run's `hosts` (one result per server), or with
    --check the `servers` mapping each server to what it would back up (nothing ran: unchanged).

    >>> result, failed = data_backup_result({"action": "backup", "hosts": [
    ...     {"host": "srv1", "status": "changed", "changed": True, "error": None, "data": {}},
    ...     {"host": "srv2", "status": "unreachable", "changed": False, "error": "no route", "data": None}]})
    >>> result["changed"], failed, result["summary"]
    (True, True, {'action': 'backup'})
    >>> result, failed = data_backup_result({"check": True, "servers": {"srv1": ["path /srv/share"]}})
    >>> result["devices"], failed
    ([{'host': 'srv1', 'status': 'ok', 'changed': False, 'failed': False, 'plan': ['path /srv/share']}], False)
    """
    data = data or {}
    planned = data.get("servers") if isinstance(data, dict) else None
    if isinstance(planned, dict):
        devices = [device_row(host, "ok", False, plan=lines) for host, lines in planned.items()]
    else:
        rows = data if isinstance(data, list) else data.get("hosts", [])
        devices = [device_row(r.get("host", "?"), r.get("status", "ok"),
                              bool(r.get("changed")) or r.get("status") == "changed",
                              **{k: v for k, v in r.items() if k not in ("host", "status", "changed", "failed")})
                   for r in rows if isinstance(r, dict)]
    result = {"changed": any(d["changed"] for d in devices), "devices": devices}
    if isinstance(data, dict):
        result["summary"] = {k: v for k, v in data.items() if k not in ("servers", "hosts")}
    return result, any(d["failed"] for d in devices)


def several(data: Any) -> bool:
    """Whether the JSON is dzops' summary of several Dzongkhags (`-i` naming a folder of inventories).

    >>> several({"punakha": {"inventory": "/i/punakha", "dzongkhag": "Punakha", "exit_code": 0, "output": {}}})
    True
    >>> several({"devices": []}), several([])
    (False, False)
    """
    return isinstance(data, dict) and bool(data) and all(
        isinstance(entry, dict) and {"inventory", "exit_code", "output"} <= set(entry) for entry in data.values())


def job_result(data: Any, normalise: Any, shape: Any) -> tuple[dict[str, Any], bool]:
    """The module result of one Dzongkhag's JSON, or of several merged: every row (device, link, check,
    finding) names its Dzongkhag, `dzongkhags` holds each one's exit code and the rest of its result.

    A Dzongkhag whose output is missing or not the command's shape fails the job: never a quiet success.

    >>> one = {"devices": [{"host": "r1", "status": "ok", "changed": ["x"], "files": []}]}
    >>> result, failed = job_result({"a": {"inventory": "/a", "dzongkhag": "A", "exit_code": 0, "output": one},
    ...                              "b": {"inventory": "/b", "dzongkhag": "B", "exit_code": 3, "output": None}},
    ...                             backup_result, dict)
    >>> failed, result["changed"], [(d["dzongkhag"], d["host"]) for d in result["devices"]]
    (True, True, [('a', 'r1')])
    >>> [(label, d["exit_code"], d["failed"]) for label, d in result["dzongkhags"].items()]
    [('a', 0, False), ('b', 3, True)]
    """
    if not several(data):
        return normalise(data) if isinstance(data, shape) else ({"changed": False}, True)
    merged: dict[str, Any] = {"changed": False, "devices": [], "dzongkhags": {}}
    failed = False
    for label, entry in data.items():
        output = entry["output"]
        result, bad = normalise(output) if isinstance(output, shape) else ({"changed": False}, True)
        for key in ("devices", "links", "checks", "findings"):
            if key in result:
                merged.setdefault(key, []).extend({**row, "dzongkhag": label} for row in result.pop(key))
        merged["changed"] = merged["changed"] or bool(result.pop("changed", False))
        merged["dzongkhags"][label] = {"inventory": entry["inventory"], "dzongkhag": entry.get("dzongkhag"),
                                       "exit_code": entry["exit_code"], "failed": bad, **result}
        failed = failed or bad
    if any("drifted" in d for d in merged["devices"]):
        merged["drifted"] = [d["host"] for d in merged["devices"] if d.get("drifted")]
    return merged, failed


def worst(statuses: list[str]) -> str:
    """The status that speaks for a device over several results.

    >>> worst(["ok", "changed", "unreachable"]), worst(["ok", "ok"]), worst([])
    ('unreachable', 'ok', 'ok')
    """
    order = ("failed", "rolled_back", "unreachable", "changed", "skipped", "ok")
    return min(statuses, key=lambda s: order.index(s) if s in order else 0, default="ok")


def diff_entries(devices: list[dict[str, Any]], key: str = "diff") -> list[dict[str, str]]:
    """Ansible's diff output: one `prepared` block per device that has one.

    >>> diff_entries([{"host": "r1", "diff": "+ a"}, {"host": "r2", "diff": ""}])
    [{'prepared': '--- r1\\n+ a'}]
    """
    entries = []
    for d in devices:
        text = d.get(key)
        if isinstance(text, list):
            text = "\n".join(text)
        if text:
            entries.append({"prepared": f"--- {d['host']}\n{text}"})
    return entries


def finish(module: Any, run: DzopsRun | None, result: dict[str, Any], failed: bool) -> None:
    """Exit the module: the result (scrubbed by dzops' egress filter), failed when a device failed
    or when the command itself ended with an error and gave no data."""
    from dzops.scrub import egress, egress_data

    if run is not None:
        result = {**result, "rc": run.code, "messages": run.messages, "command": ["dzops", *_shown(run.argv)]}
        if run.data is None and run.code != 0:
            failed = True
            result.setdefault("msg", f"dzops ended with exit code {run.code}: {run.error()}")
    result = egress_data(result)
    if failed:
        result.setdefault("msg", summary(result))
        module.fail_json(**{k: v for k, v in result.items() if k != "msg"}, msg=egress(result["msg"]))
    # Said outright: Ansible takes a result with a non-zero `rc` and no `failed` for a failure, and dzops
    # exits non-zero for findings (drift, health, a check that would change) a task may accept.
    module.exit_json(**result, failed=False)


def summary(result: dict[str, Any]) -> str:
    """One line for people: which devices failed (and which Dzongkhags gave no results at all).

    >>> summary({"devices": [{"host": "r1", "failed": True, "status": "unreachable", "dzongkhag": "a"}],
    ...          "dzongkhags": {"a": {"failed": True, "exit_code": 5}, "b": {"failed": True, "exit_code": 3}}})
    '1 device(s) failed: r1 (unreachable); no results from Dzongkhag(s): b (exit 3)'
    """
    parts = []
    bad = [f"{d['host']} ({d['status']})" for d in result.get("devices", []) if d.get("failed")]
    bad += [f"{link['link']} ({link['status']})" for link in result.get("links", []) if link.get("failed")]
    if bad:
        parts.append(f"{len(bad)} device(s) failed: {', '.join(bad)}")
    reported = {row.get("dzongkhag") for key in ("devices", "links", "checks") for row in result.get(key, [])}
    silent = [f"{label} (exit {d['exit_code']})" for label, d in result.get("dzongkhags", {}).items()
              if d.get("failed") and label not in reported]
    if silent:
        parts.append(f"no results from Dzongkhag(s): {', '.join(silent)}")
    if not parts and result.get("drifted"):
        parts.append(f"drift on {len(result['drifted'])} device(s): {', '.join(result['drifted'])}")
    if not parts and result.get("findings"):
        parts.append(f"{len(result['findings'])} health finding(s): {result.get('status')}")
    return "; ".join(parts) or "dzops job failed"


def _shown(argv: list[str]) -> list[str]:
    """The command line as the result shows it (the private vault file's path replaced).

    >>> _shown(["-i", "/inv", "--vault-password-file", "/tmp/x/vault-password", "backup"])
    ['-i', '/inv', '--vault-password-file', 'FILE', 'backup']
    """
    shown = list(argv)
    for i, arg in enumerate(shown[:-1]):
        if arg == "--vault-password-file":
            shown[i + 1] = "FILE"
    return shown


def run_job(module: Any, command: list[str], *, check: bool, diff: bool) -> DzopsRun:
    """Run a job's command with the module's common options; fails the module when dzops is missing."""
    problem = missing_dzops_message()
    if problem:
        module.fail_json(msg=problem)
    with vault_password_path(module.params) as vault_file:
        argv = global_argv(module.params, check=check, diff=diff, vault_file=vault_file) + command
        return run_command(argv)
