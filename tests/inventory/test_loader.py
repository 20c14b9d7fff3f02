"""Unit tests of `dzops.inventory.loader`: secret names, locations, vault password precedence, resolution."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import chdir
from pathlib import Path

import pytest
import yaml

from dzops.inventory import loader
from dzops.inventory.loader import is_secret_key, is_vaulted, locate
from dzops.inventory.vault_password import DEMO_VAULT_PASSWORD_FILE, vault_password_file
from dzops.platforms import FUNCTION_GROUPS

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "inventory"
SAMPLE_PASSWORD = SAMPLE / "DEMO-ONLY-vault-password.txt"
MINIMAL = REPO / "tests" / "fixtures" / "inventory" / "minimal"
PASSWORD = REPO / "tests" / "fixtures" / "inventory" / "vault-password.txt"
VAULT = "group_vars/all/vault.yml"


def forget_ansible_process_state() -> None:
    """What a fresh `dzops` process starts without (ansible-core keeps these per process)."""
    from ansible.parsing.vault import VaultSecretsContext
    from ansible.plugins.vars import host_group_vars

    VaultSecretsContext._current = None
    for cache in (host_group_vars.CANONICAL_PATHS, host_group_vars.FOUND, host_group_vars.NAK):
        cache.clear()


@pytest.fixture(autouse=True)
def fresh_process() -> Iterator[None]:
    forget_ansible_process_state()
    yield
    forget_ansible_process_state()


# The venv's own ansible-vault, whatever the caller's PATH holds.
ANSIBLE_VAULT = str(Path(sys.executable).parent / "ansible-vault")


def decrypt(path: Path, password_file: Path) -> dict[str, str]:
    """The vault's values, read with the ansible-vault CLI (away from the repository's ansible.cfg)."""
    proc = subprocess.run(
        [ANSIBLE_VAULT, "view", "--vault-password-file", str(password_file), str(path)],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


# --------------------------------------------------------------------------------------------------
# is_secret_key

SECRET_NAMES = {
    "ansible_password": True,
    "ansible_become_password": True,
    "ansible_ssh_pass": True,  # ansible's own connection variables end in _pass
    "ansible_become_pass": True,
    "psk": True,
    "PSK": True,
    "radius_secret": True,
    "snmp_community": True,
    "ssh_private_key": True,
    "password_hash": True,
    "luks_passphrase": True,
    "ssh_keys": False,  # public keys
    "vlan": False,
    "passwd_policy": False,
    "ansible_user": False,
    "secret_santa_list": False,
}


@pytest.mark.parametrize(("key", "secret"), SECRET_NAMES.items(), ids=list(SECRET_NAMES))
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


@pytest.mark.parametrize("key", [None, 42, ("password",)], ids=["none", "int", "tuple"])
def test_is_secret_key_of_a_non_string_is_false(key: object) -> None:
    assert is_secret_key(key) is False


# --------------------------------------------------------------------------------------------------
# locate


@pytest.fixture(scope="module")
def minimal_loaded() -> loader.Loaded:
    forget_ansible_process_state()
    return loader.load_ansible(MINIMAL, PASSWORD)


def _vars(loaded: loader.Loaded, host: str = "gewog-lobesa-rtr1") -> dict:
    return loaded.hosts[host].vars


LOCATE_CASES = {
    # id: (host, variable, loc, file suffix, line)
    "list-item-key": ("tst-hq-rtr1", "wan_links", (0, "bandwidth_mbps"), "group_vars/all/links.yml", 8),
    "flow-mapping": ("tst-hq-rtr1", "wan_links", (0, "b"), "group_vars/all/links.yml", 5),
    "deeper-than-the-yaml": ("tst-hq-rtr1", "wan_links", (0, "b", "vlan"), "group_vars/all/links.yml", 5),
    "unknown-key-stops": ("tst-hq-rtr1", "sites", ("lobesa", "colour"), "group_vars/all/dzongkhag.yml", 18),
    "index-past-the-end": ("tst-hq-rtr1", "lan_links", (7, "a"), "group_vars/all/links.yml", 12),
    "host-var": (
        "gewog-lobesa-rtr1",
        "interfaces",
        ("eth1", "address"),
        "host_vars/gewog-lobesa-rtr1.yml",
        8,
    ),
    "group-var": ("gewog-lobesa-sw1", "platform", (), "group_vars/switches.yml", 2),
    "scalar-origin": ("gewog-lobesa-ap1", "ansible_host", (), "host_vars/gewog-lobesa-ap1.yml", 2),
}


@pytest.mark.parametrize("case", LOCATE_CASES.values(), ids=list(LOCATE_CASES))
def test_locate(case: tuple, minimal_loaded: loader.Loaded) -> None:
    host, var, loc, suffix, line = case
    file, found_line = locate(_vars(minimal_loaded, host)[var], loc)
    assert file is not None and Path(file).as_posix().endswith(suffix), file
    assert found_line == line


def test_locate_of_a_value_without_origin() -> None:
    assert locate({"a": [1, 2]}, ("a", 0)) == (None, None)


# --------------------------------------------------------------------------------------------------
# vault_password_file precedence: option > DZOPS_VAULT_PASSWORD_FILE > ANSIBLE_VAULT_PASSWORD_FILE > demo

PRECEDENCE = {
    # id: (option, DZOPS_..., ANSIBLE_..., demo file present, expected)
    "option-wins": ("opt", "dz", "an", True, "opt"),
    "dzops-env": (None, "dz", "an", True, "dz"),
    "ansible-env": (None, None, "an", True, "an"),
    "demo-file": (None, None, None, True, "demo"),
    "nothing": (None, None, None, False, None),
    "empty-env-is-unset": (None, "", "", True, "demo"),
}


@pytest.mark.parametrize("case", PRECEDENCE.values(), ids=list(PRECEDENCE))
def test_vault_password_file_precedence(case: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    option, dz_env, an_env, demo, expected = case
    files = {name: tmp_path / f"{name}.txt" for name in ("opt", "dz", "an")}
    files["demo"] = tmp_path / "inventory" / DEMO_VAULT_PASSWORD_FILE
    (tmp_path / "inventory").mkdir()
    if demo:
        files["demo"].write_text("demo\n")
    for var, value in (("DZOPS_VAULT_PASSWORD_FILE", dz_env), ("ANSIBLE_VAULT_PASSWORD_FILE", an_env)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, str(files[value]) if value else "")
    got = vault_password_file(tmp_path / "inventory", files["opt"] if option else None)
    assert got == (files[expected] if expected else None)


def test_demo_password_file_is_found_next_to_a_hosts_file_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DZOPS_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    assert vault_password_file(SAMPLE / "hosts.yml", None) == SAMPLE_PASSWORD


# --------------------------------------------------------------------------------------------------
# Resolution of {{ vault_x }} and the sample's structure


def test_vault_references_resolve_to_the_vault_values() -> None:
    vault = decrypt(MINIMAL / VAULT, PASSWORD)
    inventory, problems, loaded = loader.load(MINIMAL, PASSWORD)
    assert problems == []
    assert inventory is not None
    for host in ("tst-hq-rtr1", "gewog-lobesa-rtr1", "gewog-lobesa-sw1", "gewog-lobesa-ap1"):
        assert inventory.devices[host].password.get_secret_value() == vault["vault_network_password"]
    assert inventory.devices["tst-hq-srv1"].password.get_secret_value() == vault["vault_server_password"]
    assert inventory.ssid_profiles["staff"].psk.get_secret_value() == vault["vault_ssid_staff_psk"]
    assert inventory.mail is not None and inventory.mail.password.get_secret_value() == vault["vault_smtp_password"]
    # and the raw values are still the references, so nothing decrypted is kept in the raw view
    assert loaded.hosts["tst-hq-srv1"].vars["ansible_password"] == "{{ vault_server_password }}"


def test_resolved_vault_values_are_known_to_come_from_vault(minimal_loaded: loader.Loaded) -> None:
    hv = _vars(minimal_loaded, "tst-hq-rtr1")
    resolved = loader.Resolver().resolve(hv["ansible_password"], hv)
    assert is_vaulted(resolved)
    assert not is_vaulted(loader.Resolver().resolve(hv["ansible_user"], hv))


def test_resolver_templates_a_shared_value_once(minimal_loaded: loader.Loaded) -> None:
    resolver = loader.Resolver()
    first, second = (_vars(minimal_loaded, h) for h in ("tst-hq-rtr1", "gewog-lobesa-rtr1"))
    raw = first["ansible_password"]
    assert raw is second["ansible_password"]  # group_vars/routers.yml: one object for both routers
    assert resolver.resolve(raw, first) is resolver.resolve(second["ansible_password"], second)


def test_every_sample_host_has_exactly_one_site_and_function() -> None:
    inventory, problems, loaded = loader.load(SAMPLE, SAMPLE_PASSWORD)
    assert problems == []
    assert inventory is not None and len(loaded.hosts) == len(inventory.devices) == 37
    for name, raw in loaded.hosts.items():
        sites = [g for g in raw.groups if g.startswith(loader.SITE_GROUP_PREFIX)]
        functions = [g for g in raw.groups if g in FUNCTION_GROUPS]
        assert len(sites) == 1 and len(functions) == 1, (name, raw.groups)
        device = inventory.devices[name]
        assert (device.site, device.function) == (sites[0].removeprefix("site_"), functions[0])
        assert device.site in inventory.sites


# --------------------------------------------------------------------------------------------------
# One process, several inventories (the lab builder, a scheduler, tests): no state may leak between loads.


def test_two_inventories_with_different_vault_passwords_in_one_process(tmp_path: Path) -> None:
    """The second inventory has an inline `!vault` value, which ansible decrypts with process-wide secrets."""
    root = tmp_path / "inventory"
    shutil.copytree(MINIMAL, root)
    proc = subprocess.run(
        [
            ANSIBLE_VAULT,
            "encrypt_string",
            "--vault-password-file",
            str(PASSWORD),
            "--name",
            "ansible_password",
            "Inline-Secret-4799",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    servers = root / "group_vars" / "servers.yml"
    servers.write_text("---\nplatform: debian\n" + proc.stdout)
    sample, sample_problems, _ = loader.load(SAMPLE, SAMPLE_PASSWORD)
    inline, inline_problems, _ = loader.load(root, PASSWORD)
    assert sample_problems == [] and sample is not None
    assert [str(p) for p in inline_problems] == []
    assert inline is not None
    assert inline.devices["tst-hq-srv1"].password.get_secret_value() == "Inline-Secret-4799"


def test_the_same_relative_path_in_two_directories_in_one_process(tmp_path: Path) -> None:
    for name in ("one", "two"):
        shutil.copytree(MINIMAL, tmp_path / name / "inventory")
    hosts = tmp_path / "two" / "inventory" / "host_vars" / "tst-hq-rtr1.yml"
    hosts.write_text(hosts.read_text().replace("ansible_host: 10.40.0.11", "ansible_host: 10.40.0.12"))
    addresses = []
    for name in ("one", "two"):
        with chdir(tmp_path / name):
            loaded = loader.load_ansible(Path("inventory"), PASSWORD)
        addresses.append(str(loaded.hosts["tst-hq-rtr1"].vars["ansible_host"]))
    assert addresses == ["10.40.0.11", "10.40.0.12"]


def test_load_inventory_raises_with_every_problem(tmp_path: Path) -> None:
    from dzops.exceptions import InventoryError

    root = tmp_path / "inventory"
    shutil.copytree(MINIMAL, root)
    (root / "host_vars" / "gewog-ghost-rtr1.yml").write_text("---\nansible_host: 10.40.0.99\n")
    (root / "group_vars" / "firewalls.yml").write_text("---\nplatform: ios\n")
    with pytest.raises(InventoryError) as caught:
        loader.load_inventory(root, PASSWORD)
    assert sorted(Path(p.file).name for p in caught.value.problems) == [
        "firewalls.yml",
        "gewog-ghost-rtr1.yml",
    ]
    assert os.path.basename(str(caught.value).splitlines()[0]).startswith("gewog-ghost-rtr1.yml")
