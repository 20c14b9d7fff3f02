"""Help that reads as words: `--limit PATTERN`, `LINK...`, commands grouped by duty.

Typer's plain (non-Rich) help shows Python types (`<list[str]>`, `{login}`) and lists commands in
registration order; Rich help panels would group them but cost ~0.3 s per `--help`. So the
formatting is done here, at Click level: every command and group of dzops is built from these
classes (through `DzopsTyper`), which write each parameter by its metavar and group a group's
commands by the `rich_help_panel` they were registered with.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

UNGROUPED = "Commands"


def metavar(param: Any) -> str:
    """The word shown for a parameter's value: its declared metavar, else its name in capitals.

    An argument taking several values gets `...` (`LINK...`).
    """
    word = param.metavar or (param.name or "value").upper()
    if param.param_type_name == "argument" and param.nargs != 1 and not word.endswith("..."):
        word += "..."
    return word


def usage_piece(param: Any) -> str:
    """An argument in the usage line: `LOGIN` when required, `[HOST]` when not, `[LINK]...` for several."""
    word = metavar(param).removesuffix("...")
    several = "..." if param.nargs != 1 else ""
    return f"{word}{several}" if param.required else f"[{word}]{several}"


def _join(opts: list[str]) -> str:
    """`-l, --limit`: the short form first, as Click writes it.

    >>> _join(["--inventory", "-i"])
    '-i, --inventory'
    """
    return ", ".join(sorted(opts, key=lambda opt: len(opt) - len(opt.lstrip("-"))))


def _help_text(param: Any, ctx: Any) -> str:
    record = param.get_help_record(ctx)
    return record[1] if record else ""


def format_params(command: Any, ctx: Any, formatter: Any) -> None:
    """The Arguments and Options sections, each value named by its metavar."""
    arguments, options = [], []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            arguments.append((metavar(param), _help_text(param, ctx)))
        elif param.param_type_name == "option":
            names = _join(param.opts)
            if param.secondary_opts:
                names += " / " + _join(param.secondary_opts)
            if not param.is_flag and not param.count:
                names += " " + metavar(param)
            options.append((names, _help_text(param, ctx)))
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


class DzopsCommand(TyperCommand):
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [usage_piece(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        format_params(self, ctx, formatter)


class DzopsGroup(TyperGroup):
    # Section titles (the commands' rich_help_panel) in the order `--help` shows them; others follow.
    duties: tuple[str, ...] = ()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        pieces += [usage_piece(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return [*pieces, self.subcommand_metavar]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """One section per duty (in `duties` order, then as registered), ungrouped commands last."""
        sections: dict[str, list[tuple[str, Any]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            sections.setdefault(getattr(command, "rich_help_panel", None) or UNGROUPED, []).append((name, command))
        if not sections:
            return
        width = max(len(name) for rows in sections.values() for name, _ in rows)
        limit = formatter.width - 6 - width
        order = {title: position for position, title in enumerate(self.duties)}
        ordered = sorted(sections.items(), key=lambda item: (item[0] == UNGROUPED, order.get(item[0], len(order))))
        for title, rows in ordered:
            with formatter.section(title):
                # Pad names to one width so every section's descriptions line up.
                formatter.write_dl([(name.ljust(width), command.get_short_help_str(limit)) for name, command in rows])


class DzopsTyper(typer.Typer):
    """typer.Typer whose groups and commands format their help with the classes above."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", DzopsGroup)
        kwargs.setdefault("rich_markup_mode", None)  # plain Click help: Rich costs ~0.3 s per --help
        super().__init__(**kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", DzopsCommand)
        return super().command(name, **kwargs)
