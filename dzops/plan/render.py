"""Jinja2 rendering of `templates/<platform>/<name>.j2`, strict about undefined variables.

Every value from the inventory reaches a device through one of the escaping filters below,
registered here and only here, one per configuration syntax. Each either writes the text the way
that syntax reads it back unchanged, or refuses it (InventoryError) when the syntax has no way to
carry it: a configuration that silently means something else is worse than none. The inventory
already rejects control characters in every text field (dzops.inventory.models.single_line); the
filters hold on their own for values that reach a template another way.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from dzops.exceptions import InventoryError, Problem
from dzops.resources import templates_dir

TEMPLATES_DIR = templates_dir()


def _refuse(value: str, syntax: str, why: str, secret: bool = False) -> InventoryError:
    shown = "a secret value" if secret else repr(value)
    return InventoryError([Problem(f"{shown} cannot be written into {syntax}: {why}")])


def _control(value: str) -> str | None:
    """The first character no configuration line can hold (newline, other controls), or None."""
    from dzops.inventory.models import single_line

    try:
        single_line(value)
    except ValueError:
        return next(c for c in value if not c.isprintable() or c in "\u2028\u2029")
    return None


def one_line(value: Any, secret: bool = False) -> str:
    """Any text that must stay on its line (comments, values up to the end of the line).

    >>> one_line("staff (VLAN 10)")
    'staff (VLAN 10)'
    >>> one_line("staff\\nwpa=0")
    Traceback (most recent call last):
    ...
    dzops.exceptions.InventoryError: inventory: 'staff\\nwpa=0' cannot be written into a configuration line: it holds the control character U+000A
    """
    text = str(value)
    char = _control(text)
    if char is not None:
        raise _refuse(text, "a configuration line", f"it holds the control character U+{ord(char):04X}", secret)
    return text


# RouterOS console strings: "..." with backslash escapes; `$` would expand a variable and `?` would
# open the help, even inside quotes. Other controls are written as \HH, which RouterOS reads back.
_ROUTEROS_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "?": "\\?", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def routeros_str(value: Any) -> str:
    """Text for inside a RouterOS double-quoted value (without the quotes).

    >>> routeros_str('Staff "HQ" costs $5? C:\\\\temp')
    'Staff \\\\"HQ\\\\" costs \\\\$5\\\\? C:\\\\\\\\temp'
    >>> routeros_str("a\\x07b\\nc")
    'a\\\\07b\\\\nc'
    """
    out = []
    for char in str(value):
        if char in _ROUTEROS_ESCAPES:
            out.append(_ROUTEROS_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\{ord(char):02X}")
        else:
            out.append(char)
    return "".join(out)


def frr_text(value: Any) -> str:
    """Free text that runs to the end of an FRR (vtysh) line: descriptions, the hostname.

    vtysh reads `|` as an output pipe even in a description (`vtysh -b` then fails with
    "% Unknown action"), so it becomes `/`; leading and trailing spaces would not survive a
    `show running-config` round trip. vtysh has no escape for a newline: refused.

    >>> frr_text("  WAN BT|0009 to Talo ")
    'WAN BT/0009 to Talo'
    """
    return one_line(value).replace("|", "/").strip()


def ios_text(value: Any) -> str:
    """Free text to the end of an IOS line (`description ...`).

    `?` typed at the IOS CLI asks for help instead of entering text, so it is dropped; IOS strips
    leading and trailing spaces itself, so they are stripped here too (the pushed line and the
    running config then match). `|` becomes `/` as on FRR, keeping descriptions alike.

    >>> ios_text(" Uplink? to HQ | core ")
    'Uplink to HQ / core'
    """
    return one_line(value).replace("?", "").replace("|", "/").strip()


def ios_secret(value: Any) -> str:
    """A secret to the end of an IOS line (`wpa-psk ascii 0 ...`, `key ...`): never altered.

    Dropping a `?` or a space would silently set another key than the inventory's, so such a
    secret is refused instead (the message never shows it).

    >>> ios_secret("correct-horse-battery")
    'correct-horse-battery'
    >>> ios_secret("why?not!")
    Traceback (most recent call last):
    ...
    dzops.exceptions.InventoryError: inventory: a secret value cannot be written into an IOS command line: '?' asks the CLI for help
    """
    text = one_line(value, secret=True)
    if "?" in text:
        raise _refuse(text, "an IOS command line", "'?' asks the CLI for help", secret=True)
    if text != text.strip():
        raise _refuse(text, "an IOS command line", "IOS drops leading and trailing spaces", secret=True)
    return text


def ios_ssid(value: Any) -> str:
    """An SSID for `dot11 ssid NAME` on an IOS access point.

    Cisco's rules: no `+ ] / "`, tab or `?`; not starting with `! # ;`; no trailing space.

    >>> ios_ssid("Punakha Staff")
    'Punakha Staff'
    >>> ios_ssid("#staff")
    Traceback (most recent call last):
    ...
    dzops.exceptions.InventoryError: inventory: '#staff' cannot be written into an IOS SSID: it cannot start with '!', '#' or ';'
    """
    text = one_line(value)
    bad = sorted({c for c in text if c in '+]/"?\t'})
    if bad:
        raise _refuse(text, "an IOS SSID", f"IOS does not accept {' '.join(repr(c) for c in bad)} in an SSID")
    if text[:1] in ("!", "#", ";"):
        raise _refuse(text, "an IOS SSID", "it cannot start with '!', '#' or ';'")
    if text != text.rstrip() or text != text.lstrip():
        raise _refuse(text, "an IOS SSID", "IOS drops leading and trailing spaces")
    return text


def hostapd_ssid(value: Any) -> str:
    """The whole SSID line of hostapd.conf: `ssid=` for plain text, else `ssid2=` in hex.

    hostapd takes `ssid=` byte for byte to the end of the line, so a control character cannot be
    written there and edge spaces are easily lost by editors; `ssid2=<hex>` carries any bytes.
    At most 32 bytes (UTF-8 takes up to 4 per character).

    >>> hostapd_ssid("Punakha-Staff")
    'ssid=Punakha-Staff'
    >>> hostapd_ssid(" Staff ")
    'ssid2=20537461666620'
    >>> hostapd_ssid("ལྷ་ཁང་ Lhakhang")  # UTF-8 is fine as long as it fits in 32 bytes
    'ssid=ལྷ་ཁང་ Lhakhang'
    """
    text = str(value)
    raw = text.encode("utf-8")
    if not 1 <= len(raw) <= 32:
        raise _refuse(text, "hostapd.conf", f"an SSID is 1 to 32 bytes, this one is {len(raw)} in UTF-8")
    if text.isprintable() and text == text.strip():
        return f"ssid={text}"
    return f"ssid2={raw.hex()}"


FILTERS: dict[str, Callable[..., str]] = {
    "one_line": one_line,
    "routeros_str": routeros_str,
    "frr_text": frr_text,
    "ios_text": ios_text,
    "ios_secret": ios_secret,
    "ios_ssid": ios_ssid,
    "hostapd_ssid": hostapd_ssid,
}


@lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug in the plan, never an empty line
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    return env


def render(platform: str, name: str, **context: Any) -> str:
    """Render templates/<platform>/<name>.j2 with the given context."""
    return environment().get_template(f"{platform}/{name}.j2").render(**context)
