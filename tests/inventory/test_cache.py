"""The inventory load cache: a warm load says exactly what a cold one says, any edit is seen, and no
decrypted secret reaches the disk.

The broken-inventory table of test_checks runs twice per case: cold in an empty state folder of
its own (the session's `results`, which test_checks asserts on too) and here again, warm, on that
folder; a warm run of a case that was cached must not touch ansible at all (its loader is made to fail).
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from dzops.exceptions import InventoryError, VaultError
from dzops.inventory import cache, loader
from tests.inventory.test_checks import CASES, MINIMAL, PASSWORD, VAULT, Case, Run, case_args, decrypt, dzops

HOST_VARS = "host_vars/tst-hq-rtr1.yml"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty private state folder for this test only."""
    folder = tmp_path / "state"
    monkeypatch.setenv("DZOPS_STATE_DIR", str(folder))
    monkeypatch.delenv("DZOPS_INVENTORY_CACHE", raising=False)
    return folder / "inventory-cache"


@pytest.fixture
def minimal(tmp_path: Path) -> Path:
    root = tmp_path / "inventory"
    shutil.copytree(MINIMAL, root)
    return root


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.entry")) if folder.is_dir() else []


def ansible_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("the load went through ansible: the cache was not used")

    monkeypatch.setattr(loader, "load_ansible", refuse)


CACHED_CASES: list[str] = []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_broken_case_warm_says_exactly_what_cold_says(
    case: Case, case_dirs: dict[str, Path], case_states: dict[str, Path], results: dict[tuple[str, bool], Run],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cwd = case_dirs[case.id]
    monkeypatch.setenv("DZOPS_STATE_DIR", str(case_states[case.id]))  # where the cold run stored its entry
    monkeypatch.delenv("DZOPS_INVENTORY_CACHE", raising=False)
    cold = {as_json: results[case.id, as_json] for as_json in (False, True)}
    assert cold[False].code != 0, cold[False].text
    stored = entries(case_states[case.id] / "inventory-cache")
    if stored:  # it loaded (with problems): the warm run must not need ansible
        CACHED_CASES.append(case.id)
        ansible_must_not_run(monkeypatch)
    else:  # it could not load at all (YAML, vault): never cached, loads again the same way
        assert case.password or any(word in cold[False].text for word in ("YAML", "yaml", "syntax", "parse",
                                                                          "decrypt", "vault")), cold[False].text
    for as_json in (False, True):
        warm = dzops(cwd, *case_args(case, cwd, as_json))
        assert (warm.code, warm.stdout, warm.stderr) == (cold[as_json].code, cold[as_json].stdout,
                                                         cold[as_json].stderr)


def test_most_broken_cases_were_served_from_the_cache() -> None:
    """The table above is not vacuous: the cases that load at all were cached and compared warm."""
    if len(CACHED_CASES) == 0:
        pytest.fail("run with the table above (same session): no case was cached")
    assert len(CACHED_CASES) >= len(CASES) - 6, CACHED_CASES


def test_an_edited_host_vars_value_is_seen(state: Path, minimal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = loader.load_inventory(minimal, PASSWORD)
    assert str(first.devices["tst-hq-rtr1"].mgmt_address) == "10.40.0.11"
    path = minimal / HOST_VARS
    before = path.stat()
    # same length, same mtime: only the content tells
    path.write_text(path.read_text().replace("ansible_host: 10.40.0.11", "ansible_host: 10.40.0.19"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    second = loader.load_inventory(minimal, PASSWORD)
    assert str(second.devices["tst-hq-rtr1"].mgmt_address) == "10.40.0.19"
    ansible_must_not_run(monkeypatch)
    third = loader.load_inventory(minimal, PASSWORD)
    assert str(third.devices["tst-hq-rtr1"].mgmt_address) == "10.40.0.19"
    assert len(entries(state)) == 1  # the edit replaced the inventory's entry


@pytest.mark.parametrize("edit", [
    pytest.param(lambda root: (root / "group_vars" / "all" / "extra.yml").write_text("---\nextra_note: 1\n"),
                 id="new-group-vars-file"),
    pytest.param(lambda root: (root / HOST_VARS).unlink(), id="host-vars-file-removed"),
    pytest.param(lambda root: (root / "hosts.yml").write_text((root / "hosts.yml").read_text() + "\n"),
                 id="hosts-yml-whitespace"),
])
def test_any_edit_of_any_inventory_file_is_a_miss(
    edit: object, state: Path, minimal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.load_validated(minimal, PASSWORD)
    edit(minimal)  # type: ignore[operator]
    calls = []
    real = loader.load_ansible
    monkeypatch.setattr(loader, "load_ansible", lambda *a: calls.append(a) or real(*a))
    cache.load_validated(minimal, PASSWORD)
    assert len(calls) == 1


def test_a_vault_edit_is_a_miss(state: Path, minimal: Path) -> None:
    values = decrypt(MINIMAL / VAULT, PASSWORD)
    key = next(k for k in values if "server" in k)
    inventory, _ = cache.load_validated(minimal, PASSWORD)
    from tests.inventory.test_checks import vault

    vault(**{key: "Changed-Srv-Pass-4417"})(minimal)
    changed, _ = cache.load_validated(minimal, PASSWORD)
    servers = [d for d in changed.devices.values() if d.function == "servers"]
    assert servers and all(d.password.get_secret_value() == "Changed-Srv-Pass-4417" for d in servers)


def test_no_decrypted_secret_reaches_the_disk(state: Path, minimal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory, problems = cache.load_validated(minimal, PASSWORD)
    assert not problems
    secrets = [v for v in decrypt(MINIMAL / VAULT, PASSWORD).values() if isinstance(v, str) and len(v) >= 6]
    assert secrets
    stored = [p for p in state.parent.rglob("*") if p.is_file()]
    assert entries(state)
    for path in stored:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret[:3]}... in {path}"
    # and it is still the right inventory when read back
    ansible_must_not_run(monkeypatch)
    warm, _ = cache.load_validated(minimal, PASSWORD)
    assert warm.model_dump() == inventory.model_dump()
    assert {d.password.get_secret_value() for d in warm.devices.values() if d.password} & set(secrets)


def test_private_modes(state: Path, minimal: Path) -> None:
    cache.load_validated(minimal, PASSWORD)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in state.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_without_a_vault_password_vault_content_is_never_cached(
    state: Path, minimal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("DZOPS_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE"):
        monkeypatch.delenv(var, raising=False)
    assert loader.vault_password_file(minimal, None) is None
    try:
        cache.load_validated(minimal, None)
    except InventoryError:
        pass  # the vault cannot be opened: whatever the load says, nothing is kept
    assert entries(state) == []


def test_a_wrong_vault_password_fails_as_it_does_cold(state: Path, minimal: Path, tmp_path: Path) -> None:
    cache.load_validated(minimal, PASSWORD)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-password\n")
    with pytest.raises(VaultError) as warm:
        cache.load_validated(minimal, wrong)
    with pytest.raises(VaultError) as cold:
        loader.load(minimal, wrong)
    assert [str(p) for p in warm.value.problems] == [str(p) for p in cold.value.problems]


@pytest.mark.parametrize("damage", ["flip-ciphertext", "truncate", "group-writable"])
def test_a_damaged_or_foreign_entry_is_a_miss(
    damage: str, state: Path, minimal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected, _ = cache.load_validated(minimal, PASSWORD)
    (entry,) = entries(state)
    data = bytearray(entry.read_bytes())
    if damage == "flip-ciphertext":
        data[-5] ^= 0x01
        entry.write_bytes(bytes(data))
    elif damage == "truncate":
        entry.write_bytes(bytes(data[: len(data) // 2]))
    else:
        entry.chmod(0o660)
    calls = []
    real = loader.load_ansible
    monkeypatch.setattr(loader, "load_ansible", lambda *a: calls.append(a) or real(*a))
    again, _ = cache.load_validated(minimal, PASSWORD)
    assert calls and again.model_dump() == expected.model_dump()


def test_problem_paths_follow_the_current_folder(state: Path, minimal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored absolute, shown relative to where the officer stands now."""
    (minimal / "host_vars" / "ghost-rtr9.yml").write_text("---\nansible_host: 10.40.0.99\n")
    monkeypatch.chdir(minimal.parent)
    _, cold = cache.load_validated(minimal, PASSWORD)
    assert any(p.file == "inventory/host_vars/ghost-rtr9.yml" for p in cold)
    monkeypatch.chdir(minimal)
    ansible_must_not_run(monkeypatch)
    _, warm = cache.load_validated(minimal, PASSWORD)
    assert any(p.file == "host_vars/ghost-rtr9.yml" for p in warm)


def test_cache_can_be_turned_off(state: Path, minimal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DZOPS_INVENTORY_CACHE", "0")
    cache.load_validated(minimal, PASSWORD)
    assert entries(state) == []


def counted_stretches(monkeypatch: pytest.MonkeyPatch, gate: threading.Event | None = None) -> list[str]:
    """The names of the threads that stretched a vault password, from now on; a stretch waits for
    `gate` first (one still under way when the load comes)."""
    stretched: list[str] = []
    real = cache.hashlib.pbkdf2_hmac

    def pbkdf2_hmac(*args: object) -> bytes:
        stretched.append(threading.current_thread().name)
        if gate is not None:
            assert gate.wait(30)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(cache, "_STRETCHES", {})  # nothing kept from earlier tests
    monkeypatch.setattr(cache.hashlib, "pbkdf2_hmac", pbkdf2_hmac)
    return stretched


def test_a_stretch_started_ahead_is_the_one_the_load_waits_for(
        state: Path, minimal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.load_validated(minimal, PASSWORD)  # the first load makes the salt and the entry
    gate = threading.Event()
    stretched = counted_stretches(monkeypatch, gate)
    cache.stretch_ahead(minimal, PASSWORD)
    threading.Timer(0.3, gate.set).start()  # the load below comes while that stretch is under way
    ansible_must_not_run(monkeypatch)
    inventory, problems = cache.load_validated(minimal, PASSWORD)
    assert inventory is not None and not problems
    assert stretched == ["dzops-vault-stretch"]  # one stretch, on its own thread; the load waited for it


def test_stretching_ahead_only_reads(state: Path, minimal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stretched = counted_stretches(monkeypatch)
    cache.stretch_ahead(minimal, PASSWORD)  # no cache folder, so no salt yet: nothing to stretch for
    assert not state.exists()
    cache.load_validated(minimal, PASSWORD)
    cache.stretch_ahead(minimal, minimal / "no-such-password-file")  # the load will say so, not this
    monkeypatch.setenv("DZOPS_INVENTORY_CACHE", "0")
    cache.stretch_ahead(minimal, PASSWORD)
    for thread in threading.enumerate():
        if thread.name == "dzops-vault-stretch":
            thread.join()
    assert stretched == [threading.current_thread().name]  # the load's own stretch, and no other


def test_a_stretch_that_failed_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    real = cache.hashlib.pbkdf2_hmac
    calls: list[int] = []

    def once_interrupted(*args: object) -> bytes:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the stretch
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(cache, "_STRETCHES", {})
    monkeypatch.setattr(cache.hashlib, "pbkdf2_hmac", once_interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.vault_keys(b"pw", b"s" * 32)
    assert cache.vault_keys(b"pw", b"s" * 32) == cache.vault_keys(b"pw", b"s" * 32)
    assert len(calls) == 2  # stretched again after the failure, then kept


def test_the_code_stamp_follows_ansible_core_without_importing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    import ansible.release

    assert f"__version__ = '{ansible.release.__version__}'".encode() in cache.ansible_release()
    probe = "import sys\nfrom dzops.inventory import cache\ncache._code_stamp()\nprint('ansible' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    stamp = cache._code_stamp()
    monkeypatch.setattr(cache, "ansible_release", lambda: b"__version__ = '99.0.0'\n")
    assert cache._code_stamp() != stamp
