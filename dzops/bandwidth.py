"""Link bandwidth as people write it (`512kbit`, `10Mbit`, `1Gbit`) and as devices want it (kbit/s).

One pure module shared by the inventory (parsing), descriptions, OSPF costs and the lab's tbf
shaping, so every place reads the same number. A plain integer means Mbit/s: inventories written
before units existed (`bandwidth_mbps: 20`) keep their meaning.
"""

from __future__ import annotations

import re

_UNITS = {"kbit": 1, "mbit": 1_000, "gbit": 1_000_000}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(kbit|mbit|gbit)(?:/s)?\s*$", re.IGNORECASE)


def parse_bandwidth(value: object) -> int:
    """A bandwidth in kbit/s; plain numbers are Mbit/s, text needs a unit (kbit, Mbit, Gbit).

    >>> parse_bandwidth("512kbit"), parse_bandwidth("10Mbit"), parse_bandwidth("1Gbit"), parse_bandwidth(20)
    (512, 10000, 1000000, 20000)
    >>> parse_bandwidth("2.5Mbit"), parse_bandwidth("100 mbit/s"), parse_bandwidth("20")
    (2500, 100000, 20000)
    >>> parse_bandwidth("10M")
    Traceback (most recent call last):
    ...
    ValueError: bandwidth '10M' needs a unit: a number with kbit, Mbit or Gbit (512kbit, 10Mbit, 1Gbit)
    >>> parse_bandwidth(0)
    Traceback (most recent call last):
    ...
    ValueError: bandwidth must be at least 1kbit
    """
    if isinstance(value, bool):  # YAML's yes/no would otherwise read as 1 and 0
        raise ValueError("bandwidth must be a number of Mbit/s or text with a unit (512kbit, 10Mbit, 1Gbit)")
    if isinstance(value, int | float):
        kbps = round(value * 1_000)
    elif isinstance(value, str) and value.strip().isdigit():
        kbps = int(value.strip()) * 1_000
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        kbps = round(float(match.group(1)) * _UNITS[match.group(2).lower()])
    else:
        raise ValueError(f"bandwidth '{value}' needs a unit: a number with kbit, Mbit or Gbit (512kbit, 10Mbit, 1Gbit)")
    if kbps < 1:
        raise ValueError("bandwidth must be at least 1kbit")
    if kbps > 400_000_000:
        raise ValueError("bandwidth must be at most 400Gbit")
    return kbps


def format_bandwidth(kbps: int, *, short: bool = False) -> str:
    """The bandwidth as it reads best: the largest unit that keeps it whole (short: `20M` for descriptions).

    >>> format_bandwidth(512), format_bandwidth(20_000), format_bandwidth(1_000_000), format_bandwidth(2_500)
    ('512kbit', '20Mbit', '1Gbit', '2500kbit')
    >>> format_bandwidth(512, short=True), format_bandwidth(20_000, short=True), format_bandwidth(1_000_000, short=True)
    ('512k', '20M', '1G')
    """
    for unit, factor in (("Gbit", 1_000_000), ("Mbit", 1_000)):
        if kbps % factor == 0:
            return f"{kbps // factor}{unit[0] if short else unit}"
    return f"{kbps}{'k' if short else 'kbit'}"


# OSPF cost = reference / bandwidth. 10 Gbit/s keeps every access speed a Dzongkhag buys apart:
# 1 Gbit/s -> 10, 100 Mbit/s -> 100, 10 Mbit/s -> 1000, 2 Mbit/s -> 5000, 512 kbit/s -> 19531,
# and everything from about 153 kbit/s up gets its own cost below OSPF's 65535 ceiling. Links of
# 10 Gbit/s and more all cost 1, which no gewog WAN comes near. FRR's and IOS's reference is in
# Mbit/s (`auto-cost reference-bandwidth 10000`).
OSPF_REFERENCE_MBPS = 10_000
OSPF_MAX_COST = 65_535


def ospf_cost(kbps: int, reference_mbps: int = OSPF_REFERENCE_MBPS) -> int:
    """OSPF's interface cost for a bandwidth, as a router's auto-cost computes it (truncated, 1..65535).

    >>> [ospf_cost(k) for k in (10_000_000, 1_000_000, 100_000, 10_000, 8_000, 2_000, 512)]
    [1, 10, 100, 1000, 1250, 5000, 19531]
    >>> ospf_cost(64), ospf_cost(1), ospf_cost(100_000_000)
    (65535, 65535, 1)
    """
    return max(1, min(OSPF_MAX_COST, reference_mbps * 1_000 // kbps))
