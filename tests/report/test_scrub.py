"""Secrets never leave dzops: one row per secret form, realistic configs per platform, look-alikes untouched.

The fixtures under tests/fixtures/scrub/ are whole configurations, one per platform, with many secret
forms and the ordinary lines around them. `<platform>.secrets` lists every secret value of
`<platform>.conf` (quoted where the quotes go too); the scrubbed config must equal the config with
exactly those values replaced by the marker: every other byte, every neighbouring line, stays.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dzops.report.scrub import MARKER, SYNTAXES, inventory_secrets, mask_values, scrub, scrub_secrets

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scrub"
PLATFORMS = ("ios", "nxos", "eos", "asa", "junos", "routeros", "vyos", "cumulus", "frr", "hostapd", "linux")


def _fixture(platform: str) -> tuple[str, list[str]]:
    text = (FIXTURES / f"{platform}.conf").read_text()
    secrets = [line for line in (FIXTURES / f"{platform}.secrets").read_text().splitlines() if line]
    return text, secrets


def test_every_platform_has_rules_and_a_fixture() -> None:
    assert set(PLATFORMS) == set(SYNTAXES)
    for platform in PLATFORMS:
        assert (FIXTURES / f"{platform}.conf").is_file() and (FIXTURES / f"{platform}.secrets").is_file()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_fixture_loses_exactly_its_secrets(platform: str) -> None:
    text, secrets = _fixture(platform)
    assert len(secrets) >= 9, "a fixture exercises many secret forms"
    out = scrub_secrets(text, platform)
    for secret in secrets:
        assert secret.strip("'\"") not in out, secret
    # Everything but the secret values is byte-identical: neighbours, indentation, trailing options.
    assert out == mask_values(text, secrets)


def test_every_rule_fires_in_some_fixture_of_a_platform_that_uses_it() -> None:
    """No rule is dead data: each one removes a secret from a realistic config (and the fixture
    test above proves the removal is exact)."""
    from dzops import scrub_rules
    from dzops.report.scrub import table

    fired = set()
    for platform in PLATFORMS:
        rules = table(platform)
        lines = (FIXTURES / f"{platform}.conf").read_text().splitlines()
        for rule in rules.rules:
            header = ""
            for line in lines:
                header = line if rules.header.match(line) else header
                if rule.apply(line, header) != line:
                    fired.add(rule.name)
                    break
    every = [spec.name for specs in scrub_rules.FAMILY_RULES.values() for spec in specs]
    assert [name for name in every if name not in fired] == []
    assert len(every) == len(set(every)), "rule names are unique"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_egress_with_the_platform_is_exact_and_without_it_touches_only_secret_lines(platform: str) -> None:
    """Egress runs the platform's rules then the "any" table: that second pass masks nothing more.
    Text of unknown syntax gets the "any" table alone: it may miss a secret, never change a clean line."""
    from dzops.report.scrub import egress

    text, secrets = _fixture(platform)
    assert egress(text, platform) == mask_values(text, secrets)
    for before, after in zip(text.splitlines(), egress(text).splitlines(), strict=True):
        assert before == after or any(secret in before for secret in secrets), before


@pytest.mark.parametrize("platform", PLATFORMS)
def test_scrubbing_twice_changes_nothing_more(platform: str) -> None:
    text, _ = _fixture(platform)
    once = scrub_secrets(text, platform)
    assert scrub_secrets(once, platform) == once


# (platform, line, expected): one row per rule, each in the syntax it comes from.
CASES = [
    ("frr", "password zebra-Secret", f"password {MARKER}"),
    ("frr", "enable password 0 En4ble-X", f"enable password 0 {MARKER}"),
    ("frr", " ip ospf authentication-key OspfK3y", f" ip ospf authentication-key {MARKER}"),
    ("frr", " ip ospf message-digest-key 1 md5 Md5Secret", f" ip ospf message-digest-key 1 md5 {MARKER}"),
    # frr-reload prints a removed line with `no ` before it: the remediation of a console-typed key.
    ("frr", " no ip ospf authentication-key OspfK3y", f" no ip ospf authentication-key {MARKER}"),
    ("frr", " no ip ospf message-digest-key 1 md5 Md5Secret", f" no ip ospf message-digest-key 1 md5 {MARKER}"),
    ("frr", " neighbor 10.0.0.2 password BgpPass1", f" neighbor 10.0.0.2 password {MARKER}"),
    ("frr", "  key-string ChainKey9", f"  key-string {MARKER}"),
    ("frr", " isis password md5 IsisPw", f" isis password md5 {MARKER}"),
    ("frr", " area-password clear AreaPw", f" area-password clear {MARKER}"),
    ("frr", " domain-password md5 DomainPw", f" domain-password md5 {MARKER}"),
    ("ios", "username admin privilege 15 secret 5 $1$abcd$Hash/Value",
     f"username admin privilege 15 secret 5 {MARKER}"),
    ("ios", "username ops privilege 15 secret 9 $9$nhEmQVcz$X.HsgL6x1il0R", f"username ops privilege 15 secret 9 {MARKER}"),
    ("ios", "username ops algorithm-type scrypt secret $9$kFJ/D7Hm$9s8cEJ", f"username ops algorithm-type scrypt secret {MARKER}"),
    ("ios", "enable secret 8 $8$dsYGNam3K1SIJO$7nv/35M/qr6t.dVc7UY9zrJDWRVqncHub1PE9UlMQFs",
     f"enable secret 8 {MARKER}"),
    ("ios", "snmp-server community PubC0mm RO", f"snmp-server community {MARKER} RO"),
    ("ios", "snmp-server host 10.1.1.1 version 2c TrapComm", f"snmp-server host 10.1.1.1 version 2c {MARKER}"),
    ("ios", "snmp-server user nms G v3 auth sha AuthK priv aes 128 PrivK",
     f"snmp-server user nms G v3 auth sha {MARKER} priv aes 128 {MARKER}"),
    ("ios", "radius-server host 10.1.1.1 key 7 RadKey77", f"radius-server host 10.1.1.1 key 7 {MARKER}"),
    ("ios", " server-private 10.1.1.2 key 7 PrivKey77", f" server-private 10.1.1.2 key 7 {MARKER}"),
    ("ios", "crypto isakmp key IkeKey address 203.0.113.9", f"crypto isakmp key {MARKER} address 203.0.113.9"),
    ("ios", "  wpa-psk ascii 0 WifiPsk", f"  wpa-psk ascii 0 {MARKER}"),
    ("ios", "ntp authentication-key 1 md5 NtpKey 7", f"ntp authentication-key 1 md5 {MARKER} 7"),
    ("nxos", "username admin password 5 $5$Q7mG$Wv1q  role network-admin",
     f"username admin password 5 {MARKER}  role network-admin"),
    ("nxos", 'tacacs-server host 10.1.1.1 key 7 "TacKey"', f"tacacs-server host 10.1.1.1 key 7 {MARKER}"),
    ("eos", "aaa root secret sha512 $6$salt$hash", f"aaa root secret sha512 {MARKER}"),
    ("asa", "enable password 8Ry2YjIyt7RRXU24 encrypted", f"enable password {MARKER} encrypted"),
    ("asa", " ikev1 pre-shared-key AsaPsk", f" ikev1 pre-shared-key {MARKER}"),
    ("asa", " ldap-login-password LdapPw", f" ldap-login-password {MARKER}"),
    ("junos", '        encrypted-password "$6$x$y"; ## SECRET-DATA', f"        encrypted-password {MARKER}; ## SECRET-DATA"),
    ("junos", '            secret "$9$abcdefg"; ## SECRET-DATA', f"            secret {MARKER}; ## SECRET-DATA"),
    ("junos", "set snmp community JxComm authorization read-only", f"set snmp community {MARKER} authorization read-only"),
    ("routeros", "add name=staff wpa2-pre-shared-key=WifiKey", f"add name=staff wpa2-pre-shared-key={MARKER}"),
    ("routeros", 'add address=10.1.1.1 secret="Rad Key" service=login', f"add address=10.1.1.1 secret={MARKER} service=login"),
    ("routeros", "add name=u password=P profile=default", f"add name=u password={MARKER} profile=default"),
    ("routeros", "add authentication-password=A encryption-password=E name=v3",
     f"add authentication-password={MARKER} encryption-password={MARKER} name=v3"),
    ("vyos", "set system login user ops authentication plaintext-password 'Plain'",
     f"set system login user ops authentication plaintext-password {MARKER}"),
    ("vyos", "set vpn ipsec site-to-site peer 1.2.3.4 authentication pre-shared-secret 'Psk'",
     f"set vpn ipsec site-to-site peer 1.2.3.4 authentication pre-shared-secret {MARKER}"),
    ("cumulus", "net add bgp neighbor swp51 password BgpPw", f"net add bgp neighbor swp51 password {MARKER}"),
    ("hostapd", "wpa_passphrase=Punakha-Staff-Psk", f"wpa_passphrase={MARKER}"),
    ("hostapd", "sae_password=Sae-Secret-1", f"sae_password={MARKER}"),
    ("hostapd", "wpa_psk=0123456789abcdef0123", f"wpa_psk={MARKER}"),
    ("hostapd", "auth_server_shared_secret=RadiusShared", f"auth_server_shared_secret={MARKER}"),
    ("linux", "dzadmin:$6$salt$LongHashValue:1000:1000::/home/dzadmin:/bin/bash",
     f"dzadmin:{MARKER}:1000:1000::/home/dzadmin:/bin/bash"),
    ("linux", "rocommunity Snmp-Comm 10.0.0.0/8", f"rocommunity {MARKER} 10.0.0.0/8"),
    ("linux", "smtp_password = Mail-Pass-9", f"smtp_password = {MARKER}"),
    ("linux", "//srv/s /mnt cifs username=bob,password=CifsPw,uid=1000 0 0",
     f"//srv/s /mnt cifs username=bob,password={MARKER},uid=1000 0 0"),
    ("linux", "deb https://deploy:AptToken@pkgs.example/debian bookworm main",
     f"deb https://deploy:{MARKER}@pkgs.example/debian bookworm main"),
    ("linux", "    wpa-psk IfPsk", f"    wpa-psk {MARKER}"),
]


@pytest.mark.parametrize(("syntax", "line", "expected"), CASES,
                         ids=[f"{c[0]}-{i}-{c[1].split()[0].split('=')[0].split(':')[0]}" for i, c in enumerate(CASES)])
def test_secret_lines_keep_keyword_and_lose_value(syntax: str, line: str, expected: str) -> None:
    assert scrub(line + "\n", syntax) == expected + "\n"


KEPT = [
    ("frr", "hostname gewog-talo-rtr1"),
    ("frr", " ip ospf area 0"),
    ("frr", " ip ospf authentication message-digest"),
    ("frr", "key chain wan"),
    ("frr", " key 1"),
    ("frr", " area 0 authentication message-digest"),
    ("ios", " description password reset desk"),
    ("ios", "  key-string"),  # an SSH public key follows on the next lines: not a secret
    ("ios", "service password-encryption"),
    ("ios", "snmp-server location Talo gewog office"),
    ("ios", " authentication key-chain WAN-KEYS"),
    ("ios", "aaa group server radius DZ-RADIUS"),
    ("junos", "    community DZ-NETS members 65030:100;"),
    ("routeros", 'add group=full name=dzadmin comment="password reset desk"'),
    ("routeros", 'add key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO1p" user=dzadmin'),
    ("vyos", "set interfaces ethernet eth0 description 'password reset desk'"),
    ("vyos", "set protocols ospf area 0 authentication 'md5'"),
    ("hostapd", "ssid=Punakha-Staff"),
    ("hostapd", "wpa_key_mgmt=WPA-PSK"),
    ("hostapd", "wpa_psk_file=/etc/hostapd/wlan0.psk"),
    ("linux", "PasswordAuthentication no"),
    ("linux", "dzadmin:x:1000:1000::/home/dzadmin:/bin/bash"),
    ("linux", "%sudo   ALL=(ALL:ALL) ALL"),
    ("linux", "deb http://deb.debian.org/debian bookworm main"),
    ("linux", "//srv/s /mnt cifs credentials=/etc/cifs-creds,uid=1000 0 0"),
]


@pytest.mark.parametrize(("syntax", "line"), KEPT, ids=[f"{s}-{line.strip()[:24]}" for s, line in KEPT])
def test_ordinary_lines_are_kept_verbatim(syntax: str, line: str) -> None:
    assert scrub(line + "\n", syntax) == line + "\n"
    assert scrub_secrets(line, "any") == line


@pytest.mark.parametrize(("line", "expected"), [
    (" no ip ospf authentication-key S3cr3t", f" no ip ospf authentication-key {MARKER}"),
    ("r1: username ops privilege 15 secret 9 $9$abc", f"r1: username ops privilege 15 secret 9 {MARKER}"),
    ("-  no ip ospf message-digest-key 1 md5 S3cr3t", f"-  no ip ospf message-digest-key 1 md5 {MARKER}"),
    ("+wpa_passphrase=Hunter22", f"+wpa_passphrase={MARKER}"),
    # Unknown syntax: RouterOS' key=value rule takes the whole token (more than needed, never less).
    ("failed: mount //s/x /mnt -o password=Cifs-Pw,uid=1", f"failed: mount //s/x /mnt -o password={MARKER}"),
    ("password reset needed on r1", "password reset needed on r1"),  # a message, not a config line
], ids=["no-form", "after-prefix", "remediation", "diff", "cifs-in-message", "plain-message"])
def test_text_of_unknown_syntax_loses_unambiguous_secrets(line: str, expected: str) -> None:
    assert scrub_secrets(line, "any") == expected


@pytest.mark.parametrize("platform", ["ios", "frr"])
def test_radius_block_key_is_a_secret_but_a_key_chain_key_number_is_not(platform: str) -> None:
    text = "radius server ISE\n key 0 Block-Key\nkey chain K\n key 1\n  key-string Chain-Key\n"
    assert scrub(text, platform) == f"radius server ISE\n key 0 {MARKER}\nkey chain K\n key 1\n  key-string {MARKER}\n"


def test_routeros_snmp_community_name_is_the_secret_only_in_its_section() -> None:
    text = "/snmp community\nadd name=Comm-Name\n/system identity\nset name=dz-ros1\n"
    assert scrub(text, "routeros") == f"/snmp community\nadd name={MARKER}\n/system identity\nset name=dz-ros1\n"


VOLATILE = [
    ("frr", "Building configuration..."),
    ("frr", "Current configuration:"),
    ("ios", "Current configuration : 1234 bytes"),
    ("ios", "! Last configuration change at 10:11:12 BTT Mon Jan 5 2026 by admin"),
    ("ios", "! NVRAM config last updated at 10:11:12 BTT Mon Jan 5 2026"),
    ("ios", "ntp clock-period 17179869"),
    ("ios", "router uptime is 3 weeks, 2 days"),
    ("nxos", "!Time: Mon Jan  5 10:11:12 2026"),
    ("asa", "Cryptochecksum:0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
    ("junos", "## Last commit: 2026-01-05 10:11:12 BTT by dzadmin"),
    ("routeros", "# 2026-01-05 10:11:12 by RouterOS 7.15.3"),
    ("linux", "# Generated by NetworkManager on 2026-01-05 10:11"),
]


@pytest.mark.parametrize(("syntax", "line"), VOLATILE, ids=[f"{s}-{line[:24]}" for s, line in VOLATILE])
def test_volatile_lines_are_dropped_from_backups_only(syntax: str, line: str) -> None:
    assert scrub(f"hostname r1\n{line}\nexit\n", syntax) == "hostname r1\nexit\n"
    assert scrub_secrets(f"hostname r1\n{line}\nexit\n", syntax) == f"hostname r1\n{line}\nexit\n"


def test_private_key_blocks_lose_their_body() -> None:
    text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n"
    out = scrub(text, "linux")
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in out and "AAAABG5vbmU=" not in out
    assert out.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n" + MARKER)


@pytest.mark.parametrize(("text", "secrets", "expected"), [
    ("motd Druk-Net-Demo-2026 here", ["Druk-Net-Demo-2026"], f"motd {MARKER} here"),
    ("a Druk-Net and Druk-Net-2026", ["Druk-Net", "Druk-Net-2026"], f"a {MARKER} and {MARKER}"),
    ("keep a b c", ["a", "b"], "keep a b c"),
    ("nothing to hide", [], "nothing to hide"),
], ids=["value-anywhere", "longest-first", "too-short-ignored", "no-secrets"])
def test_known_secret_values_are_masked_anywhere(text: str, secrets: list[str], expected: str) -> None:
    assert mask_values(text, secrets) == expected


def test_inventory_secrets_are_every_vault_value() -> None:
    import yaml

    from dzops.inventory.loader import load_inventory

    sample = Path(__file__).resolve().parents[2] / "inventory"
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = (sample / "DEMO-ONLY-vault-password.txt").read_bytes().strip()
    vault = VaultLib([("default", VaultSecret(password))])
    values = yaml.safe_load(vault.decrypt((sample / "group_vars/all/vault.yml").read_bytes()))
    found = set(inventory_secrets(load_inventory(sample)))
    assert set(map(str, values.values())) <= found
