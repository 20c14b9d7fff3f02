"""Make a configuration fit for a git repository and a report: no secrets, no volatile lines.

Pure functions over text. The rules are data (a table of regular expressions per config syntax):
a secret keeps its keyword and loses its value, replaced by one fixed marker, so a diff still shows
*that* a key changed place without showing the key. Volatile lines (timestamps, uptime counters,
the "Building configuration..." banner) are dropped so that a backup changes only when the
configuration does. On top of the rules, every value the caller knows to be secret (the Vault's
values) is replaced wherever it appears, as a last line of defence for syntaxes no rule knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MARKER = "<removed>"


@dataclass(frozen=True)
class Rule:
    """A line matching `pattern` keeps group 1 (the keyword part) and loses the rest to MARKER.

    With a group 2, only that group (the value) is replaced and the rest of the line stays.
    """

    pattern: re.Pattern[str]

    def apply(self, line: str) -> str:
        match = self.pattern.match(line)
        if not match:
            return line
        if match.re.groups >= 2:
            return line[:match.start(2)] + MARKER + line[match.end(2):]
        return f"{match.group(1)}{MARKER}"


def _rule(regex: str) -> Rule:
    return Rule(re.compile(regex, re.IGNORECASE))


# IOS-style syntaxes (FRR's vtysh, IOS): the keyword and everything before the value survive.
_CLI_SECRETS = (
    _rule(r"^(\s*(?:enable\s+)?(?:password|secret)\s+(?:\d+\s+)?)\S.*$"),
    _rule(r"^(\s*username\s+\S+(?:\s+privilege\s+\d+)?\s+(?:password|secret)\s+(?:\d+\s+)?)\S.*$"),
    _rule(r"^(\s*ip\s+ospf\s+authentication-key\s+)\S.*$"),
    _rule(r"^(\s*ip\s+ospf\s+message-digest-key\s+\d+\s+md5\s+)\S.*$"),
    _rule(r"^(\s*neighbor\s+\S+\s+password\s+)\S.*$"),
    _rule(r"^(\s*key-string\s+(?:\d+\s+)?)\S.*$"),
    _rule(r"^(\s*snmp-server\s+community\s+)\S.*$"),
    _rule(r"^(\s*(?:radius-server|tacacs-server)\s+(?:host\s+\S+\s+)?key\s+(?:\d+\s+)?)\S.*$"),
    _rule(r"^(\s*(?:pre-shared-key|authentication\s+text|authentication\s+md5\s+key)\s+)\S.*$"),
)
_CLI_VOLATILE = (
    re.compile(r"^Building configuration\.\.\.\s*$"),
    re.compile(r"^Current configuration\s*:.*$"),
    re.compile(r"^!\s*(Last configuration change|NVRAM config last updated|No configuration change since).*$"),
    re.compile(r"^!\s*Time:.*$"),
    re.compile(r"^ntp clock-period\s+\d+\s*$"),
    re.compile(r".*\buptime is\b.*", re.IGNORECASE),
)

# hostapd.conf and friends: key=value.
_HOSTAPD_SECRETS = tuple(
    _rule(rf"^(\s*{key}\s*=\s*)\S.*$")
    for key in ("wpa_passphrase", "sae_password", "wpa_psk", "auth_server_shared_secret",
                "acct_server_shared_secret", "radius_server_shared_secret", "private_key_passwd",
                "private_key_passwd2", "eap_user_password", "wep_key\\d", "mesh_psk", "password")
)

# Linux system files.
_LINUX_SECRETS = (
    # /etc/passwd with a hash still in field 2 (no shadow file): keep the name, lose the hash.
    Rule(re.compile(r"^([a-z_][a-z0-9_.-]*\$?:)(\$[^:]+)(?=:)")),
    _rule(r"^(\s*(?:ro|rw)community6?\s+)\S.*$"),  # snmpd.conf
    _rule(r"^(\s*com2sec6?\s+\S+\s+\S+\s+)\S.*$"),
    _rule(r"^(\s*(?:\S*password|\S*passwd|\S*secret|\S*psk|\S*token|\S*api_key)\s*[=:]\s*)\S.*$"),
    _rule(r"^(\s*(?:wpa_passphrase|sae_password|wpa_psk)\s*=\s*)\S.*$"),
)
_LINUX_VOLATILE = (
    re.compile(r"^#\s*(Generated|Created|Last modified|Written)\b.*\d{4}.*$", re.IGNORECASE),
)

SECRET_RULES: dict[str, tuple[Rule, ...]] = {
    "frr": _CLI_SECRETS,
    "ios": _CLI_SECRETS,
    "hostapd": _HOSTAPD_SECRETS + _LINUX_SECRETS,
    "linux": _LINUX_SECRETS,
}
VOLATILE_LINES: dict[str, tuple[re.Pattern[str], ...]] = {
    "frr": _CLI_VOLATILE,
    "ios": _CLI_VOLATILE,
    "hostapd": _LINUX_VOLATILE,
    "linux": _LINUX_VOLATILE,
}

_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL)


def scrub(text: str, syntax: str, secrets: Iterable[str] = ()) -> str:
    """The text without secrets and volatile lines, for a backup or a report.

    >>> print(scrub("Building configuration...\\nhostname r1\\npassword zebra\\n ip ospf authentication-key k3y\\n", "frr"), end="")
    hostname r1
    password <removed>
     ip ospf authentication-key <removed>
    >>> scrub("ssid=Staff\\nwpa_passphrase=Punakha-Staff\\n", "hostapd")
    'ssid=Staff\\nwpa_passphrase=<removed>\\n'
    >>> scrub("motd welcome s3cr3t-value\\n", "linux", secrets=["s3cr3t-value"])
    'motd welcome <removed>\\n'
    """
    text = _PRIVATE_KEY.sub(lambda m: f"-----BEGIN {m.group(1)}-----\n{MARKER}\n-----END {m.group(1)}-----", text)
    rules = SECRET_RULES.get(syntax, _LINUX_SECRETS)
    volatile = VOLATILE_LINES.get(syntax, ())
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if any(p.match(body) for p in volatile):
            continue
        for rule in rules:
            scrubbed = rule.apply(body)
            if scrubbed != body:
                body = scrubbed
                break
        out.append(body + line[len(line.rstrip("\r\n")):])
    return mask_values("".join(out), secrets)


def mask_values(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of a known secret value, longest first (so no prefix is left over).

    Values shorter than 4 characters are ignored: masking 'a' everywhere would wreck the text and
    protect nothing.

    >>> mask_values("user dzadmin pass Druk-Net and Druk-Net-2026", ["Druk-Net", "Druk-Net-2026", "x"])
    'user dzadmin pass <removed> and <removed>'
    """
    for value in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(value, MARKER)
    return text


def inventory_secrets(inventory: Any) -> list[str]:
    """Every secret value the inventory holds (device passwords, PSKs, RADIUS and SMTP secrets, hashes).

    These are the Vault's values once templated into the inventory; `scrub(secrets=...)` removes
    them from any text.
    """
    from pydantic import BaseModel, SecretStr

    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(inventory)
    return sorted(set(found))
