"""Several Dzongkhags in one command: `-i` given more than once, or a folder of Dzongkhag inventories.

The command runs once per Dzongkhag, one after the other, each with its own inventory (loaded,
checked and masked on its own: host names and addresses may repeat across Dzongkhags, never
within one). Each run's stdout is collected and printed under its Dzongkhag, then one summary:
text, a table of each Dzongkhag's exit code; with --json, one document, a mapping from each
Dzongkhag to its inventory, exit code and the command's own JSON. The exit code is the worst one.

Commands that cannot run per Dzongkhag refuse several inventories through the option contract
(dzops.cli.contract): one line, exit 2, before anything runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HOSTS_FILES = ("hosts.yml", "hosts.yaml", "hosts")


def is_inventory(path: Path) -> bool:
    return path.is_file() or any((path / name).is_file() for name in HOSTS_FILES)


def expand(paths: Iterable[Path]) -> list[Path]:
    """The Dzongkhag inventories the `-i` values name, in order, each once.

    A folder without a hosts file whose subfolders have one is a parent of Dzongkhag inventories:
    it stands for those subfolders (sorted). Anything else stays as given (a missing hosts file is
    then reported by the load, as for one inventory).
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        children = []
        if path.is_dir() and not is_inventory(path):
            children = sorted(child for child in path.iterdir()
                              if child.is_dir() and not child.name.startswith(".") and is_inventory(child))
        for inventory in children or [path]:
            key = inventory.resolve()
            if key not in seen:
                seen.add(key)
                found.append(inventory)
    return found


def labels(inventories: list[Path]) -> list[str]:
    """A short unique name per inventory: its folder's name, or the path where two names clash.

    >>> labels([Path("inventory"), Path("samples/wangdue"), Path("old/wangdue")])
    ['inventory', 'samples/wangdue', 'old/wangdue']
    """
    names = [p.name or str(p) for p in inventories]
    return [name if names.count(name) == 1 else str(p) for name, p in zip(names, inventories, strict=True)]


# Worst first: a failure to run at all outranks hosts failing, which outranks findings.
SEVERITY = (130, 1, 2, 3, 9, 8, 4, 5, 7, 6, 0)


def worst(codes: Iterable[int]) -> int:
    """The exit code of several runs: the most severe of theirs.

    >>> worst([0, 6, 4]), worst([0, 0]), worst([5, 3]), worst([0, 42])
    (4, 0, 3, 42)
    """
    codes = list(codes)
    return min(codes, key=lambda c: SEVERITY.index(c) if c in SEVERITY else 1.5, default=0)


@dataclasses.dataclass
class Outcome:
    label: str
    inventory: Path
    code: int
    stdout: str
    dzongkhag: str | None


def _run_one(once: Callable[[], Any]) -> tuple[int, str]:
    """One Dzongkhag's run: its exit code (mapped as `dzops.cli.app.main` maps it) and its stdout."""
    import typer

    from dzops.cli.exit_codes import ExitCode, exit_code_for
    from dzops.cli.output import error
    from dzops.exceptions import DzopsError, InventoryError
    from dzops.scrub import egress

    # a real text stream over bytes: ansible, imported inside, patches and reconfigures sys.stdout
    raw = io.BytesIO()
    buffer = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", write_through=True)
    code = 0
    try:
        with contextlib.redirect_stdout(buffer):
            once()
    except InventoryError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{egress(str(problem))}\n")
        error(f"inventory has {len(exc.problems)} problem(s)")
        code = exit_code_for(exc)
    except DzopsError as exc:
        error(str(exc))
        code = exit_code_for(exc)
    except typer.Exit as exc:
        code = exc.exit_code
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else ExitCode.ERROR)
    buffer.flush()
    return int(code), raw.getvalue().decode("utf-8", errors="replace")


def run_each(ctx: Any, once: Callable[[], Any]) -> None:
    """Run `once` (the command) per Dzongkhag of ctx.obj.dzongkhags; print one summary; exit with the worst."""
    import typer

    from dzops.cli.output import emit_json, emit_text, say
    from dzops.exceptions import UsageError

    base = ctx.obj
    if base.retry_failed:
        raise UsageError("--retry-failed names a run of one Dzongkhag's ledger: give that Dzongkhag's inventory alone")
    inventories = list(base.dzongkhags)
    runs = [dataclasses.replace(base, inventory=inventory, dzongkhags=(), _inventory_cache=None, _declared_cache=None)
            for inventory in inventories]
    limits = _scoped_limits(base.limit, runs) if base.limit else [None] * len(runs)
    outcomes = []
    for label, inventory, settings, limit in zip(labels(inventories), inventories, runs, limits, strict=True):
        say(f"dzops: == {label} ({inventory}) ==")
        if base.limit and limit is None:
            say(f"dzops: --limit selects no host of {label}: nothing to do there")
            name = getattr(getattr(settings._inventory_cache, "dzongkhag", None), "name", None)
            outcomes.append(Outcome(label, inventory, 0, "", name))
            continue
        ctx.obj = dataclasses.replace(settings, limit=limit)
        code, stdout = _run_one(once)
        loaded = ctx.obj._inventory_cache
        name = getattr(getattr(loaded, "dzongkhag", None), "name", None)
        outcomes.append(Outcome(label, inventory, code, stdout, name))
    ctx.obj = base
    overall = worst(o.code for o in outcomes)
    if base.json:
        emit_json({o.label: {"inventory": str(o.inventory), "dzongkhag": o.dzongkhag, "exit_code": o.code,
                             "output": _parsed(o.stdout)} for o in outcomes})
    else:
        for o in outcomes:
            if o.stdout.strip():
                emit_text(f"== {o.label} ==\n{o.stdout.rstrip()}\n")
        emit_text(_table(outcomes))
    failing = [o.label for o in outcomes if o.code]
    say(f"dzops: {len(outcomes)} Dzongkhags, exit {overall}" + (f" (not ok: {', '.join(failing)})" if failing else ""))
    raise typer.Exit(overall)


def _scoped_limits(limit: str, runs: list[Any]) -> list[str | None]:
    """Each Dzongkhag's share of one --limit: a host or group of another Dzongkhag is no error here,
    only a pattern that matches in none of them (as it would be for one inventory). None: out of scope.
    A Dzongkhag whose inventory does not load keeps the limit as given: its own run reports the problem.
    """
    from dzops.exceptions import DzopsError, UsageError
    from dzops.inventory.limit import scoped_limit, unmatched_patterns

    unmatched: list[set[str] | None] = []
    for settings in runs:
        try:
            unmatched.append(set(unmatched_patterns(settings.load_inventory(), limit)))
        except UsageError:
            raise
        except DzopsError:
            unmatched.append(None)
    loaded = [u for u in unmatched if u is not None]
    nowhere = sorted(set.intersection(*loaded)) if loaded and len(loaded) == len(unmatched) else []
    if nowhere:
        raise UsageError(f"--limit: no host or group matches {', '.join(repr(p) for p in nowhere)} "
                         "in any of the inventories")
    return [limit if u is None else scoped_limit(limit, u) for u in unmatched]


def _parsed(stdout: str) -> Any:
    text = stdout.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # a command whose output is not one JSON document: kept as it was printed


def _table(outcomes: list[Outcome]) -> str:
    from dzops.cli.exit_codes import ExitCode

    def meaning(code: int) -> str:
        try:
            return ExitCode(code).name
        except ValueError:
            return str(code)

    rows = [("DZONGKHAG", "INVENTORY", "EXIT")] + [
        (o.dzongkhag or o.label, str(o.inventory), f"{o.code} {meaning(o.code)}") for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows)
