"""Remediation as the commands an officer would type at the device's CLI.

A config-replace driver reports what it would change in its own shape; FRR's frr-reload prints
"Lines To Delete" (already in their `no` form) and "Lines To Add", repeating each context line
before every sub-line, and puts some removals (`no ip route ...`) among the additions. People
need a `configure terminal` session instead: each context entered once, its removals before its
additions, left with `exit`, the session closed with `end` and saved.

Pure text in, text out: no device, no secrets handling (the report scrubs what it shows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# Lines that open a configuration context in IOS-like syntaxes (FRR's vtysh, IOS).
CONTEXT_KEYWORDS = ("interface ", "router ", "route-map ", "line ", "key chain ", "key ", "vrf ",
                    "address-family ", "ip vrf ", "bfd", "peer ", "segment-routing", "mpls ")
# How a session starts and ends per config syntax: (enter, leave, save).
SESSION = {"frr": ("configure terminal", "end", "write memory"),
           "ios": ("configure terminal", "end", "write memory")}
# Lines whose `no` form takes fewer words than the line (measured on FRR 8.4's vtysh: `no description
# TEXT` is refused, `no description` accepted; frr-reload finds this by retrying with fewer words).
# Config keyword -> words its `no` form keeps.
SHORT_NO_FORMS = {"frr": {("description",): 1, ("password",): 1, ("enable", "password"): 2},
                  "ios": {("description",): 1}}
# Lines frr-reload prints that are no command of their own.
NOISE = ("!", "end", "exit", "exit-vrf", "exit-address-family")


def reload_sections(output: str) -> tuple[list[str], list[str]]:
    """frr-reload's `--test` output split into its "Lines To Delete" and "Lines To Add", lines unchanged.

    >>> reload_sections("\\nLines To Delete\\n===============\\nno hostname x\\n\\nLines To Add\\n============\\nhostname r1\\n")
    (['no hostname x'], ['hostname r1'])
    """
    delete: list[str] = []
    add: list[str] = []
    target: list[str] | None = None
    for line in output.splitlines():
        if line.strip() in ("Lines To Delete", "Lines To Add"):
            target = delete if line.strip() == "Lines To Delete" else add
        elif target is not None and line.strip() and set(line.strip()) != {"="}:
            target.append(line.rstrip())
    return delete, add


def normalise(command: str) -> str:
    """One command as typed: a doubled `no` cancels out (removing a `no X` line means typing `X`).

    >>> normalise("no no ipv6 forwarding"), normalise(" no  no bgp default ipv4-unicast"), normalise("no ip route 1")
    ('ipv6 forwarding', ' bgp default ipv4-unicast', 'no ip route 1')
    """
    indent = command[:len(command) - len(command.lstrip())]
    words = command.split()
    while words[:2] == ["no", "no"]:
        words = words[2:]
    return indent + " ".join(words)


def shorten_no(command: str, syntax: str = "frr") -> str:
    """A `no` command in the form the CLI accepts: some keywords take no value when removed.

    >>> shorten_no(" no description hand edited"), shorten_no("no ip ospf cost 20")
    (' no description', 'no ip ospf cost 20')
    """
    indent = command[:len(command) - len(command.lstrip())]
    words = command.split()
    if words[:1] != ["no"]:
        return command
    for keyword, keep in SHORT_NO_FORMS.get(syntax, {}).items():
        if tuple(words[1:1 + len(keyword)]) == keyword:
            return indent + " ".join(words[:1 + keep])
    return command


def negate(line: str) -> str:
    """The command that removes a config line: `no X`, or `X` for a line that is itself `no X`.

    >>> negate(" ip ospf cost 20"), negate("no ipv6 forwarding")
    (' no ip ospf cost 20', 'ipv6 forwarding')
    """
    return normalise(line[:len(line) - len(line.lstrip())] + "no " + line.strip())


def _exit_for(context: str) -> str:
    return "exit-address-family" if context.startswith("address-family ") else "exit"


def _is_context(line: str) -> bool:
    return line.strip().startswith(CONTEXT_KEYWORDS)


@dataclass
class _Block:
    removals: list[str] = field(default_factory=list)
    additions: list[str] = field(default_factory=list)


def _entries(lines: Iterable[str]) -> list[tuple[tuple[str, ...], str]]:
    """(context path, command) pairs from frr-reload-shaped lines: indentation is depth.

    A context line followed by deeper lines is context only; one standing alone is a command of
    its own (adding or removing a whole context, or a plain top-level line).
    """
    cleaned = [line.rstrip() for line in lines
               if line.strip() and line.strip() not in NOISE and not line.strip().startswith("frr version")]
    entries: list[tuple[tuple[str, ...], str]] = []
    path: list[str] = []
    for i, line in enumerate(cleaned):
        depth = len(line) - len(line.lstrip())
        text = line.strip()
        path = path[:depth]
        following = cleaned[i + 1] if i + 1 < len(cleaned) else ""
        if following and len(following) - len(following.lstrip()) > depth:
            path.append(text)
            continue
        entries.append((tuple(path), text))
    return entries


def remediation_commands(remove: Iterable[str], add: Iterable[str], syntax: str = "frr",
                         save: bool = True) -> list[str]:
    """The CLI session that turns the running config into the intended one.

    `remove` and `add` are the config-replace delta as frr-reload prints it ("Lines To Delete",
    already negated, then "Lines To Add"); repeated context lines may be there or collapsed.

    >>> print("\\n".join(remediation_commands(
    ...     ["interface eth1", " no description hand edited", "interface eth1", " no ip ospf cost 20"],
    ...     ["no ip route 10.99.0.0/16 blackhole", "interface eth1", " description LAN"])))
    configure terminal
    no ip route 10.99.0.0/16 blackhole
    interface eth1
     no description
     no ip ospf cost 20
     description LAN
    exit
    end
    write memory
    >>> remediation_commands([], [])
    []
    """
    enter, leave, write = SESSION.get(syntax, SESSION["frr"])
    blocks: dict[tuple[str, ...], _Block] = {}
    top = _Block()
    seen: set[tuple[tuple[str, ...], str]] = set()
    for source, removing in ((remove, True), (add, False)):
        for path, text in _entries(source):
            command = shorten_no(normalise(text), syntax)
            if (path, command) in seen:
                continue  # frr-reload may delete and re-add the same line
            seen.add((path, command))
            # A `no` line among the additions still takes something away: it goes with the removals.
            goes = removing or command.startswith("no ")
            if not path:
                (top.removals if goes else top.additions).append(command)
                continue
            for depth in range(1, len(path)):
                blocks.setdefault(path[:depth], _Block())
            block = blocks.setdefault(path, _Block())
            (block.removals if goes else block.additions).append(command)
    # A context standing alone among the top-level lines and also entered below needs no line of its own.
    entered = {path[0] for path in blocks}
    top.additions = [c for c in top.additions if not (_is_context(c) and c in entered)]
    if not top.removals and not top.additions and not any(b.removals or b.additions for b in blocks.values()):
        return []

    session = [enter, *top.removals]
    open_path: tuple[str, ...] = ()

    def close_to(depth: int) -> None:
        nonlocal open_path
        while len(open_path) > depth:
            session.append(" " * (len(open_path) - 1) + _exit_for(open_path[-1]))
            open_path = open_path[:-1]

    for path, block in blocks.items():
        common = 0
        while common < min(len(path), len(open_path)) and path[common] == open_path[common]:
            common += 1
        close_to(common)
        for depth in range(common, len(path)):
            session.append(" " * depth + path[depth])
        open_path = path
        indent = " " * len(path)
        session += [indent + c for c in block.removals + block.additions]
    close_to(0)
    for command in top.additions:
        session.append(command)
        if _is_context(command) and not command.startswith("no "):
            session.append(_exit_for(command))  # an empty context: entered and left again
    session.append(leave)
    if save:
        session.append(write)
    return session


def command_role(command: str) -> str:
    """What one line of a remediation session does: `remove`, `add`, `context` or `session`.

    >>> [command_role(c) for c in ("configure terminal", "interface eth1", " no description x", " description y",
    ...                            "exit", "no ip route 10.9.0.0/16 blackhole", "end", "write memory")]
    ['session', 'context', 'remove', 'add', 'context', 'remove', 'session', 'session']
    """
    body = command.strip()
    if body in {word for words in SESSION.values() for word in words}:
        return "session"
    if body.startswith("no "):
        return "remove"
    if body in NOISE or _is_context(body):
        return "context"
    return "add"


def count_changes(commands: Iterable[str]) -> tuple[int, int]:
    """(commands that take something away, commands that put something in), contexts excluded.

    >>> count_changes(["configure terminal", "interface eth1", " no description x", " description y", "exit",
    ...                "no ip route 10.9.0.0/16 blackhole", "end", "write memory"])
    (2, 1)
    """
    roles = [command_role(c) for c in commands]
    return roles.count("remove"), roles.count("add")


# -- IOS-like syntaxes through hier_config ---------------------------------------------------------------
# Where the driver hands back whole configs (NAPALM's platforms), the remediation is computed from the
# running and intended texts by hier_config, which knows each syntax's negations, the lines that
# overwrite instead of adding (`description`, `hostname`), and the order the CLI needs. The FRR
# side above reads frr-reload's delta instead; both end as the same shape of session.
HIER_PLATFORMS = {"ios": "CISCO_IOS", "eos": "ARISTA_EOS", "nxos": "CISCO_NXOS"}
SESSION.update({"eos": ("configure terminal", "end", "write memory"),
                "nxos": ("configure terminal", "end", "copy running-config startup-config")})


def hier_remediation(running: str, intended: str, syntax: str = "ios", save: bool = True) -> list[str]:
    """The CLI session that turns the running config into the intended one, computed by hier_config.

    Real `no ...` lines for what only the running config has, in hier_config's order (removals
    before additions at each level), each context entered once and left with `exit`.

    >>> running = "hostname r1\\ninterface GigabitEthernet0/1\\n description old\\n ip ospf cost 20\\n!\\nip route 10.9.0.0 255.255.0.0 10.0.0.2\\n"
    >>> intended = "hostname r1\\ninterface GigabitEthernet0/1\\n description WAN to hq\\n!\\n"
    >>> print("\\n".join(hier_remediation(running, intended)))
    configure terminal
    no ip route 10.9.0.0 255.255.0.0 10.0.0.2
    interface GigabitEthernet0/1
     no ip ospf cost 20
     description WAN to hq
    exit
    end
    write memory
    >>> hier_remediation("hostname r1\\n", "hostname r1\\n")
    []
    """
    from hier_config import WorkflowRemediation, get_hconfig

    if syntax not in HIER_PLATFORMS:
        raise ValueError(f"no hier_config remediation for syntax {syntax!r} (have: {', '.join(HIER_PLATFORMS)})")
    driver = _hier_driver(syntax)
    workflow = WorkflowRemediation(get_hconfig(driver, _hier_text(running)), get_hconfig(driver, _hier_text(intended)))
    body: list[str] = []

    def walk(node: object, depth: int) -> None:
        for child in sorted(node.children):  # type: ignore[attr-defined]
            body.append(" " * depth + child.text)
            if child.children:
                walk(child, depth + 1)
                body.append(" " * depth + _exit_for(child.text))

    walk(workflow.remediation_config, 0)
    if not body:
        return []
    enter, leave, write = SESSION[syntax]
    return [enter, *body, leave, *([write] if save else [])]


# Lines our IOS templates write that IOS overwrites in place (a second value replaces the first), which
# hier_config's stock IOS rules would remove first with `no ...`: measured as IOS behaves, a `no
# hostname` would name the router "Router" for a moment, a `no ip ospf 1 area 0` drops the adjacency.
IOS_OVERWRITTEN = ((r"^hostname ",), (r"^interface ", r"^bandwidth "), (r"^interface ", r"^mtu "),
                   (r"^interface ", r"^ip ospf cost "), (r"^interface ", r"^ip ospf \d+ area "),
                   (r"^router ospf ", r"^auto-cost reference-bandwidth "), (r"^router ospf ", r"^router-id "))


def _hier_driver(syntax: str) -> object:
    from hier_config import Platform, get_hconfig_driver
    from hier_config.models import IdempotentCommandsRule, MatchRule

    driver = get_hconfig_driver(Platform[HIER_PLATFORMS[syntax]])
    if syntax == "ios":
        driver.rules.idempotent_commands.extend(
            IdempotentCommandsRule(match_rules=tuple(MatchRule(re_search=regex) for regex in path))
            for path in IOS_OVERWRITTEN)
    return driver


def _hier_text(config: str) -> str:
    # IOS's show-run header and `end` are no configuration; hier_config would read them as lines to remove.
    return "\n".join(line for line in config.splitlines()
                     if line.strip() not in ("end",) and not line.startswith(("Building configuration",
                                                                               "Current configuration")))


def remediation_from_configs(running: str, intended: str, syntax: str, save: bool = True) -> list[str]:
    """Remediation for drivers that report whole configs: hier_config for the syntaxes it knows.

    >>> remediation_from_configs("hostname a\\n", "hostname b\\n", "ios", save=False)
    ['configure terminal', 'hostname b', 'end']
    """
    return hier_remediation(running, intended, syntax, save)
