"""The one egress filter: text leaving dzops keeps no secret, whatever layer writes it.

Pure functions over text, importable from every layer. The rules are data (`dzops.scrub_rules`, a
table of regular expressions per configuration syntax): a secret keeps its keyword and loses its
value to one fixed marker, so a diff still shows *that* a key changed without showing the key.
On top of the rules, every value known to be secret (the Vault's values) is replaced wherever it
appears, as a last line of defence for syntaxes no rule knows.

Two uses:
- `scrub(text, syntax, secrets)`: for a backup, also drops volatile lines (timestamps, uptime
  counters, the "Building configuration..." banner) so a backup changes only when the config does;
- `egress(text, syntax)` / `egress_data(obj)`: for anything printed, logged, mailed or written as a
  report: secrets only, with the process-wide registry of secret values that the CLI fills right
  after it loads the inventory (`register_secrets`). Text of unknown syntax gets the "any" table:
  only values after unambiguous secret keywords.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from dzops import scrub_rules

MARKER = "<removed>"
ANY = "any"  # the table for text of unknown syntax
SYNTAXES: tuple[str, ...] = tuple(scrub_rules.PLATFORM_FAMILIES)  # the platforms that have rules

_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL)
_DIFF_MARK = re.compile(r"^[+-](?![+-])")
_TRIGGER = re.compile(scrub_rules.TRIGGER, re.IGNORECASE)


@dataclass(frozen=True)
class Rule:
    """One secret form: the named groups `v`, `v2`, ... of `pattern` are replaced by MARKER."""

    name: str
    pattern: re.Pattern[str]
    within: re.Pattern[str] | None = None

    def apply(self, line: str, header: str = "") -> str:
        """The line with this rule's secret values replaced (the very same line when none).

        >>> rule = Rule("x", re.compile(r"\\bkey\\s+(?P<v>\\S+)"))
        >>> rule.apply("crypto key abc address 1.2.3.4")
        'crypto key <removed> address 1.2.3.4'
        """
        if self.within is not None and not self.within.search(header):
            return line
        # A value that starts with the marker was scrubbed already (by a rule of the text's own syntax).
        spans = [m.span(name) for m in self.pattern.finditer(line)
                 for name, value in m.groupdict().items()
                 if name.startswith("v") and value is not None and not value.startswith(MARKER)]
        if not spans:
            return line
        out, pos = [], 0
        for start, end in sorted(spans):
            if start < pos:
                continue
            out += [line[pos:start], MARKER]
            pos = end
        out.append(line[pos:])
        return "".join(out)


@dataclass(frozen=True)
class Table:
    """The rules, never-touched lines, volatile lines and block headers of one syntax."""

    rules: tuple[Rule, ...]
    skip: tuple[re.Pattern[str], ...]
    volatile: tuple[re.Pattern[str], ...]
    header: re.Pattern[str]


@cache
def _compile(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE)


@cache
def table(syntax: str) -> Table:
    """The compiled table of a syntax; unknown names get the conservative "any" table."""
    if syntax in scrub_rules.PLATFORM_FAMILIES:
        families = scrub_rules.PLATFORM_FAMILIES[syntax]
        specs = [s for f in families for s in scrub_rules.FAMILY_RULES[f]]
    else:
        # Text of unknown syntax: a config line may sit after a prefix ("r1: username ..."), so the
        # rules anchored at the line start also fire after a blank.
        families = tuple(scrub_rules.FAMILY_RULES)
        specs = [s._replace(regex="(?:^|(?<=\\s))" + s.regex[1:]) if s.regex.startswith(scrub_rules.L) else s
                 for f in families for s in scrub_rules.FAMILY_RULES[f] if s.anywhere]
    header = scrub_rules.BLOCK_HEADER.get(syntax, scrub_rules.BLOCK_HEADER["default"])
    return Table(
        rules=tuple(Rule(s.name, _compile(s.regex), _compile(s.within) if s.within else None) for s in specs),
        skip=tuple(_compile(scrub_rules.SKIP_LINES[f]) for f in families if f in scrub_rules.SKIP_LINES),
        volatile=tuple(re.compile(v) for f in families for v in scrub_rules.VOLATILE.get(f, ())),
        header=re.compile(header),
    )


def rules_document(syntax: str) -> dict[str, Any]:
    """A syntax's table as plain data, for a masking filter outside dzops to apply the same way.

    roles/dz_router_access ships `rules_json("frr")` so a router's read-only shell masks exactly
    what dzops masks (no second rule set); a test keeps the shipped file equal to this.

    >>> doc = rules_document("frr")
    >>> doc["marker"], doc["flags"], "ospf-authentication-key" in [r["name"] for r in doc["rules"]]
    ('<removed>', 'IGNORECASE', True)
    """
    families = scrub_rules.PLATFORM_FAMILIES[syntax]
    return {
        "generated_by": f"dzops.scrub.rules_json({syntax!r}): do not edit, regenerate",
        "syntax": syntax,
        "marker": MARKER,
        "flags": "IGNORECASE",  # rules, skip and trigger; header, diff mark and private key are case-sensitive
        "trigger": scrub_rules.TRIGGER,
        "header": scrub_rules.BLOCK_HEADER.get(syntax, scrub_rules.BLOCK_HEADER["default"]),
        "diff_mark": _DIFF_MARK.pattern,
        "private_key": _PRIVATE_KEY.pattern,
        "skip": [scrub_rules.SKIP_LINES[f] for f in families if f in scrub_rules.SKIP_LINES],
        "rules": [{"name": s.name, "regex": s.regex, "within": s.within}
                  for f in families for s in scrub_rules.FAMILY_RULES[f]],
    }


def rules_json(syntax: str) -> str:
    """`rules_document` as the file a filter reads (stable order, one trailing newline)."""
    import json

    return json.dumps(rules_document(syntax), indent=1) + "\n"


def syntax_for(platform: str | None) -> str:
    """The scrub table for a platform name of the inventory (or a config syntax name).

    >>> syntax_for("ios"), syntax_for("debian"), syntax_for(None), syntax_for("no-such")
    ('ios', 'linux', 'any', 'any')
    """
    if not platform:
        return ANY
    if platform in scrub_rules.PLATFORM_FAMILIES:
        return platform
    from dzops.platforms import PLATFORMS

    known = PLATFORMS.get(platform)
    return known.config_syntax if known and known.config_syntax in scrub_rules.PLATFORM_FAMILIES else ANY


def _scrub_lines(text: str, syntax: str, drop_volatile: bool) -> str:
    rules = table(syntax)
    out = []
    header = ""
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        if drop_volatile and any(p.match(body) for p in rules.volatile):
            continue
        marked = _DIFF_MARK.match(body)
        config = body[1:] if marked else body  # a diff or remediation line: the config line after + or -
        plain = config[1:] if marked and config.startswith(" ") and not config.startswith("  ") else config
        if rules.header.match(plain):
            header = plain
        if not _TRIGGER.search(body) or any(p.match(body) for p in rules.skip):
            out.append(line)
            continue
        scrubbed = body[0] + _apply_all(rules.rules, config, header) if marked else body
        out.append(_apply_all(rules.rules, scrubbed, header) + ending)
    return "".join(out)


def _apply_all(rules: tuple[Rule, ...], line: str, header: str) -> str:
    for rule in rules:
        line = rule.apply(line, header)
    return line


def _private_keys(text: str) -> str:
    return _PRIVATE_KEY.sub(lambda m: f"-----BEGIN {m.group(1)}-----\n{MARKER}\n-----END {m.group(1)}-----", text)


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
    return mask_values(_scrub_lines(_private_keys(text), syntax, drop_volatile=True), secrets)


def scrub_secrets(text: str, syntax: str = ANY, secrets: Iterable[str] = ()) -> str:
    """Like `scrub` but every line stays: for text that is shown, not stored as a backup.

    >>> scrub_secrets("- interface lo\\n-  no ip ospf authentication-key S3cret\\n", "frr")
    '- interface lo\\n-  no ip ospf authentication-key <removed>\\n'
    """
    return mask_values(_scrub_lines(_private_keys(text), syntax, drop_volatile=False), secrets)


def mask_values(text: str, secrets: Iterable[str], marker: str = MARKER) -> str:
    """Replace every occurrence of a known secret value, longest first (so no prefix is left over).

    Values shorter than 4 characters are ignored: masking 'a' everywhere would wreck the text and
    protect nothing.

    >>> mask_values("user dzadmin pass Druk-Net and Druk-Net-2026", ["Druk-Net", "Druk-Net-2026", "x"])
    'user dzadmin pass <removed> and <removed>'
    """
    for value in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(value, marker)
    return text


# -- the registry of secret values, for egress ------------------------------------------------------
_REGISTERED: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values (the Vault's): every later `egress` masks them."""
    _REGISTERED.update(str(v) for v in values if v is not None and len(str(v)) >= 4)


def registered_secrets() -> frozenset[str]:
    return frozenset(_REGISTERED)


def forget_secrets() -> None:
    """Empty the registry (a new inventory, or a test)."""
    _REGISTERED.clear()


def egress(text: str, syntax: str | None = None) -> str:
    """Text fit to leave dzops: the rules of its syntax ("any" when unknown) and every registered value.

    >>> egress("r1: username ops privilege 15 secret 9 $9$abc$def")
    'r1: username ops privilege 15 secret 9 <removed>'
    """
    if not text:
        return text
    if syntax and syntax != ANY:
        # A platform's text can also hold messages around its config lines ("r1: ... key X"):
        # its own rules first, then the unambiguous ones of every syntax.
        text = scrub_secrets(text, syntax)
    return scrub_secrets(text, ANY, _REGISTERED)


def egress_html(html: str) -> str:
    """HTML fit to leave dzops: every registered value masked, raw or HTML-escaped.

    Rules are not run over markup (a value pattern would eat the closing tag): HTML is scrubbed
    as data before it is rendered (`dzops.report.drift.egress_report`), this is the last line.

    >>> register_secrets(["a<b&c-secret"]); egress_html("<p>a&lt;b&amp;c-secret</p>"); forget_secrets()
    '<p>&lt;removed&gt;</p>'
    """
    import html as html_lib

    values = {v for s in _REGISTERED for v in (s, html_lib.escape(s))}
    return mask_values(html, values, marker=html_lib.escape(MARKER))


def egress_data(value: Any, syntax: str | None = None) -> Any:
    """Structured data (JSON-like) with every string passed through `egress`.

    A dict with a known `platform` scrubs its strings with that platform's rules.

    >>> egress_data({"host": "r9", "platform": "frr", "diff": "password zebra"})
    {'host': 'r9', 'platform': 'frr', 'diff': 'password <removed>'}
    """
    if isinstance(value, str):
        return egress(value, syntax)
    if isinstance(value, dict):
        platform = value.get("platform")
        inner = syntax_for(platform) if isinstance(platform, str) and syntax_for(platform) != ANY else syntax
        return {(mask_values(k, _REGISTERED) if isinstance(k, str) else k): egress_data(v, inner)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [egress_data(v, syntax) for v in value]
    return value


class SecretFilter(logging.Filter):
    """Put on a log handler: the record's message, exception and stack text pass through `egress`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = egress(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = egress(record.exc_text)
        if record.stack_info:
            record.stack_info = egress(record.stack_info)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Every handler of `logger` (default: the root logger) scrubs what it writes."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())


def install_excepthook() -> None:
    """An uncaught exception's traceback (DZOPS_DEBUG=1) leaves through `egress` like any other text."""
    import sys
    import traceback

    def scrubbed_hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        sys.stderr.write(egress("".join(traceback.format_exception(kind, value, tb))))

    sys.excepthook = scrubbed_hook


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
