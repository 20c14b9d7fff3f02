"""`dzops inventory check|show` against broken inventories, through the real console-script entry point.

Every broken case is the valid `tests/fixtures/inventory/minimal/` inventory with one mistake an
officer could make, applied by a small patch in `CASES`. Each case is laid out as
`<tmp>/<case>/inventory/` and dzops runs in `<tmp>/<case>` with `-i inventory`, as an officer runs it
inside an inventory repository, so the expected file names are exact relative paths.

The CLI runs in-process (`dzops.cli.app.main`, stdout and stderr captured separately by Click's
`CliRunner.isolation`), so the exception-to-exit-code mapping of `main` is exercised too.
"""

# ruff: noqa: E501  (the CASES table reads best one case per line or two)
from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import chdir
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dzops.cli.app import main
from dzops.cli.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "inventory"
SAMPLE_PASSWORD = SAMPLE / "DEMO-ONLY-vault-password.txt"
FIXTURES = REPO / "tests" / "fixtures" / "inventory"
MINIMAL = FIXTURES / "minimal"
PASSWORD = FIXTURES / "vault-password.txt"
VAULT = "group_vars/all/vault.yml"

# Plain-text secrets some cases write outside Vault: they must not be echoed back either.
PLAIN_SECRETS = ("Plain-Srv-Pass-9071", "Plain-Text-Psk-9072")
TOO_SHORT_PSK = "Short07"  # 7 characters
TOO_LONG_PSK = "L" * 60 + "9073"  # 64 characters
VALID_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4/Llt0iyBP77jez5xKq9aSSWUlWE/AvkKjKr2nJ karma@testkha"

Patch = Callable[[Path], None]


# --------------------------------------------------------------------------------------------------
# Patches: each asserts that what it changes is there, so a change to minimal/ cannot silently turn
# a broken case into a valid one.


def replace(rel: str, old: str, new: str) -> Patch:
    def apply(root: Path) -> None:
        path = root / rel
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} must occur exactly once in {rel}"
        path.write_text(text.replace(old, new))

    return apply


def write(rel: str, text: str) -> Patch:
    def apply(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)

    return apply


def rename_host(old: str, new: str) -> Patch:
    """Rename a host everywhere the minimal inventory names it (hosts.yml, its host_vars file, links)."""

    def apply(root: Path) -> None:
        (root / "host_vars" / f"{old}.yml").rename(root / "host_vars" / f"{new}.yml")
        for rel in ("hosts.yml", "group_vars/all/links.yml"):
            path = root / rel
            assert old in path.read_text(), f"{old} must occur in {rel}"
            path.write_text(re.sub(rf"\b{re.escape(old)}\b", json.dumps(new), path.read_text()))

    return apply


def vault(**overrides: str) -> Patch:
    """Re-encrypt the vault with some values changed, as `ansible-vault edit` would leave it."""

    def apply(root: Path) -> None:
        values = {**decrypt(MINIMAL / VAULT, PASSWORD), **overrides}
        plain = root / "vault-plain.yml"
        plain.write_text(yaml.safe_dump(values))
        encrypt(plain, root / VAULT, PASSWORD)
        plain.unlink()

    return apply


# ansible-core's own Vault code, in-process (an `ansible-vault` process per patched case cost a second
# or more each): the same library `ansible-vault edit` and `view` use, and it reads no ansible.cfg, so the
# repository's demo vault password cannot step in.


def _vault_lib(password: bytes) -> tuple[Any, Any]:
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultSecret(password.strip())  # as ansible reads a password file
    return VaultLib([("default", secret)]), secret


def decrypt(path: Path, password_file: Path) -> dict[str, str]:
    return dict(_decrypt(path.read_bytes(), password_file.read_bytes()))


@functools.cache
def _decrypt(content: bytes, password: bytes) -> tuple[tuple[str, str], ...]:
    lib, _ = _vault_lib(password)
    return tuple(yaml.safe_load(lib.decrypt(content)).items())


def encrypt(plain: Path, output: Path, password_file: Path) -> None:
    lib, secret = _vault_lib(password_file.read_bytes())
    output.unlink(missing_ok=True)
    output.write_bytes(lib.encrypt(plain.read_bytes(), secret))


# A valid `data_backups` for the minimal file server (lines 7-15 of its host_vars file); each data
# backup case changes one thing in it.
DATA_BACKUPS = """data_backups:
  databases:
    - {name: records, engine: postgresql}
  paths:
    - {path: /srv/files, exclude: ["*.tmp"]}
  repositories:
    - {kind: local, path: /var/backups/restic}
  retention: {daily: 7, weekly: 4, monthly: 6}
  password: "{{ vault_backup_repo_password }}"
"""


def data_backups(old: str = "", new: str = "") -> tuple[Patch, ...]:
    """The minimal file server with DATA_BACKUPS (one `old` -> `new` change in it) and its vault value."""
    assert not old or DATA_BACKUPS.count(old) == 1, f"{old!r} must occur exactly once in DATA_BACKUPS"
    text = DATA_BACKUPS.replace(old, new) if old else DATA_BACKUPS
    return (replace("host_vars/tst-hq-srv1.yml", "services: [ssh]\n", f"services: [ssh]\n{text}"),
            vault(vault_backup_repo_password="Repo-Pass-Demo-0001"))


# --------------------------------------------------------------------------------------------------
# The table. `file` is relative to where dzops runs (the inventory is `inventory/`), `line` None for
# a problem about a whole file, `host`/`field` None when the problem has none.


@dataclass(frozen=True)
class Case:
    id: str
    patch: tuple[Patch, ...]
    file: str | None
    line: int | None
    host: str | None
    field: str | None
    message: str  # substring of the message
    password: str | None = None  # a different vault password to run with
    count: int = 1  # problems reported in all: one mistake, no misleading follow-ups

    @property
    def subject(self) -> str:
        return "/".join(p for p in (self.host, self.field) if p)


HV, GV = "inventory/host_vars", "inventory/group_vars"
AP, RTR = "gewog-lobesa-ap1", "gewog-lobesa-rtr1"

# fmt: off
CASES: tuple[Case, ...] = (
    # --- schema -----------------------------------------------------------------------------------
    Case("schema-unknown-key",  # also 'title: Field required'; not "no entry in 'sites'" on each host
         (replace("group_vars/all/dzongkhag.yml", "    title: Lobesa", "    titel: Lobesa"),),
         f"{GV}/all/dzongkhag.yml", 18, None, "sites.lobesa.titel", "Extra inputs are not permitted", count=2),
    Case("schema-wrong-type",
         (replace("group_vars/all/links.yml", "bandwidth_mbps: 20", "bandwidth_mbps: fast"),),
         f"{GV}/all/links.yml", 8, None, "wan_links[hq-lobesa].bandwidth_mbps", "bandwidth 'fast' needs a unit"),
    Case("bandwidth-unit-unknown",  # 'M' could be megabytes: the unit is spelled out
         (replace("group_vars/all/links.yml", "bandwidth_mbps: 20", "bandwidth: 20M"),),
         f"{GV}/all/links.yml", 8, None, "wan_links[hq-lobesa].bandwidth", "needs a unit: a number with kbit, Mbit or Gbit"),
    Case("missing-sites",
         (replace("group_vars/all/dzongkhag.yml", "\nsites:\n", "\nold_sites:\n"),),
         None, None, None, "sites", "required setting 'sites' is missing from group_vars/all"),
    # --- hosts ------------------------------------------------------------------------------------
    Case("unknown-platform",
         (replace(f"host_vars/{RTR}.yml", "device_role: gewog-router\n",
                  "device_role: gewog-router\nplatform: vyos\n"),),
         f"{HV}/{RTR}.yml", 4, RTR, "platform", "unknown platform 'vyos' (known: "),
    Case("platform-wrong-function",
         (replace(f"host_vars/{RTR}.yml", "device_role: gewog-router\n",
                  "device_role: gewog-router\nplatform: cumulus\n"),),
         f"{HV}/{RTR}.yml", 4, RTR, "platform", "platform 'cumulus' cannot be in group routers"),
    Case("invalid-mgmt-ip",
         (replace(f"host_vars/{AP}.yml", "ansible_host: 10.40.0.141", "ansible_host: 10.40.0.341"),),
         f"{HV}/{AP}.yml", 2, AP, "ansible_host", "valid IPv4 address"),
    Case("duplicate-mgmt-address",
         (replace(f"host_vars/{AP}.yml", "ansible_host: 10.40.0.141", "ansible_host: 10.40.0.121"),),
         f"{HV}/{AP}.yml", 2, AP, "ansible_host", "duplicate management address 10.40.0.121 (also gewog-lobesa-sw1)"),
    Case("mgmt-outside-pool",
         (replace(f"host_vars/{AP}.yml", "ansible_host: 10.40.0.141", "ansible_host: 10.50.0.141"),),
         f"{HV}/{AP}.yml", 2, AP, "ansible_host", "outside the management pool 10.40.0.0/24"),
    Case("host-in-no-site",  # not also "lan_links[0].b: unknown host 'tst-hq-srv1'"; fixed in hosts.yml
         (replace("hosts.yml", "        tst-hq-rtr1:\n        tst-hq-srv1:\n", "        tst-hq-rtr1:\n"),),
         "inventory/hosts.yml", 22, "tst-hq-srv1", "site", "must be in exactly one site_<name> group in hosts.yml, found 0"),
    Case("host-in-no-function-group",  # group membership is fixed in hosts.yml, not in host_vars
         (replace("hosts.yml", "    servers:\n      hosts:\n        tst-hq-srv1:\n", "    servers:\n      hosts: {}\n"),),
         "inventory/hosts.yml", 8, "tst-hq-srv1", "function", "must be in exactly one of the groups"),
    Case("device-on-management-gateway",  # the lab's host side (and a real network's router) is .1
         (replace(f"host_vars/{AP}.yml", "ansible_host: 10.40.0.141", "ansible_host: 10.40.0.1"),),
         f"{HV}/{AP}.yml", 2, AP, "ansible_host", "10.40.0.1 is the management network's gateway"),
    Case("undefined-vault-variable",  # once, at the value: not again for the whole ssid_profiles mapping
         (replace("group_vars/all/network.yml", "{{ vault_ssid_staff_psk }}", "{{ vault_ssid_staf_psk }}"),),
         f"{GV}/all/network.yml", 10, None, "ssid_profiles.staff.psk",
         "cannot resolve value: 'vault_ssid_staf_psk' is undefined"),
    Case("host-vars-undefined-host",
         (write("host_vars/gewog-ghost-rtr1.yml", "---\nansible_host: 10.40.0.99\n"),),
         f"{HV}/gewog-ghost-rtr1.yml", None, "gewog-ghost-rtr1", None,
         "host_vars file for a host that is not defined in hosts.yml"),
    Case("group-vars-undefined-group",
         (write("group_vars/firewalls.yml", "---\nplatform: ios\n"),),
         f"{GV}/firewalls.yml", None, None, None, "group_vars file for a group that is not defined in hosts.yml"),
    # --- addressing -------------------------------------------------------------------------------
    Case("overlapping-site-lans",
         (replace("group_vars/all/dzongkhag.yml", "lan_prefix: 10.41.1.0/24", "lan_prefix: 10.41.0.128/25"),),
         f"{GV}/all/dzongkhag.yml", 20, None, "sites.lobesa.lan_prefix",
         "10.41.0.128/25 overlaps sites.hq.lan_prefix (10.41.0.0/24)"),
    Case("overlapping-pools",
         (replace("group_vars/all/dzongkhag.yml", "loopback: 10.40.254.0/24", "loopback: 10.40.0.128/25"),),
         f"{GV}/all/dzongkhag.yml", 9, None, "address_pools.loopback",
         "10.40.0.128/25 overlaps address_pools.management (10.40.0.0/24)"),
    Case("loopback-outside-pool",
         (replace(f"host_vars/{RTR}.yml", "loopback: 10.40.254.11/32", "loopback: 10.40.253.11/32"),),
         f"{HV}/{RTR}.yml", 4, RTR, "loopback", "loopback 10.40.253.11/32 is outside the loopback pool 10.40.254.0/24"),
    Case("lan-address-outside-site",  # the server's file, not the site's: the site's prefix is right
         (replace("host_vars/tst-hq-srv1.yml", "address: 10.41.0.21/24", "address: 10.41.1.21/24"),),
         f"{HV}/tst-hq-srv1.yml", 5, "tst-hq-srv1", "interfaces.eth0.address",
         "eth0 address 10.41.1.21/24 is outside site hq's LAN 10.41.0.0/24"),
    Case("gateway-outside-site",
         (replace("host_vars/tst-hq-srv1.yml", "services: [ssh]", "services: [ssh]\ngateway: 10.41.1.1"),),
         f"{HV}/tst-hq-srv1.yml", 7, "tst-hq-srv1", "gateway", "gateway 10.41.1.1 is outside site hq's LAN 10.41.0.0/24"),
    Case("lan-host-without-gateway",  # the site router has no LAN address to derive it from
         (replace("host_vars/tst-hq-rtr1.yml", "{description: HQ LAN, address: 10.41.0.1/24}", "{description: HQ LAN}"),),
         f"{HV}/tst-hq-srv1.yml", 2, "tst-hq-srv1", "gateway", "no gateway: set `gateway`"),
    Case("wan-subnet-slash-32",  # provision-wan used to crash on it
         (replace("group_vars/all/links.yml", "    routing: {protocol: ospf, area: 0}\n",
                  "    routing: {protocol: ospf, area: 0}\n    subnet: 10.40.255.4/32\n"),),
         f"{GV}/all/links.yml", 10, None, "wan_links[hq-lobesa].subnet", "is a /32: a point-to-point link takes a /30 or a /31"),
    Case("wan-subnet-size-unknown",
         (replace("group_vars/all/dzongkhag.yml", "  wan: 10.40.255.0/24\n", "  wan: 10.40.255.0/24\n  wan_subnet_size: /29\n"),),
         f"{GV}/all/dzongkhag.yml", 9, None, "address_pools.wan_subnet_size", "Input should be 30 or 31"),
    Case("ospf-cost-on-a-static-link",
         (replace("group_vars/all/links.yml", "b: {host: gewog-lobesa-rtr1, interface: eth0}",
                  "b: {host: gewog-lobesa-rtr1, interface: eth0, ospf_cost: 7}"),
          replace("group_vars/all/links.yml", "routing: {protocol: ospf, area: 0}", "routing: {protocol: static}")),
         f"{GV}/all/links.yml", 5, None, "wan_links[hq-lobesa].b", "ospf_cost on a link routed statically"),
    Case("ospf-area-on-a-server",
         (replace("host_vars/tst-hq-srv1.yml", "services: [ssh]", "services: [ssh]\nospf_area: 1"),),
         f"{HV}/tst-hq-srv1.yml", 7, "tst-hq-srv1", "ospf_area", "ospf_area is a router's setting"),
    # --- links ------------------------------------------------------------------------------------
    Case("wan-link-unknown-host",
         (replace("group_vars/all/links.yml", "b: {host: gewog-lobesa-rtr1,", "b: {host: gewog-lobsa-rtr1,"),),
         f"{GV}/all/links.yml", 5, None, "wan_links[hq-lobesa].b", "unknown host 'gewog-lobsa-rtr1'"),
    Case("wan-link-unknown-interface",
         (replace("group_vars/all/links.yml", "b: {host: gewog-lobesa-rtr1, interface: eth0}",
                  "b: {host: gewog-lobesa-rtr1, interface: eth9}"),),
         f"{GV}/all/links.yml", 5, None, "wan_links[hq-lobesa].b", "gewog-lobesa-rtr1 has no interface 'eth9'"),
    Case("interface-used-twice",
         (replace("group_vars/all/links.yml", "a: {host: gewog-lobesa-rtr1, interface: eth1}",
                  "a: {host: gewog-lobesa-rtr1, interface: eth0}"),),
         f"{GV}/all/links.yml", 13, None, "lan_links[1].a",
         "interface gewog-lobesa-rtr1:eth0 is already used by wan_links[hq-lobesa].b"),
    # --- VLANs and wireless -----------------------------------------------------------------------
    Case("vlan-out-of-range",
         (replace("group_vars/all/network.yml", "  99: {name: management}", "  4095: {name: management}"),),
         f"{GV}/all/network.yml", 4, None, "vlans.4095.id", "less than or equal to 4094"),
    Case("ssid-vlan-out-of-range",  # not also "SSID profile 'staff' is not defined" on the AP
         (replace("group_vars/all/network.yml", "    vlan: 10", "    vlan: 5000"),),
         f"{GV}/all/network.yml", 11, None, "ssid_profiles.staff.vlan", "less than or equal to 4094"),
    Case("psk-7-characters", (vault(vault_ssid_staff_psk=TOO_SHORT_PSK),),
         f"{GV}/all/network.yml", 10, None, "ssid_profiles.staff.psk", "PSK must be 8 to 63 characters"),
    Case("psk-64-characters", (vault(vault_ssid_staff_psk=TOO_LONG_PSK),),
         f"{GV}/all/network.yml", 10, None, "ssid_profiles.staff.psk", "PSK must be 8 to 63 characters"),
    Case("more-ssids-than-radios",  # at the first SSID without a radio, in the AP's own file
         (replace(f"host_vars/{AP}.yml", "  wlan0: {description: radio 2.4 GHz}", "  eth1: {description: spare}"),),
         f"{HV}/{AP}.yml", 6, AP, "ssids[0]", "serves 1 SSID(s) but has 0 radio interface(s)"),
    Case("open-ssid-with-psk",
         (replace("group_vars/all/network.yml", "security: wpa2-psk", "security: open"),),
         f"{GV}/all/network.yml", 10, None, "ssid_profiles.staff.psk", "an open SSID has no key"),
    Case("ap-uplink-to-a-server",
         (replace(f"host_vars/{AP}.yml", "uplink: {switch: gewog-lobesa-sw1, port: swp2}", "uplink: {router: tst-hq-srv1, port: eth1}"),),
         f"{HV}/{AP}.yml", 4, AP, "uplink.router", "uplink 'tst-hq-srv1' is not in group routers"),
    Case("ap-unknown-ssid-profile",  # the line of the bad list item, not of the list
         (replace(f"host_vars/{AP}.yml", "  - staff\n", "  - staff\n  - visitors\n"),),
         f"{HV}/{AP}.yml", 7, AP, "ssids", "SSID profile 'visitors' is not defined in ssid_profiles"),
    # --- secrets ----------------------------------------------------------------------------------
    Case("plain-text-password",
         (replace("group_vars/servers.yml", '"{{ vault_server_password }}"', f'"{PLAIN_SECRETS[0]}"'),),
         f"{GV}/servers.yml", 3, "tst-hq-srv1", "ansible_password", "secret stored in plain text: move it to Vault"),
    Case("plain-text-psk",
         (replace("group_vars/all/network.yml", '"{{ vault_ssid_staff_psk }}"', f'"{PLAIN_SECRETS[1]}"'),),
         f"{GV}/all/network.yml", 10, None, "ssid_profiles.staff.psk", "secret stored in plain text: move it to Vault"),
    Case("wrong-vault-password", (),
         f"inventory/{VAULT}", None, None, None, "cannot decrypt: wrong vault password", password="not-the-password"),
    # --- users ------------------------------------------------------------------------------------
    Case("user-unknown-role",
         (replace("group_vars/all/users.yml", "role: operator", "role: superuser"),),
         f"{GV}/all/users.yml", 21, None, "users[dorji].role", "unknown role 'superuser' (known: admin, operator)"),
    Case("role-undefined-group",
         (replace("group_vars/all/users.yml", "groups: [routers, switches]", "groups: [routers, firewalls]"),),
         f"{GV}/all/users.yml", 8, None, "user_roles.operator.groups", "group 'firewalls' is not defined in hosts.yml"),
    Case("ssh-key-garbage",
         (replace("group_vars/all/users.yml", VALID_KEY, "ssh-ed25519 not a key!"),),
         f"{GV}/all/users.yml", 17, None, "users[karma].ssh_keys[0]", "bad SSH public key: "),
    Case("ssh-key-truncated",  # a paste that lost its end: right characters, not a key
         (replace("group_vars/all/users.yml", VALID_KEY, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJMOe4"),),
         f"{GV}/all/users.yml", 17, None, "users[karma].ssh_keys[0]", "bad SSH public key: "),
    # --- text that would break a device configuration (control characters, newlines) ---------------
    Case("ssid-with-newline",  # hostapd.conf would get a second line: wpa=0
         (replace("group_vars/all/network.yml", "ssid: Testkha-Staff", 'ssid: "Testkha-Staff\\nwpa=0"'),),
         f"{GV}/all/network.yml", 8, None, "ssid_profiles.staff.ssid",
         "must be one line of text without control characters (found U+000A at position 14)"),
    Case("circuit-id-with-carriage-return",
         (replace("group_vars/all/links.yml", "circuit_id: BT-TST-0001", 'circuit_id: "BT-TST-0001\\r"'),),
         f"{GV}/all/links.yml", 7, None, "wan_links[hq-lobesa].circuit_id",
         "must be one line of text without control characters (found U+000D at position 12)"),
    Case("description-with-escape-sequence",  # a terminal escape in a description reaches every report
         (replace("host_vars/tst-hq-rtr1.yml", "{description: HQ LAN,", '{description: "HQ \\e[2J LAN",'),),
         f"{HV}/tst-hq-rtr1.yml", 7, "tst-hq-rtr1", "interfaces.eth0.description",
         "must be one line of text without control characters (found U+001B at position 4)"),
    Case("description-with-bidi-override",  # reads differently on screen than on the device
         (replace("host_vars/tst-hq-rtr1.yml", "{description: WAN to Lobesa gewog}",
                  '{description: "WAN to \\u202eLobesa"}'),),
         f"{HV}/tst-hq-rtr1.yml", 8, "tst-hq-rtr1", "interfaces.eth1.description",
         "must be one line of text without control characters (found U+202E at position 8)"),
    Case("site-title-with-newline",
         (replace("group_vars/all/dzongkhag.yml", "title: Lobesa Gewog Centre", 'title: "Lobesa\\nGewog"'),),
         f"{GV}/all/dzongkhag.yml", 18, None, "sites.lobesa.title",
         "must be one line of text without control characters (found U+000A at position 7)"),
    Case("user-full-name-with-newline",  # the account comment and RouterOS user comment
         (replace("group_vars/all/users.yml", "name: Dorji Wangmo", 'name: "Dorji\\nWangmo"'),),
         f"{GV}/all/users.yml", 19, None, "users[dorji].name",
         "must be one line of text without control characters (found U+000A at position 6)"),
    Case("vlan-name-with-tab",
         (replace("group_vars/all/network.yml", "10: {name: staff}", '10: {name: "staff\\tvlan"}'),),
         f"{GV}/all/network.yml", 3, None, "vlans.10.name",
         "must be one line of text without control characters (found U+0009 at position 6)"),
    Case("mail-recipient-with-newline",  # a header injection in every report mail
         (replace("group_vars/all/operations.yml", "recipients: [ict@testkha.gov.bt]",
                  'recipients: ["ict@testkha.gov.bt\\nBcc: x@example.com"]'),),
         f"{GV}/all/operations.yml", 7, None, "mail.recipients.0",
         "must be one line of text without control characters (found U+000A at position 19)"),
    Case("user-login-of-a-system-account",  # the account would be Debian's own backup user
         (replace("group_vars/all/users.yml", "login: dorji", "login: backup"),),
         f"{GV}/all/users.yml", 18, None, "users[backup].login",
         "login 'backup' is a system or service account's name: staff need their own"),
    Case("host-name-with-shell-characters",  # the name becomes the hostname and file names
         (rename_host("tst-hq-srv1", "tst-hq-srv1;reboot"),),
         f"{HV}/tst-hq-srv1;reboot.yml", 2, "tst-hq-srv1;reboot", "name",
         "a host name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"),
    Case("newline-in-psk", (vault(vault_ssid_staff_psk="Staff-Psk-01\nwpa=0"),),
         f"{GV}/all/network.yml", 10, None, "ssid_profiles.staff.psk", "PSK must be printable ASCII"),
    # --- health -----------------------------------------------------------------------------------
    Case("health-alert-after-zero",  # an alert on every single bad result: flap suppression off by mistake
         (replace("group_vars/all/operations.yml", "recipients: [ict@testkha.gov.bt]",
                  "recipients: [ict@testkha.gov.bt]\nhealth:\n  alert_after: 0"),),
         f"{GV}/all/operations.yml", 9, None, "health.alert_after", "greater than or equal to 1"),
    Case("dns-health-check-without-query",
         (replace("host_vars/tst-hq-srv1.yml", "services: [ssh]",
                  "services: [ssh]\nhealth_checks:\n  - {kind: dns, target: 10.40.0.21}"),),
         f"{HV}/tst-hq-srv1.yml", 8, "tst-hq-srv1", "health_checks.0",
         "a dns health check names the `query` to resolve"),
    # --- YAML syntax ------------------------------------------------------------------------------
    Case("broken-yaml-group-vars",  # an editor indented with a tab
         (replace("group_vars/all/network.yml", "    security: wpa2-psk", "\tsecurity: wpa2-psk"),),
         f"{GV}/all/network.yml", 9, None, None, "YAML parsing failed"),
    Case("broken-yaml-hosts",
         (replace("hosts.yml", "    routers:\n", "\trouters:\n"),),
         "inventory/hosts.yml", 14, None, None, "YAML parsing failed"),
    # --- data backups -----------------------------------------------------------------------------
    Case("data-backup-unknown-engine",
         data_backups("engine: postgresql", "engine: oracle"),
         f"{HV}/tst-hq-srv1.yml", 9, "tst-hq-srv1", "data_backups.databases.0.engine", "'postgresql' or 'mariadb'"),
    Case("data-backup-relative-path",
         data_backups("path: /srv/files", "path: srv/files"),
         f"{HV}/tst-hq-srv1.yml", 11, "tst-hq-srv1", "data_backups.paths.0.path", "must be an absolute path"),
    Case("data-backup-sftp-without-host",
         data_backups("{kind: local, path: /var/backups/restic}", "{kind: sftp, path: /srv/restic}"),
         f"{HV}/tst-hq-srv1.yml", 13, "tst-hq-srv1", "data_backups.repositories.0",
         "an sftp repository names the `host`"),
    Case("data-backup-repository-on-itself",  # a dead disk would take the data and its backups
         data_backups("{kind: local, path: /var/backups/restic}", "{kind: sftp, host: tst-hq-srv1, path: /srv/restic}"),
         f"{HV}/tst-hq-srv1.yml", 13, "tst-hq-srv1", "data_backups.repositories.0.host",
         "the repository is on the server it backs up"),
    Case("data-backup-repository-on-a-router",
         data_backups("{kind: local, path: /var/backups/restic}", "{kind: sftp, host: tst-hq-rtr1, path: /srv/restic}"),
         f"{HV}/tst-hq-srv1.yml", 13, "tst-hq-srv1", "data_backups.repositories.0.host",
         "'tst-hq-rtr1' is not in group servers"),
    Case("data-backup-repository-host-unknown",
         data_backups("{kind: local, path: /var/backups/restic}", "{kind: sftp, host: tst-hq-nas9, path: /srv/restic}"),
         f"{HV}/tst-hq-srv1.yml", 13, "tst-hq-srv1", "data_backups.repositories.0.host", "unknown host 'tst-hq-nas9'"),
    Case("data-backup-retention-keeps-nothing",
         data_backups("{daily: 7, weekly: 4, monthly: 6}", "{daily: 0, weekly: 0, monthly: 0}"),
         f"{HV}/tst-hq-srv1.yml", 14, "tst-hq-srv1", "data_backups.retention",
         "a retention that keeps nothing would delete every snapshot"),
    Case("data-backup-plain-password",  # the repository password belongs in Vault
         data_backups('"{{ vault_backup_repo_password }}"', PLAIN_SECRETS[0]),
         f"{HV}/tst-hq-srv1.yml", 15, "tst-hq-srv1", "data_backups.password",
         "secret stored in plain text: move it to Vault"),
    Case("data-backup-staging-inside-a-path",  # the dumps would be backed up twice
         data_backups("path: /srv/files", "path: /var"),
         f"{HV}/tst-hq-srv1.yml", 11, "tst-hq-srv1", "data_backups.paths.0",
         "holds the staging directory /var/backups/dzops-staging"),
    Case("data-backup-database-twice",
         data_backups("    - {name: records, engine: postgresql}\n",
                      "    - {name: records, engine: postgresql}\n    - {name: records, engine: postgresql}\n"),
         f"{HV}/tst-hq-srv1.yml", 10, "tst-hq-srv1", "data_backups.databases.1",
         "postgresql database 'records' is listed twice"),
)
# fmt: on

PROBLEM_LINE = re.compile(r"^(?P<file>[^:\s]+)(?::(?P<line>\d+))?: (?:(?P<subject>[^:]+): )?(?P<message>.+)$")


# --------------------------------------------------------------------------------------------------
# Running dzops


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def forget_ansible_process_state() -> None:
    """Each officer's run is a fresh process: drop what ansible-core keeps per process.

    Its vault secrets context is set once per process, and the host_group_vars plugin caches the
    real path of an inventory by the path string given (`inventory`), so a second in-process run in
    another directory would read the first one's files (see test_loader for that bug).
    """
    from ansible.parsing.vault import VaultSecretsContext
    from ansible.plugins.vars import host_group_vars

    VaultSecretsContext._current = None
    for cache in (host_group_vars.CANONICAL_PATHS, host_group_vars.FOUND, host_group_vars.NAK):
        cache.clear()


def dzops(cwd: Path, *args: str) -> Run:
    """`dzops ARGS` in `cwd` through the console-script entry point, in-process."""
    env = {
        "DZOPS_INVENTORY": None,
        "DZOPS_VAULT_PASSWORD_FILE": None,
        "ANSIBLE_VAULT_PASSWORD_FILE": None,
        "DZOPS_DEBUG": None,
    }
    code: int | str | None = 0
    argv = sys.argv
    with CliRunner().isolation(env=env) as (out, err, _), chdir(cwd):
        sys.argv = ["dzops", *args]
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.argv = argv
            forget_ansible_process_state()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert isinstance(code, int) or code is None, f"exited with {code!r}"
    return Run(code or 0, stdout, stderr)


def case_args(case: Case, cwd: Path, json_output: bool = False) -> list[str]:
    """`dzops inventory check` as an officer types it in the repository holding `inventory/`."""
    password = cwd / "password.txt" if case.password else PASSWORD
    return [
        "-i",
        "inventory",
        "--vault-password-file",
        str(password),
        *(["--json"] if json_output else []),
        "inventory",
        "check",
    ]


def expected_line(case: Case) -> str:
    where = f"{case.file}:{case.line}" if case.file and case.line else (case.file or "inventory")
    return f"{where}: {case.subject}: " if case.subject else f"{where}: "


# --------------------------------------------------------------------------------------------------
# Broken cases


def test_table_covers_every_required_mistake() -> None:
    ids = {c.id for c in CASES}
    assert len(ids) == len(CASES) >= 22


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_broken_case_is_reported_at_its_line(case: Case, results: dict[tuple[str, bool], Run]) -> None:
    run = results[case.id, False]
    assert run.code == ExitCode.INVALID_INVENTORY, run.text
    assert "Traceback" not in run.text
    prefix = expected_line(case)
    lines = [line for line in run.text.splitlines() if line.startswith(prefix)]
    assert any(case.message in line for line in lines), (
        f"expected a line '{prefix}...{case.message}...' in:\n{run.text}"
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_one_mistake_one_report(case: Case, results: dict[tuple[str, bool], Run]) -> None:
    """A mistake must not also show up as follow-up errors about things that are fine (an invalid site
    reported as "no entry in 'sites'", a host left out of a site as "unknown host" in a link)."""
    run = results[case.id, False]
    problem_lines = [line for line in run.text.splitlines() if line.strip() and not line.startswith("dzops: ")]
    assert len(problem_lines) == case.count, run.text


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_problem_line_is_file_line_subject_message(case: Case, results: dict[tuple[str, bool], Run]) -> None:
    """An officer (and an editor's quickfix list) reads each problem as file[:line]: [host/field: ]message."""
    run = results[case.id, False]
    problem_lines = [line for line in run.text.splitlines() if not line.startswith("dzops: ")]
    for line in problem_lines:
        match = PROBLEM_LINE.match(line)
        assert match, f"not a problem line: {line!r}"
        assert not match["file"].startswith("/"), f"absolute path in {line!r}"
        assert not match["file"].startswith(".."), f"path outside the working directory in {line!r}"


@pytest.mark.parametrize("case_id", ["host-vars-undefined-host", "wrong-vault-password", "unknown-platform"])
def test_paths_are_relative_even_with_an_absolute_inventory_option(case_id: str, case_dirs: dict[str, Path]) -> None:
    """`-i /srv/dzops/inventory` run from that repository: every problem names the same relative path."""
    case = next(c for c in CASES if c.id == case_id)
    cwd = case_dirs[case_id]
    args = case_args(case, cwd)
    args[1] = str(cwd / "inventory")
    run = dzops(cwd, *args)
    assert run.code == ExitCode.INVALID_INVENTORY
    assert any(line.startswith(expected_line(case)) for line in run.stderr.splitlines() + run.stdout.splitlines()), (
        run.text
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_broken_case_as_json(case: Case, results: dict[tuple[str, bool], Run]) -> None:
    run = results[case.id, True]
    assert run.code == ExitCode.INVALID_INVENTORY, run.text
    data = json.loads(run.stdout)
    assert data["ok"] is False
    problems = data["problems"]
    assert problems and all(set(p) == {"file", "line", "host", "field", "message"} for p in problems)
    assert {"file": case.file, "line": case.line, "host": case.host, "field": case.field} in [
        {k: p[k] for k in ("file", "line", "host", "field")} for p in problems if case.message in p["message"]
    ], json.dumps(problems, indent=1)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_broken_case_leaks_no_secret(
    case: Case, case_dirs: dict[str, Path], results: dict[tuple[str, bool], Run]
) -> None:
    """Neither the case's vault values (decrypted here with ansible-vault), nor a plain-text secret, nor
    the vault password appear in any output, even when the secret itself is what is wrong."""
    secrets = [*decrypt(case_dirs[case.id] / "inventory" / VAULT, PASSWORD).values(), *PLAIN_SECRETS]
    if case.password:
        secrets.append(case.password)
    if case.id.startswith("psk-"):
        assert TOO_SHORT_PSK in secrets or TOO_LONG_PSK in secrets  # the wrong PSK is in the vault
    for as_json in (False, True):
        output = results[case.id, as_json].text
        leaked = [secret for secret in secrets if str(secret) in output]
        assert not leaked, f"secret(s) shown by dzops{' --json' if as_json else ''}: {leaked}"


# --------------------------------------------------------------------------------------------------
# Valid inventories, show, secrets


VALID = {
    "sample": (SAMPLE, SAMPLE_PASSWORD, 37),
    "minimal": (MINIMAL, PASSWORD, 5),
}


@pytest.mark.parametrize("name", VALID)
def test_valid_inventory_passes(name: str) -> None:
    root, password, hosts = VALID[name]
    run = dzops(REPO, "-i", str(root), "--vault-password-file", str(password), "inventory", "check")
    assert run.code == ExitCode.OK, run.text
    assert run.stdout == ""
    assert f"is valid ({hosts} hosts)" in run.stderr
    as_json = dzops(REPO, "-i", str(root), "--vault-password-file", str(password), "--json", "inventory", "check")
    assert json.loads(as_json.stdout) == {"ok": True, "hosts": hosts, "problems": []}


def test_sample_passes_with_its_demo_password_by_default() -> None:
    run = dzops(REPO, "-i", str(SAMPLE), "inventory", "check")
    assert run.code == ExitCode.OK, run.text


SHOW_COMMANDS = {
    "check": ["inventory", "check"],
    "check-json": ["--json", "inventory", "check"],
    "show": ["inventory", "show"],
    "show-json": ["inventory", "show", "--json"],
    "show-router-json": ["inventory", "show", "--json", "tst-hq-rtr1"],
    "show-ap": ["inventory", "show", "gewog-lobesa-ap1"],
    "show-server-json": ["inventory", "show", "--json", "tst-hq-srv1"],
    "show-verbose": ["-vv", "inventory", "show"],
}


@pytest.mark.parametrize("command", SHOW_COMMANDS)
@pytest.mark.parametrize("name", VALID)
def test_no_output_shows_a_vault_secret(name: str, command: str) -> None:
    root, password, _ = VALID[name]
    args = SHOW_COMMANDS[command]
    if name == "sample":
        args = [
            a.replace("tst-hq-rtr1", "punakha-hq-rtr1")
            .replace("tst-hq-srv1", "punakha-hq-srv1")
            .replace("gewog-lobesa-ap1", "gewog-talo-ap1")
            for a in args
        ]
    secrets = decrypt(root / VAULT, password)
    assert len(secrets) >= 4
    run = dzops(REPO, "-i", str(root), "--vault-password-file", str(password), *args)
    assert run.code == ExitCode.OK, run.text
    assert run.stdout or "is valid" in run.stderr
    for name_, secret in secrets.items():
        assert str(secret) not in run.text, f"{name_} shown by `dzops {' '.join(args)}`"


def test_show_masks_secrets_with_a_fixed_mask() -> None:
    run = dzops(REPO, "-i", str(MINIMAL), "--vault-password-file", str(PASSWORD), "inventory", "show", "--json")
    data = json.loads(run.stdout)
    assert data["devices"]["tst-hq-rtr1"]["password"] == "********"
    assert data["ssid_profiles"]["staff"]["psk"] == "********"
    assert data["mail"]["password"] == "********"
    assert data["devices"]["tst-hq-rtr1"]["username"] == "dzadmin"


def test_show_unknown_host_is_a_usage_error() -> None:
    run = dzops(REPO, "-i", str(MINIMAL), "--vault-password-file", str(PASSWORD), "inventory", "show", "nope-rtr1")
    assert run.code == ExitCode.USAGE
    assert run.stdout == ""
    assert run.stderr.splitlines() == ["dzops: error: unknown host 'nope-rtr1'"]


def test_show_on_a_broken_inventory_lists_problems_and_exits_3(case_dirs: dict[str, Path]) -> None:
    case = next(c for c in CASES if c.id == "unknown-platform")
    run = dzops(
        case_dirs[case.id],
        "-i",
        "inventory",
        "--vault-password-file",
        str(PASSWORD),
        "inventory",
        "show",
        "--json",
    )
    assert run.code == ExitCode.INVALID_INVENTORY
    assert run.stdout == ""
    assert any(line.startswith(expected_line(case)) for line in run.stderr.splitlines()), run.stderr


@pytest.mark.parametrize("case_id", ["wrong-vault-password", "broken-yaml-hosts", "broken-yaml-group-vars"])
def test_check_json_still_emits_json_when_the_inventory_cannot_load(
    case_id: str, results: dict[tuple[str, bool], Run]
) -> None:
    """Scripts run `dzops --json inventory check`: a failure to load is still a JSON list of problems."""
    run = results[case_id, True]
    assert run.code == ExitCode.INVALID_INVENTORY
    data = json.loads(run.stdout)
    assert data["ok"] is False and data["problems"]


@pytest.mark.parametrize("case_id", ["wrong-vault-password", "broken-yaml-hosts", "broken-yaml-group-vars"])
def test_real_process_fails_in_one_clear_line(case_id: str, case_dirs: dict[str, Path]) -> None:
    """`python -m dzops` as a separate process: no traceback, no ansible noise, one problem line."""
    case = next(c for c in CASES if c.id == case_id)
    cwd = case_dirs[case_id]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DZOPS_INVENTORY", "DZOPS_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE", "DZOPS_DEBUG")
    }
    proc = subprocess.run(
        [sys.executable, "-m", "dzops", *case_args(case, cwd)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == ExitCode.INVALID_INVENTORY, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    problem_lines = [line for line in lines if not line.startswith("dzops: ")]
    assert len(problem_lines) == 1, "\n".join(lines)
    assert problem_lines[0].startswith(expected_line(case)) and case.message in problem_lines[0], problem_lines[0]
