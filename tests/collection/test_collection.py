"""The collection dzops.dzongkhag as Galaxy, AWX, ansible-lint and Ansible itself see it (no lab).

What the lab test cannot show cheaply: the tarball `ansible-galaxy collection build` makes, the
install AWX does from collections/requirements.yml, ansible-lint's production profile, the
documentation ansible-test's validate-modules reads, and how a module fails (missing inventory,
wrong Vault password, no data-backup command) without a fake success or a leaked secret.
"""

from __future__ import annotations

import ast
import doctest
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
import yaml

from dzops.cli.exit_codes import ExitCode, exit_code_for_results
from tests.collection.common import BIN, COLLECTION, JOB_PLAYBOOKS, MODULES, REPO, job_support, run, runner

# The project has not chosen a licence, and the collection is not published from a public repository:
# Galaxy's two publication keys stay unset until it does (see the collection's README).
LINT_SKIPS = "galaxy[no-license],galaxy[no-repository]"


def _sample_copy(tmp_path: Path, name: str = "inventory") -> Path:
    """The shipped sample inventory with its report and backup folders in tmp_path."""
    inventory = tmp_path / name
    shutil.copytree(REPO / "inventory", inventory)
    operations = inventory / "group_vars/all/operations.yml"
    suffix = "" if name == "inventory" else f"-{name}"
    lines = [f"backup_repository: {tmp_path / f'config-backups{suffix}'}" if line.startswith("backup_repository:")
             else f"report_dir: {tmp_path / f'reports{suffix}'}" if line.startswith("report_dir:") else line
             for line in operations.read_text().splitlines()]
    operations.write_text("\n".join(lines) + "\n")
    return inventory


# -- Galaxy and AWX ------------------------------------------------------------------------------------

def test_galaxy_build_carries_every_module_and_its_checksums(tmp_path: Path) -> None:
    proc = run([str(BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    tarball = tmp_path / f"dzops-dzongkhag-{galaxy['version']}.tar.gz"
    with tarfile.open(tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        files = json.load(tar.extractfile("FILES.json"))
        listed = {entry["name"]: entry for entry in files["files"]}
        for name, entry in listed.items():
            if entry["ftype"] == "file":
                assert hashlib.sha256(tar.extractfile(name).read()).hexdigest() == entry["chksum_sha256"], name
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("dzops", "dzongkhag", galaxy["version"])
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in listed, module
    assert {"plugins/module_utils/dzops_job.py", "plugins/doc_fragments/job.py", "meta/runtime.yml"} <= set(listed)
    assert not [name for name in listed if "__pycache__" in name or name.endswith(".tar.gz")]


def test_meta_runtime_requires_the_ansible_core_dzops_pins() -> None:
    from ansible.module_utils.compat.version import LooseVersion

    runtime = yaml.safe_load((COLLECTION / "meta/runtime.yml").read_text())
    import ansible.release

    low, high = (part.strip() for part in runtime["requires_ansible"].split(","))
    assert low.startswith(">=") and high.startswith("<")
    assert LooseVersion(low[2:]) <= LooseVersion(ansible.release.__version__) < LooseVersion(high[1:])
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"ansible-core>=2.19,<2.20"' in pyproject and low == ">=2.19.0" and high == "<2.20.0"


def test_awx_installs_the_collection_from_the_projects_requirements(tmp_path: Path) -> None:
    """AWX runs `ansible-galaxy collection install -r collections/requirements.yml` in the project."""
    target = tmp_path / "collections"
    install = run([str(BIN / "ansible-galaxy"), "collection", "install", "-r", "collections/requirements.yml",
                   "-p", str(target)], ANSIBLE_COLLECTIONS_PATH=str(target))
    assert install.returncode == 0, install.stderr
    listing = run([str(BIN / "ansible-doc"), "-t", "module", "-l", "dzops.dzongkhag", "-j"],
                  ANSIBLE_COLLECTIONS_PATH=str(target))
    assert listing.returncode == 0, listing.stderr
    assert sorted(json.loads(listing.stdout)) == sorted(f"dzops.dzongkhag.{m}" for m in MODULES)
    installed = target / "ansible_collections/dzops/dzongkhag/plugins/modules"
    assert sorted(p.stem for p in installed.glob("*.py")) == sorted(MODULES)


def test_ansible_lint_production_profile_passes_over_the_collection_and_job_plays() -> None:
    proc = run([str(BIN / "ansible-lint"), "--offline", "--nocolor", "--profile", "production", "-x", LINT_SKIPS,
                str(COLLECTION.relative_to(REPO)), *(str(p.relative_to(REPO)) for p in JOB_PLAYBOOKS)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


# -- what ansible-test's validate-modules reads --------------------------------------------------------

def _spec_of(module: str) -> dict[str, dict]:
    """A module's argument_spec, read from its source: the common options plus its own `.update(...)`."""
    spec = {name: dict(value) for name, value in job_support().COMMON_ARGUMENT_SPEC.items()}
    tree = ast.parse((COLLECTION / "plugins/modules" / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "update":
            for keyword in node.keywords:
                spec[keyword.arg] = {k.arg: ast.literal_eval(k.value) for k in keyword.value.keywords}
    return spec


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    proc = run([str(BIN / "ansible-doc"), "-t", "module", "-j", *(f"dzops.dzongkhag.{m}" for m in MODULES)])
    assert proc.returncode == 0, proc.stderr
    return {name.rsplit(".", 1)[1]: entry for name, entry in json.loads(proc.stdout).items()}


@pytest.mark.parametrize("module", MODULES)
def test_documented_options_are_the_argument_spec(module: str, docs: dict[str, dict]) -> None:
    documented = docs[module]["doc"]["options"]
    spec = _spec_of(module)
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        assert documented[name].get("type", "str") == option.get("type", "str"), name
        assert documented[name].get("default") == option.get("default"), name
        assert bool(documented[name].get("required")) == bool(option.get("required")), name
        assert documented[name].get("choices") == option.get("choices"), name
    assert spec["vault_password"]["no_log"] is True


@pytest.mark.parametrize("module", MODULES)
def test_examples_use_the_module_and_return_is_documented(module: str, docs: dict[str, dict]) -> None:
    examples = yaml.safe_load(docs[module]["examples"])
    assert examples and all(f"dzops.dzongkhag.{module}" in task for task in examples)
    returned = docs[module]["return"]
    assert {"rc", "messages", "command"} <= set(returned)
    assert docs[module]["doc"]["attributes"]["check_mode"]["support"] in ("full", "partial")


def test_every_job_play_uses_its_module_once_per_inventory_on_the_controller() -> None:
    for module, path in zip(MODULES, JOB_PLAYBOOKS, strict=True):
        (play,) = yaml.safe_load(path.read_text())
        assert play["hosts"] == "localhost" and play["connection"] == "local", path.name
        assert play["vars"]["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
        (task,) = play["tasks"]
        assert task[f"dzops.dzongkhag.{module}"]["inventory"] == "{{ item }}", path.name
        assert "dzops_inventories" in task["loop"], path.name


# -- the module_utils' own logic -----------------------------------------------------------------------

def test_module_utils_doctests_pass() -> None:
    result = doctest.testmod(job_support(), optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0


@pytest.mark.parametrize("status", ["ok", "changed", "failed", "rolled_back", "unreachable", "skipped"])
def test_a_device_fails_the_task_exactly_when_it_fails_the_command(status: str) -> None:
    assert job_support().device_row("r1", status, False)["failed"] is (exit_code_for_results([status]) != ExitCode.OK)


@pytest.mark.parametrize(("check", "link_changed", "diff", "changed"), [
    (False, False, "", False),
    (False, True, "", True),
    (True, False, "+ interface eth1", True),  # check mode: a diff is what would change
    (False, False, "+ interface eth1", False),  # applied runs say changed themselves
])
def test_wan_changed_follows_the_mode(check: bool, link_changed: bool, diff: str, changed: bool) -> None:
    data = [{"link": "talo", "status": "ok", "changed": link_changed,
             "hosts": {"hq": {"host": "hq", "status": "ok", "changed": link_changed, "diff": diff}}}]
    result, failed = job_support().wan_result(data, check)
    assert (result["changed"], result["devices"][0]["changed"], failed) == (changed, changed, False)


# -- failures are results, never fake successes, and never leak --------------------------------------

def test_a_missing_inventory_fails_the_play_with_dzops_own_message(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dzongkhag"
    play = runner(tmp_path, playbook="playbooks/job_health.yml", extravars={"dzops_inventories": [str(missing)]})
    assert play.rc == 2, play.stdout
    result = play.only
    assert result["failed"] is True and result["rc"] == ExitCode.INVALID_INVENTORY
    assert f"no hosts.yml in inventory directory {missing}" in result["msg"]
    assert result["command"] == ["dzops", "--inventory", str(missing), "--json", "health"]


def test_a_vault_password_given_to_a_module_is_never_shown(tmp_path: Path) -> None:
    inventory = _sample_copy(tmp_path)
    password = "Wr0ng-vault-pass-H20"
    private_files_before = set(Path(tempfile.gettempdir()).glob("dzops-module-*"))
    adhoc = runner(tmp_path, module="backup", args={"inventory": str(inventory), "vault_password": password},
                   cmdline="-vvv")
    result = adhoc.only
    assert result["failed"] is True and result["rc"] == ExitCode.INVALID_INVENTORY
    assert "wrong vault password" in result["msg"]
    assert result["command"][-3:] == ["--vault-password-file", "FILE", "backup"]  # a file, and not its path
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in adhoc.stdout  # -vvv shows the arguments, masked
    assert password not in adhoc.stdout
    assert set(Path(tempfile.gettempdir()).glob("dzops-module-*")) == private_files_before  # removed after the run
    assert not (tmp_path / "config-backups").exists()


def test_a_drift_report_is_skipped_in_check_mode_and_writes_nothing(tmp_path: Path) -> None:
    inventory = _sample_copy(tmp_path)
    adhoc = runner(tmp_path, module="drift", args={"inventory": str(inventory)}, cmdline="--check")
    assert adhoc.rc == 0, adhoc.stdout
    result = adhoc.only
    assert result["skipped"] is True and not result.get("changed")
    assert not (tmp_path / "reports").exists() and not (tmp_path / "config-backups").exists()


def test_data_backup_fails_cleanly_until_dzops_has_the_command(tmp_path: Path) -> None:
    has_command = subprocess.run([sys.executable, "-m", "dzops", "data-backup", "--help"],
                                 capture_output=True, timeout=120).returncode == 0
    result = runner(tmp_path, module="data_backup", args={"inventory": str(tmp_path / "no-such-dzongkhag")}).only
    assert result["failed"] is True and result.get("changed") is False and "devices" not in result
    if has_command:  # connected (the lead merges it): dzops itself runs, and refuses the missing inventory
        assert result["rc"] == ExitCode.INVALID_INVENTORY, result
    else:
        assert "no data-backup support yet" in result["msg"] and "nothing was backed up" in result["msg"]
        assert "rc" not in result  # no dzops job ran


def test_data_backup_in_check_mode_names_each_server_and_what_it_would_back_up(tmp_path: Path) -> None:
    inventory = _sample_copy(tmp_path)
    result = runner(tmp_path, module="data_backup", args={"inventory": str(inventory)}, cmdline="--check").only
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    assert [d["host"] for d in result["devices"]] == ["punakha-hq-srv1"]  # the sample's one server with data_backups
    assert any(line.startswith("database postgresql:dzongkhag") for line in result["devices"][0]["plan"])


def _loopback_copy(tmp_path: Path, unreachable: str, name: str = "inventory") -> Path:
    """The sample on loopback addresses, `unreachable` on a port nothing listens on: no lab needed."""
    inventory = _sample_copy(tmp_path, name)
    for path in [*inventory.glob("host_vars/*.yml"), inventory / "group_vars/all/dzongkhag.yml"]:
        path.write_text(path.read_text().replace("10.30.0.", "127.0.0."))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (inventory / "host_vars" / f"{unreachable}.yml").open("a") as fh:
        fh.write(f"ansible_port: {port}\n")
    return inventory


def test_an_unreachable_device_fails_the_check_play_as_it_fails_the_command(tmp_path: Path) -> None:
    switch = "gewog-talo-sw1"
    inventory = _loopback_copy(tmp_path, switch)
    cli = subprocess.run([sys.executable, "-m", "dzops", "-i", str(inventory), "--json", "--check", "--limit", switch,
                          "backup"], capture_output=True, text=True, timeout=300)
    play = runner(tmp_path, playbook="playbooks/job_backup.yml", cmdline="--check",
                  extravars={"dzops_inventories": [str(inventory)], "dzops_limit": switch})
    result = play.only
    assert cli.returncode == ExitCode.UNREACHABLE == result["rc"], cli.stderr
    assert play.rc == 2 and result["failed"] is True and result["changed"] is False
    assert result["msg"] == f"1 device(s) failed: {switch} (unreachable)"
    [cli_row] = json.loads(cli.stdout)["devices"]
    assert [(d["host"], d["status"], d["failed"], d["error"]) for d in result["devices"]] == [
        (switch, "unreachable", True, cli_row["error"])]
    assert result["command"] == ["dzops", "--inventory", str(inventory), "--json", "--limit", switch, "--check",
                                 "backup"]
    assert not (tmp_path / "config-backups").exists()  # check mode wrote nothing


def test_a_folder_of_dzongkhags_gives_each_devices_under_its_name(tmp_path: Path) -> None:
    """`inventory` naming a folder of Dzongkhag inventories: dzops runs each; no Dzongkhag's failure is lost."""
    switch = "gewog-talo-sw1"
    folder = tmp_path / "dzongkhags"
    for name in ("punakha", "wangdue"):
        _loopback_copy(folder, switch, name)
    (folder / "wangdue" / "hosts.yml").write_text("not: [an inventory\n")  # one Dzongkhag that cannot load
    result = runner(tmp_path, module="backup", args={"inventory": str(folder), "limit": switch},
                    cmdline="--check").only
    assert result["failed"] is True and result["rc"] == ExitCode.INVALID_INVENTORY  # the worst of the two
    assert [(d["dzongkhag"], d["host"], d["status"]) for d in result["devices"]] == [
        ("punakha", switch, "unreachable")]
    assert {label: (d["exit_code"], d["failed"]) for label, d in result["dzongkhags"].items()} == {
        "punakha": (ExitCode.UNREACHABLE, True), "wangdue": (ExitCode.INVALID_INVENTORY, True)}
    assert result["msg"] == f"1 device(s) failed: {switch} (unreachable); no results from Dzongkhag(s): wangdue (exit 3)"


@pytest.mark.parametrize("fail_on_findings", [True, False])
def test_a_health_finding_fails_the_task_only_when_asked(fail_on_findings: bool, tmp_path: Path) -> None:
    """dzops exits 6 on a finding; the task follows fail_on_findings, not the exit code alone."""
    switch = "gewog-talo-sw1"
    inventory = _loopback_copy(tmp_path, switch)
    play = runner(tmp_path, playbook="playbooks/job_health.yml", cmdline="--check",
                  extravars={"dzops_inventories": [str(inventory)], "dzops_limit": switch,
                             "dzops_fail_on_findings": fail_on_findings})
    result = play.only
    assert result["rc"] == ExitCode.HEALTH_DEGRADED and result["status"] == "down"
    assert [(c["key"], c["status"], c["failed"]) for c in result["checks"]] == [(f"device:{switch}", "down", True)]
    assert [f["key"] for f in result["findings"]] == [f"device:{switch}"]
    assert result["failed"] is fail_on_findings and play.rc == (2 if fail_on_findings else 0)
    assert result["changed"] is False
    if fail_on_findings:
        assert result["msg"] == "1 health finding(s): down"


@pytest.mark.parametrize(("module", "args", "message"), [
    ("provision_wan", {}, "exactly one of links, site or all=true is required (given: none)"),
    ("provision_ap", {"access_points": [], "site": None, "all": False}, "(given: none)"),
    ("provision_wan", {"site": "talo", "all": True}, "(given: site, all)"),
    ("drift", {"remediate": True, "email": True}, "email and remediate do not go together"),
])
def test_a_task_that_names_no_scope_or_two_is_refused_before_dzops_runs(module: str, args: dict, message: str,
                                                                        tmp_path: Path) -> None:
    result = runner(tmp_path, module=module, args={"inventory": str(tmp_path / "never-read"), **args}).only
    assert result["failed"] is True and message in result["msg"]
    assert "rc" not in result  # dzops never ran
