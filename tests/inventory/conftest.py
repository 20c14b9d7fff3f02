"""The broken-inventory table laid out and checked once per session, for test_checks and test_cache.

Each case's first `dzops inventory check` runs in an empty dzops state folder of its own, so it is a
cold load: test_checks asserts on what it printed, test_cache runs the same command again on that
folder (warm, with ansible made to fail) and asserts it prints exactly the same. One cold load per
case serves both, instead of each module patching and loading all of them again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.inventory.test_checks import CASES, MINIMAL, Run, case_args, dzops


@pytest.fixture(scope="session")
def case_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every case as `<tmp>/<case>/inventory`: a copy of minimal/ with the case's patches applied."""
    base = tmp_path_factory.mktemp("broken")
    dirs = {}
    for case in CASES:
        root = base / case.id / "inventory"
        shutil.copytree(MINIMAL, root)
        for patch in case.patch:
            patch(root)
        if case.password:
            (base / case.id / "password.txt").write_text(case.password + "\n")
        dirs[case.id] = root.parent
    return dirs


@pytest.fixture(scope="session")
def case_states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private dzops state folder per case, empty until `results` runs the case in it."""
    base = tmp_path_factory.mktemp("broken-state")
    return {case.id: base / case.id for case in CASES}


@pytest.fixture(scope="session")
def results(case_dirs: dict[str, Path], case_states: dict[str, Path]) -> dict[tuple[str, bool], Run]:
    """`dzops inventory check` (text, then --json) once per case, cold first, shared by the tests."""
    runs = {}
    with pytest.MonkeyPatch.context() as env:
        env.delenv("DZOPS_INVENTORY_CACHE", raising=False)
        for case in CASES:
            assert not case_states[case.id].exists()  # the text run is a cold load
            env.setenv("DZOPS_STATE_DIR", str(case_states[case.id]))
            for as_json in (False, True):
                runs[case.id, as_json] = dzops(case_dirs[case.id], *case_args(case, case_dirs[case.id], as_json))
    return runs
