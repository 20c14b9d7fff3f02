"""`dzops onboard HOST... | --site S | --all`: trust a device's host key once, prepare it, say what is ready.

The host key's SHA256 fingerprint is shown and confirmed by a person (or named with
`--accept-fingerprint`, or taken blindly with `--accept-new` for scripts) before it is written to
known_hosts. A key that differs from known_hosts is refused with both fingerprints; it is replaced
only when the person names the new fingerprint with `--accept-fingerprint`.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from dzops.cli.contract import contract
from dzops.cli.exit_codes import exit_code_for_results
from dzops.cli.output import JsonOption, RetryFailedOption, Settings, emit_json, emit_text, record_results, say


def select(inventory: Any, hosts: list[str], site: str | None, every: bool) -> list[str]:
    """The devices named on the command line: hosts, a site's devices, or every device."""
    from dzops.exceptions import UsageError

    if sum((bool(hosts), site is not None, every)) != 1:
        raise UsageError("name the devices: HOST..., --site SITE or --all (exactly one of them)")
    if every:
        return sorted(inventory.devices)
    if site is not None:
        if site not in inventory.sites:
            raise UsageError(f"no site '{site}' in the inventory (sites: {', '.join(sorted(inventory.sites))})")
        return sorted(name for name, device in inventory.devices.items() if device.site == site)
    unknown = [h for h in hosts if h not in inventory.devices]
    if unknown:
        raise UsageError(f"not in the inventory: {', '.join(unknown)}")
    return list(dict.fromkeys(hosts))


def decide(check: Any, accepted: set[str], accept_new: bool, ask: Any) -> tuple[str, bool]:
    """What to do with one offered key: ('known'|'added'|'replaced'|'unknown'|'changed', write it?).

    >>> from dzops.execute.ssh import HostKeyCheck
    >>> new = HostKeyCheck("unknown", "SHA256:new", "ssh-ed25519")
    >>> decide(new, set(), True, None), decide(new, {"SHA256:new"}, False, None), decide(new, set(), False, lambda c: False)
    (('added', True), ('added', True), ('unknown', False))
    >>> moved = HostKeyCheck("changed", "SHA256:new", "ssh-ed25519", ("SHA256:old",))
    >>> decide(moved, set(), True, lambda c: True), decide(moved, {"SHA256:new"}, False, None)
    (('changed', False), ('replaced', True))
    """
    if check.state == "known":
        return "known", False
    if check.state == "changed":
        # Never on --accept-new or a yes at a prompt: only the fingerprint a person checked.
        return ("replaced", True) if check.offered in accepted else ("changed", False)
    if check.offered in accepted or accept_new or (ask is not None and ask(check)):
        return "added", True
    return "unknown", False


@contract
def onboard(
    ctx: typer.Context,
    hosts: Annotated[Optional[list[str]], typer.Argument(help="Devices to onboard.")] = None,  # noqa: UP045
    site: Annotated[Optional[str], typer.Option("--site", help="Every device of this site.")] = None,  # noqa: UP045
    every: Annotated[bool, typer.Option("--all", help="Every device of the inventory.")] = False,
    accept_fingerprint: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--accept-fingerprint", metavar="SHA256:...",
        help="Trust a host key with this fingerprint (checked at the device's console); repeatable.")] = None,
    accept_new: Annotated[bool, typer.Option(
        "--accept-new", help="Trust keys of devices not yet in known_hosts without asking (never a changed key).")
    ] = False,
    json_output: JsonOption = False,
    retry_failed: RetryFailedOption = None,
) -> None:
    """Trust new devices' host keys, prepare them (FRR: roles/dz_router_access) and report what is ready."""
    from dzops.exceptions import UsageError
    from dzops.execute.onboard import Readiness, prepare, scan_host_keys, trust
    from dzops.execute.ssh import changed_key_message, credentials

    settings: Settings = ctx.obj
    inventory = settings.load_inventory()
    if inventory.known_hosts is None:
        raise UsageError("the inventory sets no dzops_known_hosts (group_vars/all): onboard has nowhere to "
                         "write trusted host keys")
    from dzops.cli.runs import retried

    every = every or (settings.retry is not None and not (hosts or site))  # the retried run's failed devices
    names = retried(settings, select(inventory, list(hosts or []), site, every))
    if settings.limit:
        from dzops.inventory.limit import select_hosts

        limited = set(select_hosts(inventory, settings.limit))
        names = [n for n in names if n in limited]
    accepted = {f if f.startswith("SHA256:") else f"SHA256:{f}" for f in accept_fingerprint or []}
    interactive = sys.stdin.isatty() and not (settings.json or json_output)

    def asker(host: str) -> Any:
        def ask(check: Any) -> bool:
            return typer.confirm(f"{host} ({inventory.devices[host].mgmt_address}) offers {check.key_type} host key "
                                 f"{check.offered}. Is this the key shown at its console?", default=False, err=True)
        return ask if interactive else None

    say(f"dzops: onboarding {len(names)} device(s); trusted host keys go to {inventory.known_hosts}")
    results: dict[str, Readiness] = {}
    trusted: list[str] = []
    for host, check in scan_host_keys(inventory, names).items():
        if isinstance(check, Readiness):
            results[host] = check
            continue
        state, write = decide(check, accepted, accept_new, asker(host))
        readiness = Readiness(host, fingerprint=check.offered, key=state)
        results[host] = readiness
        if state == "changed":
            creds = credentials(inventory, inventory.devices[host])
            readiness.fail("refused", f"{host}: {changed_key_message(creds, check.known, check.offered)}")
            continue
        if state == "unknown":
            readiness.fail("refused", f"{host}: host key {check.offered} not confirmed: run again at a terminal, "
                                      f"or pass --accept-fingerprint {check.offered} after checking it at the "
                                      "device's console")
            continue
        if settings.check:
            readiness.checks["check"] = f"would {'replace' if state == 'replaced' else 'trust'} this key" \
                if write else "key already trusted"
            continue
        if write:
            trust(inventory, check, replace=state == "replaced")
            say(f"dzops: {host}: {'REPLACED the changed' if state == 'replaced' else 'trusted the'} host key "
                f"{check.offered}")
        trusted.append(host)
    if settings.check:
        say("dzops: --check: no host key written, no device prepared")
    else:
        prepare(inventory, trusted, results, progress=lambda _s, message: say(f"dzops: {message}"))
    ordered = [results[h] for h in names]
    record_results(ordered)
    if settings.json or json_output:
        emit_json({"known_hosts": str(inventory.known_hosts), "devices": [r.to_dict() for r in ordered]})
    else:
        for r in ordered:
            checks = " ".join(f"{k.replace(' ', '-')}={v.split(' ')[0]}" for k, v in r.checks.items())
            key = f"key={r.key} {r.fingerprint}" if r.fingerprint else ""
            emit_text(f"{r.host:<28} {r.status:<11} {key} {checks}".rstrip())
    for r in ordered:
        if r.error:
            say(f"dzops: {r.status}: {r.error}")
    statuses = ["ok" if r.status == "ready" else "failed" if r.status in ("failed", "refused") else r.status
                for r in ordered]
    raise typer.Exit(exit_code_for_results(statuses))
