"""The scrub rules: data only, one table per configuration syntax, read by `dzops.scrub`.

A rule is a regular expression searched in one line (case-insensitive). Its named groups `v`, `v2`,
... are the secret values: each is replaced by the marker, every other character of the line stays
as it was, so a line that holds no secret is never changed. A rule with `within` applies only inside
a block whose header line (see BLOCK_HEADER) matches that expression: ` key 7 ...` is a secret in a
`radius server` block and a key number in a `key chain`.

Rules are grouped by family and combined per platform at the end. `anywhere=True` marks the rules
that only fire after an unambiguous secret keyword: those also scrub text of unknown syntax (JSON
strings, messages, logs), the "any" table.

Coverage: every secret form of Oxidized's models for these platforms (ios, nxos, eos, asa, junos,
routeros, vyatta, cumulus), plus SNMPv3 keys, key chains, IKE keys, WPA keys, local user hashes,
RADIUS/TACACS keys in block syntax, BGP/OSPF/IS-IS authentication, Linux credentials.
"""

from __future__ import annotations

from typing import NamedTuple


class RuleSpec(NamedTuple):
    name: str
    regex: str
    within: str | None = None  # the enclosing block's header must match this
    anywhere: bool = False  # safe on text of unknown syntax (the "any" table)


# Building blocks of the expressions. `L` starts an IOS-style line: indentation, and the `no ` that
# frr-reload puts before every line it removes (remediation shows removals too).
L = r"^\s*(?:no\s+)?"
TOKEN = r"(?P<v>\S+)"
REST = r"(?P<v>\S(?:.*\S)?)"  # the rest of the line, trailing blanks kept
TYPE = r"(?:[0-9]\s+)?"  # IOS' encryption type digit (0 clear, 5/8/9 hashes, 6/7 reversible)
# Lazy value then options IOS, NX-OS and ASA print after a password.
REST_OPTS = (r"(?P<v>\S(?:.*?\S)?)(?:\s+(?:encrypted|pbkdf2|nt-encrypted|mschap|privilege\s+\d+|role\s+\S+"
             r"|level-[12]|authenticate|localizedkey|udp-port\s+\d+))*\s*$")
QUOTED = r"""(?P<v>"(?:[^"\\]|\\.)+"|'[^']+'|[^\s;{}"']+)"""  # Junos, VyOS: quoted or bare, up to ; or {
ROS_VALUE = r"""(?P<v>"(?:[^"\\]|\\.)*"|[^\s"]+)"""  # RouterOS export: key="quoted \" value" or key=bare

CISCO = (
    RuleSpec("enable-secret", L + r"enable\s+(?:password|secret)(?:\s+level\s+\d+)?\s+(?:sha512\s+|[0-9]\s+)?"
             + REST_OPTS, anywhere=True),
    RuleSpec("username-secret", L + r"username\s+\S+(?:\s+(?:privilege\s+\d+|role\s+\S+|view\s+\S+|"
             r"algorithm-type\s+\S+|nopassword))*\s+(?:password|secret)\s+(?:sha512\s+|sha256\s+|[0-9]\s+)?"
             + REST_OPTS, anywhere=True),
    RuleSpec("line-password", L + r"(?:password|secret)\s+" + TYPE + REST_OPTS),
    RuleSpec("aaa-root-secret", L + r"aaa\s+root\s+secret\s+(?:sha512\s+|[0-9]\s+)?" + TOKEN, anywhere=True),
    RuleSpec("snmp-community", L + r"snmp-server\s+community\s+" + TOKEN, anywhere=True),
    RuleSpec("snmp-host-community-keyword", L + r"snmp-server\s+host\b.*?\bcommunity\s+" + TYPE + TOKEN,
             anywhere=True),  # ASA: snmp-server host IFNAME ADDRESS community X
    RuleSpec("snmp-host-community", L + r"snmp-server\s+host\s+(?!.*\bcommunity\b)\S+(?:\s+(?:vrf\s+\S+|informs|traps|"
             r"version\s+(?:1|2c|3\s+(?:auth|noauth|priv)))|use-vrf\s+\S+)*\s+(?!community\b|version\b)" + TOKEN,
             anywhere=True),
    RuleSpec("snmp-mib-community-map", L + r"snmp-server\s+mib\s+community-map\s+" + TOKEN, anywhere=True),
    RuleSpec("snmpv3-auth", L + r"snmp-server\s+user\b.*?\bauth\s+(?:md5|sha\d*|sha-\d+)\s+" + TOKEN, anywhere=True),
    RuleSpec("snmpv3-priv", L + r"snmp-server\s+user\b.*?\bpriv\s+(?:(?:aes(?:-?\d+)?|3?des(?:56)?)(?:\s+\d+)?\s+)?"
             + TOKEN, anywhere=True),
    RuleSpec("radius-tacacs-server-key", L + r"(?:radius-server|tacacs-server)\b.*?\bkey\s+" + TYPE + TOKEN,
             anywhere=True),
    RuleSpec("server-private-key", L + r"server-private\s+\S+.*?\bkey\s+" + TYPE + TOKEN, anywhere=True),
    RuleSpec("aaa-block-key", L + r"key\s+" + TYPE + TOKEN,
             within=r"^(?:radius\s+server|tacacs\s+server|aaa-server)\b"),
    RuleSpec("aaa-block-pac-key", L + r"pac\s+key\s+" + TYPE + TOKEN, anywhere=True),
    RuleSpec("key-type-7", L + r"key\s+7\s+" + TOKEN),  # Oxidized's `key 7`: never a key-chain key number
    RuleSpec("key-string", r"\bkey-string\s+" + TYPE + REST, anywhere=True),
    RuleSpec("isakmp-key", L + r"crypto\s+isakmp\s+key\s+" + TYPE + TOKEN, anywhere=True),
    RuleSpec("pre-shared-key", L + r"(?:ikev[12]\s+(?:(?:remote|local)-authentication\s+)?)?pre-shared-key\s+"
             r"(?:(?:local|remote)\s+)?" + TYPE + r"(?!address\b|hostname\b|ascii-text\b|hexadecimal\b)" + TOKEN, anywhere=True),
    RuleSpec("keyring-pre-shared-key", L + r"pre-shared-key\s+(?:address|hostname)\s+.*?\bkey\s+" + TYPE + TOKEN,
             anywhere=True),
    RuleSpec("wpa-psk", L + r"wpa-psk\s+(?:ascii|hex)\s+" + TYPE + TOKEN, anywhere=True),
    RuleSpec("ospf-authentication-key", L + r"(?:ip\s+)?ospf\s+authentication-key\s+" + TYPE + REST, anywhere=True),
    RuleSpec("ospf-message-digest-key", L + r"(?:ip\s+)?(?:ospf\s+)?message-digest-key\s+\d+\s+(?:md5|sha\d*)\s+"
             + TYPE + REST, anywhere=True),
    RuleSpec("ospf-ipsec", L + r"(?:ip|ipv6)\s+ospf\s+authentication\s+ipsec\s+spi\s+\d+\s+(?:md5|sha1)\s+" + TYPE
             + TOKEN, anywhere=True),
    RuleSpec("ospf6-key", r"\bkey-id\s+\d+\s+hash-algo\s+\S+\s+key\s+" + TOKEN, anywhere=True),
    RuleSpec("rip-authentication", L + r"ip\s+rip\s+authentication\s+string\s+" + TOKEN, anywhere=True),
    RuleSpec("bgp-neighbor-password", r"(?:^|\s)neighbor\s+\S+\s+password\s+" + TYPE + REST, anywhere=True),
    RuleSpec("isis-password", L + r"isis\s+password\s+(?:clear\s+|md5\s+)?" + TOKEN, anywhere=True),
    RuleSpec("isis-area-domain-password", L + r"(?:area|domain)-password\s+(?:clear\s+|md5\s+)?" + TOKEN,
             anywhere=True),
    RuleSpec("authentication-key", L + r"(?:isis\s+)?authentication\s+key\s+" + TYPE + TOKEN),
    RuleSpec("authentication-text", r"\bauthentication\s+(?:text|md5\s+key)\s+" + TOKEN, anywhere=True),
    RuleSpec("ntp-authentication-key", L + r"ntp\s+authentication-key\s+\d+\s+\S+\s+" + TOKEN, anywhere=True),
    RuleSpec("ppp-password", L + r"ppp\s+(?:chap|pap)\b.*?\bpassword\s+" + TYPE + TOKEN, anywhere=True),
    RuleSpec("ldap-login-password", r"\bldap-login-password\s+" + TOKEN, anywhere=True),
    RuleSpec("asa-passwd", L + r"passwd\s+" + TOKEN),
)

JUNOS = (
    RuleSpec("junos-encrypted-password", r"\bencrypted-password\s+" + QUOTED, anywhere=True),
    RuleSpec("junos-secret", r"(?:^|\s)(?:secret|authentication-key|simple-password|privacy-key|"
             r"hello-authentication-key|shared-secret|pre-shared-key\s+(?:ascii-text|hexadecimal))\s+(?!\d+\s+type\b)"
             + QUOTED),
    RuleSpec("junos-ntp-key", r"\bauthentication-key\s+\d+\s+type\s+\S+\s+value\s+" + QUOTED),
    RuleSpec("junos-md5-key", r"\bmd5\s+\d+\s+key\s+" + QUOTED),
    RuleSpec("junos-9-hash", r'"(?P<v>\$9\$[^"]*)"', anywhere=True),  # Junos' reversible "encryption"
    RuleSpec("junos-community", r"^\s*community\s+" + QUOTED + r"\s*[{;]"),
    RuleSpec("junos-set-community", r"^\s*(?:set|delete|deactivate)\s+snmp\s+community\s+" + QUOTED),
)

ROUTEROS = (
    RuleSpec("routeros-secret", r"(?<![\w-])(?:password|secret|wpa-pre-shared-key|wpa2-pre-shared-key|"
             r"authentication-password|encryption-password|passphrase|ipsec-secret|auth-key|tcp-md5-key|"
             r"private-key|preshared-key|pre-shared-key|management-protection-key|static-key-[0-3]|"
             r"(?:trap-)?community)=" + ROS_VALUE, anywhere=True),
    # In /snmp community the community's name is the secret.
    RuleSpec("routeros-snmp-community-name", r"(?<![\w-])name=" + ROS_VALUE, within=r"^/snmp\s+community\b"),
)

VYOS = (
    RuleSpec("vyos-secret", r"(?:^|\s)(?:encrypted-password|plaintext-password|password|pre-shared-secret|"
             r"private-key|preshared-key|passphrase|md5-key|shared-secret-key|secret)\s+" + QUOTED),
    RuleSpec("vyos-plaintext-password", r"\b(?:plaintext-password|pre-shared-secret|encrypted-password)\s+"
             + QUOTED, anywhere=True),
    RuleSpec("vyos-server-key", r"\b(?:radius|tacacs)\s+server\s+\S+\s+key\s+" + QUOTED, anywhere=True),
    # `key` in curly syntax, except an SSH public key (base64 of "ssh-..." starts with AAAA).
    RuleSpec("vyos-key", r"^\s*key\s+(?!['\"]?AAAA)" + QUOTED + r"\s*$"),
    RuleSpec("vyos-community", r"^\s*community\s+" + QUOTED + r"\s*\{"),
    RuleSpec("vyos-set-community", r"\bservice\s+snmp\s+community\s+" + QUOTED),
)

NCLU = (  # Cumulus' `net add ...` and `nv set ...` commands
    RuleSpec("cumulus-snmp-community", r"\breadonly-community(?:-v6)?\s+" + TOKEN, anywhere=True),
    RuleSpec("cumulus-hashed-password", r"\bhashed-password\s+" + QUOTED, anywhere=True),
    RuleSpec("cumulus-aaa-secret", r"\b(?:radius|tacacs)\s+server\s+\S+\s+(?:secret|key)\s+" + QUOTED,
             anywhere=True),
)

HOSTAPD = tuple(
    RuleSpec(f"hostapd-{key.replace('[0-3]', 'N')}", rf"^\s*{key}\s*=\s*" + REST, anywhere=True)
    for key in ("wpa_passphrase", "sae_password", "wpa_psk", "auth_server_shared_secret",
                "acct_server_shared_secret", "private_key_passwd", "wep_key[0-3]", "pac_opaque_encr_key", "ap_pin")
) + (
    RuleSpec("hostapd-r0kh", r"^\s*r0kh\s*=\s*\S+\s+\S+\s+" + TOKEN, anywhere=True),
    RuleSpec("hostapd-r1kh", r"^\s*r1kh\s*=\s*\S+\s+\S+\s+" + TOKEN, anywhere=True),
    RuleSpec("hostapd-radius-das-client", r"^\s*radius_das_client\s*=\s*\S+\s+" + TOKEN, anywhere=True),
)

LINUX = (
    # /etc/passwd with a hash still in field 2, /etc/shadow (also locked `!$6$...`): the name stays.
    RuleSpec("crypt-hash-field", r"^[a-z_][a-z0-9_.-]*\$?:(?P<v>!*\$[^:]+)(?=:)", anywhere=True),
    RuleSpec("snmpd-community", r"^\s*(?:ro|rw)community6?\s+" + TOKEN),
    RuleSpec("snmpd-com2sec", r"^\s*com2sec6?\s+\S+\s+\S+\s+" + TOKEN),
    RuleSpec("snmpd-createuser", r"^\s*createUser\s+(?:-e\s+\S+\s+)?\S+\s+(?:MD5|SHA\S*)\s+(?P<v>\S+)"
             r"(?:\s+(?:DES|AES\S*)\s+(?P<v2>\S+))?", anywhere=True),
    RuleSpec("fstab-cifs-password", r"(?<=[\s,])(?:password|pass)=(?P<v>[^,\s]+)", anywhere=True),
    RuleSpec("url-credentials", r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<v>[^/\s@]+)@", anywhere=True),
    RuleSpec("ifupdown-wpa-psk", r"^\s*(?:wpa-psk|wpa-passphrase|wpa-password)\s+(?!(?:ascii|hex)\s)" + REST, anywhere=True),
    RuleSpec("netrc-password", r"^\s*(?:machine\s+\S+\s+)?(?:login\s+\S+\s+)?password\s+" + TOKEN),
    RuleSpec("key-value-secret", r"^\s*(?:export\s+)?[\w.-]*(?:password|passwd|secret|psk|token|api_?key|"
             r"secret_access_key|secret_key)\s*[=:]\s*" + REST),
    # JSON and YAML written by tools (ansible-runner's files): "smtp_password": "..." / db_secret: '...'.
    RuleSpec("json-secret-field", r'"[\w.-]*(?:password|passwd|secret|psk|passphrase|token|api_?key)[\w.-]*"\s*:\s*'
             r'"(?P<v>(?:[^"\\]|\\.)+)"', anywhere=True),  # the quotes stay: the file is still JSON
    RuleSpec("key-equals-secret", r"(?:^|\s)[\w.-]*(?:password|passwd|secret|psk|token|api_?key)=(?P<v>[^\s,;&]+)",
             anywhere=True),
)

# Lines never changed whatever they contain: free text an operator typed (a description that says
# "password reset desk" is not a password).
SKIP_LINES: dict[str, str] = {
    "cisco": r"^[+-]?\s*(?:no\s+)?(?:description|remark|alias\s+exec|banner|name)\s",
    "junos": r"^[+-]?\s*(?:set\s+.*\s)?description\s",
    "vyos": r"^[+-]?\s*(?:set\s+.*\s)?description\s",
}

VOLATILE: dict[str, tuple[str, ...]] = {
    "cisco": (
        r"^Building configuration\.\.\.\s*$",
        r"^Current configuration\s*:.*$",
        r"^!\s*(?:Last configuration change|NVRAM config last updated|No configuration change since).*$",
        r"^!\s*Time:.*$",
        r"^ntp clock-period\s+\d+\s*$",
        r"(?i).*\buptime is\b.*",
        r"^:\s*(?:Saved|Written by|Serial Number:).*$",  # ASA
        r"^Cryptochecksum:\S+\s*$",  # ASA
    ),
    "junos": (r"^#{1,2}\s*Last (?:commit|changed):.*$",),
    "routeros": (r"^#\s.*\bby RouterOS\b.*$",),
    "vyos": (),
    "linux": (r"^#\s*(?:Generated|Created|Last modified|Written)\b.*\d{4}.*$",),
}

# Every rule above needs one of these in its line: a line without any is left alone without trying
# the rules one by one (most lines of a config; egress runs over every message too).
TRIGGER = (r"pass|secret|key|communit|psk|auth|priv|token|://|:!*\$|\$9\$|kh\s*=|das_client|ap_pin|"
           r"createuser|com2sec|name=|snmp-server\s+host")

# Which families make each platform's table.
PLATFORM_FAMILIES: dict[str, tuple[str, ...]] = {
    "ios": ("cisco",),
    "nxos": ("cisco",),
    "eos": ("cisco",),
    "asa": ("cisco",),
    "frr": ("cisco",),
    "junos": ("junos",),
    "routeros": ("routeros",),
    "vyos": ("vyos",),
    "cumulus": ("linux", "cisco", "nclu"),  # Linux files, frr.conf, net/nv commands
    "hostapd": ("hostapd", "linux"),
    "linux": ("linux",),
}
FAMILY_RULES: dict[str, tuple[RuleSpec, ...]] = {
    "cisco": CISCO, "junos": JUNOS, "routeros": ROUTEROS, "vyos": VYOS, "nclu": NCLU, "hostapd": HOSTAPD,
    "linux": LINUX,
}
# A block starts at a line that begins in column 0 (RouterOS: at a `/path` line).
BLOCK_HEADER: dict[str, str] = {"routeros": r"^/", "default": r"^(?![\s!#]|$)"}
