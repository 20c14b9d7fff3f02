"""Hostile inventory text against every configuration syntax dzops writes.

Table-driven per syntax: each value either comes out so that the device reads back exactly the
intended text (checked with a small independent reader of that syntax), or rendering refuses it.
Nothing may start a second configuration line, open a CLI's help, expand a variable or leak a secret
into the refusal message.
"""

from __future__ import annotations

import dataclasses
import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from dzops.exceptions import InventoryError
from dzops.plan import ap
from dzops.plan.render import hostapd_ssid, render, routeros_str
from dzops.plan.vendor import wan_config_lines
from dzops.plan.wan import WanEnd

# --- independent readers ---------------------------------------------------------------------------


def read_routeros_string(text: str) -> str:
    """Unescape one RouterOS double-quoted value as the RouterOS console does."""
    named = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "_": " "}
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == '"':
            raise AssertionError(f"unescaped quote ends the value early: {text!r}")
        if char == "$" or char == "?":
            raise AssertionError(f"unescaped {char!r} would be interpreted by the console: {text!r}")
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if re.fullmatch(r"[0-9A-F]{2}", text[i + 1:i + 3]):
            out.append(chr(int(text[i + 1:i + 3], 16)))
            i += 3
        else:
            out.append(named.get(nxt, nxt))
            i += 2
    return "".join(out)


def quoted_values(line: str, key: str) -> list[str]:
    """The raw (still escaped) values of key="..." in a RouterOS line."""
    return re.findall(rf'\b{key}="((?:[^"\\]|\\.)*)"', line)


# --- RouterOS ----------------------------------------------------------------------------------------

HOSTILE = [
    'plain text',
    'quote " inside',
    'back\\slash',
    'dollar $var and $(cmd)',
    'question? mark',
    'all "\\$? together "',
    'ends in backslash\\',
]


@pytest.mark.parametrize("text", HOSTILE)
def test_routeros_quoted_value_reads_back_exactly(text: str) -> None:
    assert read_routeros_string(routeros_str(text)) == text


def wan_end(platform: str, description: str) -> WanEnd:
    interface = {"ios": "GigabitEthernet0/1", "routeros": "ether2", "frr": "eth1"}[platform]
    return WanEnd(link="hq-talo", host="hq", interface=interface, vlan=None, ifname=interface,
                  address=IPv4Interface("10.30.255.5/30"), description=description, mtu=1500, bandwidth_kbps=20_000,
                  routing="static", ospf_area=0, far_host="talo", far_address=IPv4Address("10.30.255.6"),
                  far_lan_prefixes=(IPv4Network("10.31.10.0/24"),))


@pytest.mark.parametrize("text", HOSTILE)
def test_routeros_wan_comments_read_back(text: str) -> None:
    lines = wan_config_lines("routeros", [wan_end("routeros", text)])
    comments = [value for line in lines for value in quoted_values(line, "comment")]
    assert len(comments) == 3  # interface, address, route
    assert {read_routeros_string(value) for value in comments} == {text}


# --- FRR ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("WAN to Talo", "WAN to Talo"),
    ("WAN Dhi|Rag to Talo", "WAN Dhi/Rag to Talo"),  # '|' is an output pipe to vtysh -b
    ("  padded  ", "padded"),
    ("quote \" and $ and ? are plain text to vtysh", "quote \" and $ and ? are plain text to vtysh"),
])
def test_frr_description(text: str, expected: str) -> None:
    text_out = render("frr", "wan_link", end=wan_end("frr", text))
    assert f" description {expected}\n" in text_out


@pytest.mark.parametrize("text", ["WAN\nrouter bgp 65000", "WAN\rx", "WAN\x1b[2Jx", "WAN\u2028x"])
def test_frr_refuses_what_would_start_another_line(text: str) -> None:
    with pytest.raises(InventoryError, match="control character"):
        render("frr", "wan_link", end=wan_end("frr", text))


# --- IOS ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("WAN to Talo", "WAN to Talo"),
    ("what? WAN", "what WAN"),  # '?' would open the CLI's help
    ("  WAN to Talo  ", "WAN to Talo"),  # IOS strips them: the running config would never match
    ("WAN Dhi|Rag", "WAN Dhi/Rag"),
])
def test_ios_description(text: str, expected: str) -> None:
    lines = wan_config_lines("ios", [wan_end("ios", text)])
    assert f" description {expected}" in lines


def test_ios_refuses_a_newline_in_a_description() -> None:
    with pytest.raises(InventoryError, match="U\\+000A"):
        wan_config_lines("ios", [wan_end("ios", "WAN\nusername evil privilege 15")])


# --- access points: hostapd, IOS, RouterOS -----------------------------------------------------------

PSK = "Secret-Psk-4711"


def bss(**changes: object) -> ap.Bss:
    base = ap.Bss(ap="talo-ap1", profile="staff", interface="wlan0", ssid="Punakha-Staff", security="wpa2-psk",
                  vlan=10, vlan_name="staff", bridge="br10", hidden=False, client_isolation=False, band="2.4ghz",
                  hw_mode="g", channel=1, power="auto", country="BT", driver="none", psk=PSK, radius_server=None,
                  radius_port=None, radius_secret=None, own_ip="10.30.0.141")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def hostapd_lines(b: ap.Bss) -> dict[str, str]:
    """key -> value of a rendered hostapd.conf, read the way hostapd reads it (to the end of the line)."""
    text = render("hostapd", "bss", bss=b)
    pairs = [line.split("=", 1) for line in text.split("\n") if line and not line.startswith("#")]
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"a key appears twice: {keys}"
    return dict(pairs)  # type: ignore[arg-type]


def ssid_read_by_hostapd(conf: dict[str, str]) -> bytes:
    if "ssid2" in conf:
        return bytes.fromhex(conf["ssid2"])
    return conf["ssid"].encode()


@pytest.mark.parametrize(("ssid", "form"), [
    ("Punakha-Staff", "ssid"),
    ("Staff \"HQ\" $1 ?", "ssid"),  # printable: hostapd takes it byte for byte
    ("ཐིམ་ཕུག Staff", "ssid"),  # UTF-8 within 32 bytes
    (" Staff", "ssid2"),  # edge spaces survive only in hex
    ("Staff ", "ssid2"),
    ("Staff\nwpa=0", "ssid2"),  # a newline would have added the line wpa=0
    ("Staff\x00x", "ssid2"),
])
def test_hostapd_ssid_reads_back_exactly(ssid: str, form: str) -> None:
    conf = hostapd_lines(bss(ssid=ssid))
    assert form in conf and ({"ssid", "ssid2"} - {form}).isdisjoint(conf)
    assert ssid_read_by_hostapd(conf) == ssid.encode()
    assert conf["wpa"] == "2" and conf["wpa_passphrase"] == PSK


def test_hostapd_refuses_an_ssid_over_32_bytes() -> None:
    with pytest.raises(InventoryError, match="1 to 32 bytes"):
        hostapd_ssid("ཐིམ་ཕུག་རྫོང་ཁག")  # 15 characters, 45 bytes


@pytest.mark.parametrize("field", ["psk", "vlan_name", "profile"])
def test_hostapd_refuses_newlines_in_values_and_comments(field: str) -> None:
    with pytest.raises(InventoryError) as caught:
        render("hostapd", "bss", bss=bss(**{field: "x\nwpa=0"}))
    if field == "psk":
        assert "x\nwpa" not in str(caught.value) and "secret" in str(caught.value)


@pytest.mark.parametrize(("ssid", "why"), [
    ("Staff?", "'?'"),
    ('Staff "HQ"', "'\"'"),
    ("Staff/HQ", "'/'"),
    ("#staff", "cannot start"),
    ("Staff ", "trailing spaces"),
])
def test_ios_ssid_refuses_what_ios_cannot_take(ssid: str, why: str) -> None:
    with pytest.raises(InventoryError, match=re.escape(why)):
        render("ios", "ap_ssids", bsses=[bss(ssid=ssid)])


def test_ios_psk_with_a_help_key_is_refused_without_showing_it() -> None:
    with pytest.raises(InventoryError) as caught:
        render("ios", "ap_ssids", bsses=[bss(psk="Secret?Psk-4711")])
    assert "Secret?Psk" not in str(caught.value) and "'?' asks the CLI for help" in str(caught.value)


def test_ios_ssid_with_spaces_is_fine() -> None:
    assert "dot11 ssid Punakha Staff" in render("ios", "ap_ssids", bsses=[bss(ssid="Punakha Staff")])


@pytest.mark.parametrize("text", HOSTILE)
def test_routeros_ap_ssid_psk_and_secret_read_back(text: str) -> None:
    psk = ("x" * 8 + text)[:63]
    b = bss(ssid=text[:32], psk=psk)
    radius = bss(profile="campus", security="wpa2-enterprise", ssid=text[:32], psk=None, radius_server="10.30.1.20",
                 radius_port=1812, radius_secret=text)
    lines = render("routeros", "ap_wireless", bsses=[b, radius], radio={"channel": 1, "power": "auto",
                                                                          "country": "BT"}, device=None).splitlines()
    ssids = [v for line in lines for v in quoted_values(line, "ssid")]
    keys = [v for line in lines for v in quoted_values(line, "wpa2-pre-shared-key")]
    secrets = [v for line in lines for v in quoted_values(line, "secret")]
    assert [read_routeros_string(v) for v in ssids] == [text[:32]] * 2
    assert [read_routeros_string(v) for v in keys] == [psk]
    assert [read_routeros_string(v) for v in secrets] == [text]
    masked = ap.mask_secrets("\n".join(lines))
    assert psk not in masked and routeros_str(psk) not in masked  # the mask covers escaped quotes too


# --- hostapd's own parser ------------------------------------------------------------------------------


def hostapd_reads(conf_text: str, tmp_path) -> tuple[bytes, str]:  # noqa: ANN001
    """(SSID bytes, log) as the real hostapd parses `conf_text`: driver=none on the loopback of a
    private network namespace (no radio needed), stopped as soon as it reports its state."""
    import os
    import select
    import shutil
    import subprocess
    import time

    hostapd = shutil.which("hostapd") or "/usr/sbin/hostapd"
    conf = tmp_path / "bss.conf"
    conf.write_text(conf_text)
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {hostapd} -dd {conf}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    # Raw reads of the pipe's fd: select() on a buffered file object misses lines already buffered.
    fd, raw, deadline = proc.stdout.fileno(), b"", time.monotonic() + 20
    try:
        while time.monotonic() < deadline and b"AP-ENABLED" not in raw and b"AP-DISABLED" not in raw:
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            raw += chunk
    finally:
        proc.kill()
        proc.wait()
    text = raw.decode(errors="replace")
    match = re.search(r"SSID - hexdump_ascii\(len=(\d+)\):\n((?:\s+[0-9a-f]{2}(?: [0-9a-f]{2})*.*\n)+)", text)
    assert match, text
    hex_bytes = re.findall(r"(?<![0-9a-f])[0-9a-f]{2}(?![0-9a-f])", "".join(
        line.strip()[:48] for line in match.group(2).splitlines()))
    return bytes(int(b, 16) for b in hex_bytes)[:int(match.group(1))], text


@pytest.mark.lab  # needs root: a private network namespace for hostapd
@pytest.mark.parametrize("ssid", ["Punakha-Staff", " Staff ", "Staff\nwpa=0", "Staff \"HQ\" $1 ?", "ཐིམ་ཕུག Staff"])
def test_hostapd_itself_reads_the_intended_ssid(ssid: str, tmp_path) -> None:  # noqa: ANN001
    conf = render("hostapd", "bss", bss=bss(ssid=ssid, interface="lo", bridge="", driver="none"),
                  ctrl_dir=str(tmp_path / "ctrl"))
    conf = conf.replace("bridge=\n", "")  # the lab's loopback has no bridge to join
    read, log = hostapd_reads(conf, tmp_path)
    assert read == ssid.encode(), log
    assert "AP-ENABLED" in log, log  # and the rest of the file still parsed: no injected line broke it
