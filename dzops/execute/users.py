"""Staff accounts on devices: apply the plan (dzops.plan.users) and audit what is really there.

- Linux hosts: `playbooks/users.yml` (role dz_users) through ansible-runner; what happened to each
  login comes from the runner events of the role's tasks, never from ansible's stdout.
- FRR routers: `sudo -n /usr/local/lib/dzops/account list|present|absent ...`, the audited helper
  roles/dz_router_access installs (its sudoers drop-in allows exactly that), one SSH connection per
  router, host keys checked.
- Cisco IOS and RouterOS: through NAPALM (dzops.execute.drivers.napalm): the whole candidate with
  the inventory's accounts in place of the running ones (everything else kept as it runs),
  load_replace_candidate, compare (`--check`), commit with commit-confirm where the platform has it,
  verified with get_users (present logins there, offboarded ones gone), then confirmed or rolled back.
- Other platforms (Cumulus switches, hostapd APs): reported as skipped.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from dzops.exceptions import ConnectionFailed, DeviceError
from dzops.execute.fanout import current_forks
from dzops.execute.ssh import Progress, explain_host_key, fan_out
from dzops.inventory.models import Inventory
from dzops.models import HostResult
from dzops.plan.users import (
    LINUX_PLATFORMS,
    VENDOR_PLATFORMS,
    Account,
    frr_account_command,
    managed_logins,
    plan_users,
    role_vars,
    service_logins,
)

log = logging.getLogger(__name__)

STAFF_UIDS = range(1000, 60001)  # Debian's UID_MIN..UID_MAX (inclusive, as roles/dz_users): people, not system accounts or nobody


@dataclass(frozen=True)
class Finding:
    host: str
    login: str
    kind: str  # unmanaged (not in the inventory), unwanted (inventory says absent here), missing
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)




def _split(inventory: Inventory, hosts: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {"linux": [], "frr": [], "vendor": [], "other": []}
    for host in hosts:
        platform = inventory.devices[host].platform
        kind = ("linux" if platform in LINUX_PLATFORMS else "frr" if platform == "frr"
                else "vendor" if platform in VENDOR_PLATFORMS else "other")
        groups[kind].append(host)
    return groups


# --- FRR routers -------------------------------------------------------------------------------


def _open_frr(inventory: Inventory, host: str) -> Any:
    """An open FRR driver, or the result that says why the router could not be reached."""
    try:
        return _frr_driver(inventory, host)
    except ConnectionFailed as exc:
        return HostResult(host=host, status="unreachable", error=str(exc))
    except DeviceError as exc:
        return HostResult(host=host, status="failed", error=str(exc))


def _frr_driver(inventory: Inventory, host: str) -> Any:
    from dzops.execute.drivers.frr import Driver
    from dzops.execute.ssh import credentials

    driver = Driver(credentials(inventory, inventory.devices[host]))
    driver.open()
    return driver


def _account(driver: Any, command: str, stdin: str = "") -> tuple[int, str, str]:
    """Run a plan's `account VERB ARGS...` line through the router's account helper.

    The words are passed one by one (the helper validates each itself); the full name is the last
    words, which the helper joins again.
    """
    words = command.split()
    return driver.account(words[1:] if words[:1] == ["account"] else words, stdin)


def parse_account_list(text: str) -> dict[str, dict[str, str]]:
    """`account list` output -> login -> {uid, access, locked, name}.

    >>> parse_account_list("pema:2002:readonly:no:Pema Lhamo\\n")
    {'pema': {'uid': '2002', 'access': 'readonly', 'locked': 'no', 'name': 'Pema Lhamo'}}
    """
    accounts = {}
    for line in text.splitlines():
        parts = line.split(":", 4)
        if len(parts) == 5:
            accounts[parts[0]] = dict(zip(("uid", "access", "locked", "name"), parts[1:], strict=True))
    return accounts


def _frr_list(driver: Any) -> dict[str, dict[str, str]]:
    status, out, err = _account(driver, "account list")
    if status != 0:
        raise DeviceError(driver.credentials.host, f"account list failed: {(err or out).strip()}")
    return parse_account_list(out)


def _frr_apply(inventory: Inventory, host: str, accounts: list[Account], check: bool) -> HostResult:
    result = HostResult(host=host, data={"accounts": {}})
    actions: dict[str, str] = result.data["accounts"]
    driver = _open_frr(inventory, host)
    if isinstance(driver, HostResult):
        return driver
    try:
        existing = _frr_list(driver)
        for account in accounts:
            found = existing.get(account.login)
            if account.state == "absent":
                if found is None:
                    continue
                if check:
                    actions[account.login] = "would remove"
                    continue
                command, stdin = frr_account_command(account)
            else:
                if check:
                    actions[account.login] = ("would create" if found is None else
                                              "would update" if found["access"] != account.access else "present")
                    continue
                command, stdin = frr_account_command(account)
            status, out, err = _account(driver, command, stdin)
            if status != 0:
                actions[account.login] = "failed"
                result.status, result.error = "failed", f"{account.login}: {(err or out).strip().splitlines()[-1:]}"
                continue
            word = out.strip().split()[0] if out.strip() else "done"
            actions[account.login] = word
    except DeviceError as exc:
        result.status, result.error = ("unreachable" if isinstance(exc, ConnectionFailed) else "failed"), str(exc)
    finally:
        driver.close()
    result.changed = any(a in ("created", "updated", "removed") or a.startswith("would") for a in actions.values())
    if result.status == "ok" and result.changed:
        result.status = "changed"
    result.diff = "\n".join(f"{login}: {action}" for login, action in actions.items()
                            if action not in ("unchanged", "present"))
    return result


# --- Cisco IOS and RouterOS (NAPALM) ---------------------------------------------------------------


def users_verified(found: dict[str, Any], accounts: list[Account]) -> str | None:
    """None when get_users shows every present login and no absent one, else what is wrong.

    >>> users_verified({"karma": {}}, [Account("karma", "present"), Account("sonam", "absent")]) is None
    True
    >>> users_verified({"sonam": {}}, [Account("karma", "present"), Account("sonam", "absent")])
    'karma missing; sonam still there'
    """
    problems = [f"{a.login} missing" for a in accounts if a.state == "present" and a.login not in found]
    problems += [f"{a.login} still there" for a in accounts if a.state == "absent" and a.login in found]
    return "; ".join(problems) or None


def _vendor_apply(inventory: Inventory, host: str, accounts: list[Account], check: bool) -> HostResult:
    from dzops.execute.drivers.base import ConfigDiff
    from dzops.execute.napalm_apply import apply_on_device
    from dzops.plan.candidates import candidate
    from dzops.platforms import refusal

    device = inventory.devices[host]
    refused = refusal(device.platform, "config_replace", host=host) or refusal(device.platform, "get_users", host=host)
    if refused:
        return HostResult(host=host, status="failed", error=refused)
    result = HostResult(host=host, data={"accounts": {}})

    def work(driver: Any) -> ConfigDiff:
        before = driver.get_users()
        intended = candidate(inventory, device, driver.get_config(), accounts=accounts, parts=["users"])
        actions: dict[str, str] = result.data["accounts"]
        for account in accounts:
            there = account.login in before
            if account.state == "absent" and there:
                actions[account.login] = "would remove" if check else "removed"
            elif account.state == "present":
                actions[account.login] = ("would create" if check else "created") if not there else "present"
        if check:
            diff = driver.compare_config(intended)
        else:
            outcome = driver.apply(intended, verify=lambda: users_verified(driver.get_users(), accounts))
            diff = outcome.diff
            if outcome.rolled_back:
                result.status, result.error = "failed", f"{host}: accounts not as intended ({outcome.reason}): rolled back"
                actions.update({login: "rolled back" for login, action in actions.items() if action != "present"})
        return diff  # carries secret hashes: apply_on_device shows it scrubbed as the platform's config

    return apply_on_device(inventory, host, result, work)


# --- Linux hosts (ansible-runner) ----------------------------------------------------------------


def _loop_results(event_result: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in event_result.get("results", []) if isinstance(r, dict)]


def linux_actions(run: Any, host: str, present: list[str]) -> dict[str, str]:
    """login -> what the role did on `host`, from the runner events of its tasks."""
    actions: dict[str, str] = {login: "unchanged" for login in present}
    for task in ("Account", "SSH directory", "Authorized keys"):
        for event in run.host_events(host, task):
            # Loop results come in loop order; no_log censors `item`, so the index says who.
            for index, item in enumerate(_loop_results(event.result)):
                if item.get("changed") and index < len(present):
                    actions[present[index]] = "created" if task == "Account" and item.get("create_home") \
                        else ("updated" if actions[present[index]] == "unchanged" else actions[present[index]])
    archived: set[str] = set()
    for event in run.host_events(host, "Archive home"):
        archived |= {str(item.get("item")) for item in _loop_results(event.result) if item.get("changed")}
    for event in run.host_events(host, "Account removed (sessions ended, home deleted)"):
        for item in _loop_results(event.result):
            if item.get("changed"):
                login = str(item.get("item"))
                actions[login] = "removed, home archived" if login in archived else "removed"
    return actions


def _linux_apply(inventory: Inventory, hosts: list[str], plan: dict[str, list[Account]],
                 check: bool, mode: str = "apply", **runner: Any) -> tuple[list[HostResult], Any]:
    """`runner`: run_playbook's vault_password_file and on_event, passed through."""
    from dzops.execute.ansible import run_playbook

    if not hosts:
        return [], None
    extravars = {"dz_users_plan": {h: role_vars(plan[h]) for h in hosts}, "dz_users_mode": mode,
                 "dz_users_hosts": "all"}
    run = run_playbook(inventory.root, "users.yml", limit=",".join(hosts), extravars=extravars, check=check,
                       forks=current_forks(), known_hosts=inventory.known_hosts, **runner)
    results = []
    for host in hosts:
        result = run.hosts.get(host) or HostResult(host=host, status="failed", error="no result from ansible")
        for event in run.host_events(host):
            refused = explain_host_key(inventory, host, str(event.result.get("msg") or "")) \
                if event.status == "unreachable" else None
            if refused is not None:
                result.status, result.error = "failed", refused
                break
        if mode == "apply":
            present = [a.login for a in plan[host] if a.state == "present"]
            actions = linux_actions(run, host, present)
            if check:
                actions = {k: ("would " + ("remove" if v.startswith("removed") else "change") if v != "unchanged" else v)
                           for k, v in actions.items()}
            result.data["accounts"] = actions
            result.diff = "\n".join(f"{login}: {action}" for login, action in actions.items() if action != "unchanged")
        results.append(result)
    return results, run


# --- apply and audit ----------------------------------------------------------------------------


def apply_users(inventory: Inventory, hosts: list[str], *, check: bool = False,
                progress: Progress | None = None, **runner: Any) -> list[HostResult]:
    """Make every host's staff accounts match the inventory; one HostResult per host."""
    progress = progress or (lambda _s, _m: None)
    plan = plan_users(inventory, hosts)
    kinds = _split(inventory, hosts)
    results: dict[str, HostResult] = {}
    progress("linux", f"{len(kinds['linux'])} host(s) through ansible")
    linux_results, _ = _linux_apply(inventory, kinds["linux"], plan, check, **runner)
    results.update({r.host: r for r in linux_results})
    progress("frr", f"{len(kinds['frr'])} router(s) over SSH")
    results.update({r.host: r for r in fan_out(
        lambda h: _frr_apply(inventory, h, plan[h], check), kinds["frr"])})
    progress("vendor", f"{len(kinds['vendor'])} device(s) through NAPALM")
    results.update({r.host: r for r in fan_out(
        lambda h: _vendor_apply(inventory, h, plan[h], check), kinds["vendor"])})
    for host in kinds["other"]:
        results[host] = HostResult(host=host, status="skipped",
                                   error=f"accounts on platform {inventory.devices[host].platform} are not managed")
    return [results[h] for h in hosts]


def _staff(entries: dict[str, Any], ignore: set[str]) -> dict[str, str]:
    """login -> full name of people's accounts in a getent passwd map."""
    staff = {}
    for login, fields in entries.items():
        try:
            uid = int(fields[1])
        except (TypeError, ValueError, IndexError):
            continue
        if uid in STAFF_UIDS and login not in ignore:
            staff[login] = str(fields[3]).split(",")[0]
    return staff


def findings_for(host: str, accounts: list[Account], found: dict[str, str], managed: set[str]) -> list[Finding]:
    """Compare one host's staff accounts with its plan.

    >>> acc = [Account("karma", "present"), Account("old", "absent", reason="offboarded")]
    >>> [(f.login, f.kind) for f in findings_for("h", acc, {"old": "", "tashi": "Tashi"}, {"karma", "old"})]
    [('tashi', 'unmanaged'), ('old', 'unwanted'), ('karma', 'missing')]
    """
    wanted = {a.login: a for a in accounts}
    out = [Finding(host, login, "unmanaged", f"not in the inventory ({name})" if name else "not in the inventory")
           for login, name in sorted(found.items()) if login not in managed]
    out += [Finding(host, login, "unwanted", wanted[login].reason or "absent in the inventory")
            for login in sorted(found) if login in wanted and wanted[login].state == "absent"]
    out += [Finding(host, a.login, "missing", f"role {a.role}") for a in accounts
            if a.state == "present" and a.login not in found]
    return out


def audit_users(inventory: Inventory, hosts: list[str], *,
                progress: Progress | None = None, **runner: Any) -> tuple[list[Finding], list[HostResult]]:
    """Accounts on hosts but not (or no longer) in the inventory, and inventory users missing."""
    progress = progress or (lambda _s, _m: None)
    plan = plan_users(inventory, hosts)
    kinds = _split(inventory, hosts)
    managed, ignore = managed_logins(inventory), service_logins(inventory)
    findings: list[Finding] = []
    results: dict[str, HostResult] = {}
    linux_results, run = _linux_apply(inventory, kinds["linux"], plan, check=False, mode="audit", **runner)
    for result in linux_results:
        results[result.host] = result
        events = run.host_events(result.host, "Accounts on this host") if run else []
        entries = events[-1].result.get("ansible_facts", {}).get("getent_passwd") if events else None
        if entries is None:
            result.status = "unreachable" if result.status == "unreachable" else "failed"
            result.error = result.error or "could not read the account database"
            continue
        found = _staff(entries, ignore)
        result.data["accounts"] = found
        findings += findings_for(result.host, plan[result.host], found, managed)

    def frr(host: str) -> HostResult:
        driver = _open_frr(inventory, host)
        if isinstance(driver, HostResult):
            return driver
        try:
            listed = _frr_list(driver)
        except DeviceError as exc:
            return HostResult(host=host, status="failed", error=str(exc))
        finally:
            driver.close()
        return HostResult(host=host, data={"accounts": {k: v["name"] for k, v in listed.items() if k not in ignore}})

    for result in fan_out(frr, kinds["frr"]):
        results[result.host] = result
        if result.status == "ok":
            findings += findings_for(result.host, plan[result.host], result.data["accounts"], managed)
    def vendor(host: str) -> HostResult:
        from dzops.execute.drivers import driver_for
        from dzops.execute.ssh import credentials
        from dzops.platforms import refusal

        device = inventory.devices[host]
        refused = refusal(device.platform, "get_users", host=host)
        if refused:
            return HostResult(host=host, status="failed", error=refused)
        driver: Any = driver_for(device.platform, credentials(inventory, device))
        try:
            driver.open()
            listed = driver.get_users()
        except DeviceError as exc:
            return HostResult(host=host, status="unreachable" if isinstance(exc, ConnectionFailed) else "failed",
                              error=str(exc))
        finally:
            driver.close()
        return HostResult(host=host, data={"accounts": {login: "" for login in listed if login not in ignore}})

    for result in fan_out(vendor, kinds["vendor"]):
        results[result.host] = result
        if result.status == "ok":
            findings += findings_for(result.host, plan[result.host], result.data["accounts"], managed)
    for host in kinds["other"]:
        results[host] = HostResult(host=host, status="skipped",
                                   error=f"accounts on platform {inventory.devices[host].platform} are not audited")
    progress("audit", f"{len(findings)} finding(s)")
    return findings, [results[h] for h in hosts]
