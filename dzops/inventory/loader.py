"""Load the inventory through ansible-core itself and validate it into `Inventory`.

Ansible does the parsing, Vault decryption, group/host precedence and `{{ }}` templating; we only
read its results. ansible-core 2.19 tags every loaded value with its `Origin` (file, line), which is
how every problem points at the line to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dzops.exceptions import DzopsError, InventoryError, Problem, VaultError
from dzops.inventory import models as m
from dzops.inventory.vault_password import vault_password_file
from dzops.platforms import FUNCTION_GROUPS

SITE_GROUP_PREFIX = "site_"

# Dzongkhag-wide settings: defined once in group_vars/all, read once.
GLOBAL_KEYS = (
    "dzongkhag", "address_pools", "sites", "wan_links", "lan_links", "vlans", "ssid_profiles",
    "user_roles", "users", "mail", "schedules", "backup_repository", "report_dir", "dzops_known_hosts",
    "dzops_forks", "dzops_ledger_retention_days", "health",
)
REQUIRED_GLOBALS = ("dzongkhag", "address_pools", "sites")
# Device model field <- Ansible variable.
HOST_KEYS = {
    "mgmt_address": "ansible_host",
    "username": "ansible_user",
    "password": "ansible_password",
    "port": "ansible_port",
    "private_key_file": "ansible_ssh_private_key_file",
    "become": "ansible_become",
    "become_password": "ansible_become_password",
    "router_login": "dzops_router_login",
    "platform": "platform",
    "device_role": "device_role",
    "model": "model",
    "interfaces": "interfaces",
    "loopback": "loopback",
    "lan_interface": "lan_interface",
    "uplink": "uplink",
    "radio": "radio",
    "ssids": "ssids",
    "services": "services",
    "health_checks": "health_checks",
    "health_thresholds": "dzops_health_thresholds",
    "ospf_area": "ospf_area",
    "gateway": "gateway",
    "data_backups": "data_backups",
}
SECRET_SUFFIXES = ("password", "passwd", "_pass", "psk", "secret", "passphrase", "community", "private_key",
                   "password_hash")


def is_secret_key(key: object) -> bool:
    """Whether a variable or field name holds a secret by its name.

    >>> [is_secret_key(k) for k in ("ansible_password", "ansible_ssh_pass", "psk", "ssh_keys", "radius_secret", "vlan")]
    [True, True, True, False, True, False]
    """
    return isinstance(key, str) and key.lower().endswith(SECRET_SUFFIXES)


@dataclass
class RawHost:
    name: str
    groups: tuple[str, ...]
    vars: dict[str, Any]


@dataclass
class Loaded:
    """What ansible-core produced, before validation; kept for masking and location lookups."""

    root: Path
    hosts: dict[str, RawHost]
    groups: dict[str, tuple[str, ...]]
    problems: list[Problem] = field(default_factory=list)
    # each host's first mention in hosts.yml (an origin-tagged key): group membership is fixed there
    listed_at: dict[str, Any] = field(default_factory=dict)


def inventory_source(root: Path) -> Path:
    """The hosts file inside an inventory directory (or the file itself)."""
    if root.is_file():
        return root
    for name in ("hosts.yml", "hosts.yaml"):
        if (root / name).is_file():
            return root / name
    raise InventoryError([Problem(f"no hosts.yml in inventory directory {root}", file=str(root))])


def vault_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*.y*ml")) if p.is_file() and _is_vault_file(p)]


def _is_vault_file(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(14) == b"$ANSIBLE_VAULT"
    except OSError:
        return False


def display_path(path: str) -> str:
    """A path as people want to read it: relative to the current directory when inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _origin(value: Any) -> tuple[str | None, int | None]:
    from ansible._internal._datatag._tags import Origin

    tag = Origin.get_tag(value)
    if tag is None:
        return None, None
    return tag.path, tag.line_num


def load_ansible(root: Path, password_file: Path | None) -> Loaded:
    """Run ansible-core's inventory machinery; return untemplated host vars and groups."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecret, VaultSecretsContext
    from ansible.vars.manager import VariableManager

    source = inventory_source(root).resolve()
    root = source.parent
    loader = _hosts_file_once(DataLoader, str(source))()
    secrets: list[tuple[str, Any]] = []
    if password_file is not None:
        try:
            secret = password_file.read_bytes().strip()
        except OSError as exc:
            raise VaultError([Problem(f"cannot read vault password file: {exc.strerror}",
                                      file=str(password_file))]) from None
        secrets = [("default", VaultSecret(secret))]
        _check_vault_files(root, secrets)
    loader.set_vault_secrets(secrets)
    # ansible keeps these per process; dzops may load several inventories in one (tests, tools).
    VaultSecretsContext._current = None
    VaultSecretsContext.initialize(VaultSecretsContext(secrets))
    _forget_cached_var_files()
    try:
        # ansible only warns about a broken hosts.yml and goes on with no hosts; read it first to fail here.
        hosts_file = loader.load_from_file(str(source))
        manager = InventoryManager(loader=loader, sources=[str(source)])
        variables = VariableManager(loader=loader, inventory=manager)
        hosts: dict[str, RawHost] = {}
        with _no_facts_to_clean():
            for host in manager.get_hosts():
                host_vars = variables.get_vars(host=host, include_hostvars=False)
                hosts[host.name] = RawHost(
                    name=host.name,
                    groups=tuple(g.name for g in host.get_groups()),
                    vars=host_vars,
                )
    except AnsibleError as exc:
        message = str(getattr(exc, "message", exc)).splitlines()[0]
        file, line = _error_origin(exc)
        raise InventoryError([Problem(message, file=display_path(file or str(source)), line=line)]) from None
    groups = {name: tuple(h.name for h in group.get_hosts()) for name, group in manager.groups.items()}
    loaded = Loaded(root=root, hosts=hosts, groups=groups, listed_at=_hosts_listed_at(hosts_file))
    loaded.problems.extend(_orphan_var_files(root, hosts, groups))
    return loaded


@contextmanager
def _no_facts_to_clean() -> Iterator[None]:
    """An inventory load has no gathered facts, yet get_vars cleans the (empty) facts of every host,
    globbing the connection plugin folders each time: a tenth of a 5,000-host load. Without
    fact injection it only adds an empty `ansible_local`, which has no origin and is never read."""
    from ansible import constants

    inject = constants.INJECT_FACTS_AS_VARS
    constants.INJECT_FACTS_AS_VARS = False
    try:
        yield
    finally:
        constants.INJECT_FACTS_AS_VARS = inject


def _hosts_file_once(base: type, source: str) -> type:
    """A DataLoader that parses hosts.yml once: ansible's auto and yaml inventory plugins each parse
    and deep-copy it again (cache='none'), which was a third of the load of a 5,000-host inventory.
    Nothing mutates the parsed hosts.yml in a way another reader minds (the yaml plugin only
    normalises a `hosts: name` string into a mapping, as it would in its own copy)."""

    class HostsFileOnce(base):  # type: ignore[misc, valid-type]
        def load_from_file(self, file_name: str, cache: str = "all", unsafe: bool = False,
                           json_only: bool = False, trusted_as_template: bool = False) -> Any:
            if file_name == source:  # as the yaml plugin asks for it (by the path given): trusted templates
                cache, unsafe, trusted_as_template = "all", True, True
            return super().load_from_file(file_name, cache=cache, unsafe=unsafe, json_only=json_only,
                                          trusted_as_template=trusted_as_template)

    return HostsFileOnce


def _hosts_listed_at(node: Any, found: dict[str, Any] | None = None) -> dict[str, Any]:
    """Host name -> its key in hosts.yml where first listed under some group's `hosts:`."""
    found = {} if found is None else found
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "hosts" and isinstance(value, dict):
                for host in value:
                    found.setdefault(str(host), host)
            else:
                _hosts_listed_at(value, found)
    return found


def _forget_cached_var_files() -> None:
    """host_group_vars caches found files by path string for the whole process: start clean."""
    from ansible.plugins.vars import host_group_vars

    host_group_vars.FOUND.clear()
    host_group_vars.NAK.clear()
    host_group_vars.CANONICAL_PATHS.clear()


def _error_origin(exc: BaseException) -> tuple[str | None, int | None]:
    """Where an ansible error points: its own object, or the one of the error it wraps."""
    from ansible._internal._datatag._tags import Origin

    seen: BaseException | None = exc
    while seen is not None:
        obj = getattr(seen, "obj", None)
        origin = obj if isinstance(obj, Origin) else Origin.get_tag(obj) if obj is not None else None
        if origin is not None and origin.path:
            return origin.path, origin.line_num
        seen = seen.__cause__ or seen.__context__
    return None, None


def _check_vault_files(root: Path, secrets: list[tuple[str, Any]]) -> None:
    """Name the vault file a wrong password fails on, instead of ansible's anonymous error."""
    from ansible.parsing.vault import VaultLib

    vault = VaultLib(secrets)
    problems = []
    for path in vault_files(root):
        try:
            vault.decrypt(path.read_bytes())
        except Exception:  # noqa: BLE001 - any failure here means this password does not open it
            problems.append(Problem("cannot decrypt: wrong vault password", file=display_path(str(path))))
    if problems:
        raise VaultError(problems)


def _orphan_var_files(root: Path, hosts: dict[str, RawHost], groups: dict[str, tuple[str, ...]]) -> list[Problem]:
    problems = []
    for kind, known in (("host_vars", hosts), ("group_vars", groups)):
        folder = root / kind
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            name = entry.name if entry.is_dir() else entry.stem
            if entry.name.startswith(".") or (entry.is_file() and entry.suffix not in (".yml", ".yaml")):
                continue
            if name not in known:
                what = "host" if kind == "host_vars" else "group"
                problems.append(Problem(f"{kind} file for a {what} that is not defined in hosts.yml",
                                        file=display_path(str(entry)), host=name if kind == "host_vars" else None))
    return problems


class Resolver:
    """Templates only the values that need it, remembering results by the raw value's identity.

    Group vars are the same objects for every host, so each Vault reference is decrypted once per
    run, not once per host.
    """

    def __init__(self) -> None:
        self._memo: dict[int, Any] = {}
        self._keep: list[Any] = []  # keep raw values alive so their ids stay unique

    def resolve(self, value: Any, host_vars: dict[str, Any], loader: Any = None, path: tuple[Any, ...] = ()) -> Any:
        from ansible.errors import AnsibleError
        from ansible.parsing.vault import EncryptedString

        if isinstance(value, EncryptedString) or (isinstance(value, str) and "{{" in value):
            key = id(value)
            if key not in self._memo:
                from ansible.template import Templar

                try:
                    self._memo[key] = Templar(variables=host_vars).template(value)
                except AnsibleError as exc:
                    raise Unresolved(value, path, exc) from exc
                self._keep.append(value)
            return self._memo[key]
        if isinstance(value, dict):
            return {k: self.resolve(v, host_vars, path=(*path, k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.resolve(v, host_vars, path=(*path, i)) for i, v in enumerate(value)]
        return value


class Unresolved(DzopsError):
    """A value ansible could not template (an undefined variable): which raw leaf, and where below the field.

    Never leaves the loader: `_Validator.resolve` turns it into one Problem at the leaf."""

    def __init__(self, raw: Any, path: tuple[Any, ...], error: Exception) -> None:
        super().__init__(str(error))
        self.raw, self.path, self.error = raw, path, error


def is_vaulted(value: Any) -> bool:
    """A resolved value that came from Vault: inline `!vault` or a vault-encrypted file."""
    from ansible._internal._datatag._tags import VaultedValue

    if VaultedValue.is_tagged_on(value):
        return True
    path, _ = _origin(value)
    return path is not None and _is_vault_file_seen(path)


_vault_file_seen: dict[str, tuple[tuple[int, int, int], bool]] = {}


def _is_vault_file_seen(path: str) -> bool:
    """`_is_vault_file`, asked once per file version: every host's password comes from the same file."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    version = (info.st_ino, info.st_mtime_ns, info.st_size)
    seen = _vault_file_seen.get(path)
    if seen is None or seen[0] != version:
        seen = _vault_file_seen[path] = (version, _is_vault_file(Path(path)))
    return seen[1]


def locate(raw: Any, loc: tuple[Any, ...]) -> tuple[str | None, int | None]:
    """The file:line of the deepest raw value along a pydantic error location."""
    best = _origin(raw)
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list | tuple) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
        here = _origin(node)
        if here[0]:
            best = here
    return best


def _walk_secrets(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if is_secret_key(key) and not isinstance(item, dict | list):
                yield sub, item
            else:
                yield from _walk_secrets(item, sub)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk_secrets(item, f"{path}[{index}]")


class _Validator:
    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.problems: list[Problem] = list(loaded.problems)
        self.resolver = Resolver()
        self._unresolved: set[int] = set()  # raw leaves already reported: a value is resolved more than once

    def problem(self, message: str, raw: Any = None, host: str | None = None, field: str | None = None,
                loc: tuple[Any, ...] = ()) -> None:
        file, line = locate(raw, loc) if raw is not None else (None, None)
        if file is not None:
            file = display_path(file)
        self.problems.append(Problem(message, file=file, line=line, host=host, field=field))

    def resolve(self, raw: Any, host_vars: dict[str, Any], host: str | None, field: str) -> Any:
        from ansible.errors import AnsibleError

        try:
            return self.resolver.resolve(raw, host_vars)
        except Unresolved as exc:
            if id(exc.raw) not in self._unresolved:
                self._unresolved.add(id(exc.raw))
                text = str(getattr(exc.error, "message", exc.error)).splitlines()[0]
                where = ".".join([field, *(str(p) for p in exc.path)])
                self.problem(f"cannot resolve value: {text}", raw, host, where, exc.path)
            return None
        except AnsibleError as exc:
            text = str(getattr(exc, "message", exc)).splitlines()[0]
            self.problem(f"cannot resolve value: {text}", raw, host, field)
            return None

    def model(self, cls: type[BaseModel], data: Any, raw: Any, host: str | None, field: str) -> Any:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(error["loc"])
                where = ".".join([field, *(str(p) for p in loc)]) if loc else field
                message = error["msg"].removeprefix("Value error, ")
                self.problem(message, raw, host, where, loc)
            return None

    def secrets(self, raw: Any, host_vars: dict[str, Any], host: str | None, field: str) -> None:
        for path, value in _walk_secrets({field: raw}, ""):
            if value is None:
                continue
            resolved = self.resolve(value, host_vars, host, path)
            if resolved is not None and not is_vaulted(resolved):
                self.problem("secret stored in plain text: move it to Vault", value, host, path)


def validate(loaded: Loaded) -> tuple[m.Inventory | None, list[Problem]]:
    """Typed inventory plus every problem found; the inventory is None if it cannot be built."""
    from dzops.inventory.checks import run_checks

    v = _Validator(loaded)
    if not loaded.hosts:
        v.problem("the inventory defines no hosts")
        return None, v.problems
    first = next(iter(loaded.hosts.values()))
    glob = _globals(v, first)
    devices = {}
    for raw_host in loaded.hosts.values():
        device = _device(v, raw_host, first)
        if device is not None:
            devices[device.name] = device
    known_hosts = glob.pop("dzops_known_hosts", None)
    # dzops' own settings in group_vars/all: a whole number in the model field's range, named at its
    # line otherwise (strictly an int: the model alone would take "5" or true)
    for key, name, unit, meaning in (
            ("dzops_forks", "forks", "", "devices worked on at once"),
            ("dzops_ledger_retention_days", "ledger_retention_days", " of days", "how long the run ledger keeps a run")):
        value = glob.pop(key, None)
        if value is None:
            continue
        least, most = _field_range(m.Inventory, name)
        if isinstance(value, int) and not isinstance(value, bool) and least <= value <= most:
            glob[name] = value
        else:
            v.problem(f"must be a whole number{unit} from {least} to {most} ({meaning})", first.vars.get(key), None, key)
    try:
        inventory = m.Inventory.model_validate(
            {"root": loaded.root, "devices": devices, "groups": loaded.groups, "known_hosts": known_hosts,
             **{k: val for k, val in glob.items() if val is not None}},
        )
    except ValidationError as exc:
        for error in exc.errors():
            if error["type"] == "missing" and error["loc"][0] in REQUIRED_GLOBALS:
                continue  # already reported as a missing required setting
            v.problem(error["msg"], field=".".join(str(p) for p in error["loc"]))
        return None, v.problems
    v.problems.extend(run_checks(inventory, loaded))
    return inventory, v.problems


def _field_range(model: type[BaseModel], name: str) -> tuple[int, int]:
    """The ge/le bounds a model declares on an int field: one place for the range and its message.

    >>> _field_range(m.Inventory, "forks")
    (1, 500)
    """
    bounds = {attr: getattr(meta, attr) for meta in model.model_fields[name].metadata
              for attr in ("ge", "le") if hasattr(meta, attr)}
    return bounds["ge"], bounds["le"]


GLOBAL_MODELS: dict[str, Any] = {
    "dzongkhag": m.Dzongkhag, "address_pools": m.AddressPools, "mail": m.MailSettings, "schedules": m.Schedules,
    "health": m.HealthSettings,
}
KEYED_MODELS: dict[str, Any] = {"sites": m.Site, "ssid_profiles": m.SsidProfile, "user_roles": m.UserRole}
LIST_MODELS: dict[str, Any] = {"wan_links": m.WanLink, "lan_links": m.LanLink, "users": m.UserAccount}


def _globals(v: _Validator, first: RawHost) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in GLOBAL_KEYS:
        raw = first.vars.get(key)
        if raw is None:
            if key in REQUIRED_GLOBALS:
                v.problem(f"required setting '{key}' is missing from group_vars/all", field=key)
            continue
        for other in v.loaded.hosts.values():
            if other.vars.get(key) is not raw:
                v.problem(f"'{key}' is Dzongkhag-wide: define it only in group_vars/all",
                          other.vars.get(key), other.name, key)
                break
        v.secrets(raw, first.vars, None, key)
        data = v.resolve(raw, first.vars, None, key)
        if data is None:
            continue
        if key in GLOBAL_MODELS:
            out[key] = v.model(GLOBAL_MODELS[key], data, raw, None, key)
        elif key in KEYED_MODELS:
            out[key] = _keyed(v, KEYED_MODELS[key], data, raw, key)
        elif key in LIST_MODELS:
            out[key] = _listed(v, LIST_MODELS[key], data, raw, key)
        elif key == "vlans":
            out[key] = _vlans(v, data, raw)
        else:
            out[key] = data
    return out


def _keyed(v: _Validator, cls: Any, data: Any, raw: Any, key: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        v.problem("must be a mapping of name to settings", raw, field=key)
        return {}
    out = {}
    for name, item in data.items():
        if not isinstance(item, dict):
            v.problem("must be a mapping", raw, field=f"{key}.{name}", loc=(name,))
            continue
        obj = v.model(cls, {"name": str(name), **item} if "name" in cls.model_fields else item,
                      raw.get(name), None, f"{key}.{name}")
        if obj is not None:
            out[str(name)] = obj
    return out


def _listed(v: _Validator, cls: Any, data: Any, raw: Any, key: str) -> list[Any]:
    if not isinstance(data, list):
        v.problem("must be a list", raw, field=key)
        return []
    out = []
    for index, item in enumerate(data):
        # users by login (their name is a person's full name); a label is shown only if it is one
        # plain line (a bad name must not break the problem line that reports it)
        label = item.get("login") or item.get("name") if isinstance(item, dict) else None
        if not isinstance(label, str) or not label.isprintable():
            label = None
        obj = v.model(cls, item, raw[index], None, f"{key}[{label or index}]")
        if obj is not None:
            out.append(obj)
    return out


def _vlans(v: _Validator, data: Any, raw: Any) -> dict[int, m.Vlan]:
    if not isinstance(data, dict):
        v.problem("must be a mapping of VLAN id to settings", raw, field="vlans")
        return {}
    out = {}
    for vid, item in data.items():
        obj = v.model(m.Vlan, {"id": vid, **(item or {})}, raw.get(vid, raw), None, f"vlans.{vid}")
        if obj is not None:
            out[obj.id] = obj
    return out


def _device(v: _Validator, raw_host: RawHost, first: RawHost) -> m.Device | None:
    name, hv = raw_host.name, raw_host.vars
    sites = [g.removeprefix(SITE_GROUP_PREFIX) for g in raw_host.groups if g.startswith(SITE_GROUP_PREFIX)]
    functions = [g for g in raw_host.groups if g in FUNCTION_GROUPS]
    where = hv.get("ansible_host") or hv.get("platform")
    # Groups are joined in hosts.yml: that is where a missing or extra membership is fixed.
    listed = v.loaded.listed_at.get(name, where)
    if len(sites) != 1:
        v.problem(f"must be in exactly one site_<name> group in hosts.yml, found {len(sites)}", listed, name, "site")
    if len(functions) != 1:
        v.problem(f"must be in exactly one of the groups {', '.join(FUNCTION_GROUPS)} in hosts.yml, "
                  f"found {len(functions)}", listed, name, "function")
    if len(sites) != 1 or len(functions) != 1:
        return None
    data: dict[str, Any] = {"name": name, "site": sites[0], "function": functions[0]}
    raw: dict[str, Any] = {}
    for field_name, var in HOST_KEYS.items():
        if var in hv:
            raw[field_name] = hv[var]
            data[field_name] = v.resolve(hv[var], hv, name, var)
    for var, value in hv.items():
        # Only what the inventory's files say: ansible's own variables (groups, group_names, ...)
        # have no origin, and walking `groups` for every host made large inventories quadratic.
        if var in GLOBAL_KEYS or _origin(value)[0] is None:
            continue
        if is_secret_key(var) or isinstance(value, dict | list):
            v.secrets(value, hv, name, var)
    missing = [HOST_KEYS[f] for f in ("mgmt_address", "platform", "device_role") if f not in data]
    if missing:
        v.problem(f"missing required variable(s): {', '.join(missing)}", where, name, missing[0])
        return None
    try:
        return m.Device.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            var = HOST_KEYS.get(str(loc[0]), str(loc[0])) if loc else ""
            label = ".".join([var, *(str(p) for p in loc[1:])])
            # a bad host name has no value of its own in the files: point at the host's first variable
            at = (raw.get(str(loc[0])) or (where if loc[0] == "name" else None)) if loc else None
            v.problem(error["msg"].removeprefix("Value error, "), at,
                      name, label, loc[1:])
        return None


def load(root: Path, vault_password_file_path: Path | None = None) -> tuple[m.Inventory | None, list[Problem], Loaded]:
    """Load and validate; never raises for content problems, only for an unreadable inventory."""
    password_file = vault_password_file(root, vault_password_file_path)
    loaded = load_ansible(root, password_file)
    inventory, problems = validate(loaded)
    return inventory, problems, loaded


def load_inventory(root: Path, vault_password_file_path: Path | None = None) -> m.Inventory:
    """The validated inventory, or InventoryError listing every problem (from the load cache when it can)."""
    from dzops.inventory.cache import load_validated

    inventory, problems = load_validated(root, vault_password_file_path)
    if problems or inventory is None:
        raise InventoryError(problems)
    return inventory
