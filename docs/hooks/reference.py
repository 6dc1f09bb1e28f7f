"""The configuration and command-line references, made from the code at every build so that they cannot drift.

An MkDocs hook (`hooks:` in mkdocs.yml): a page holding `<!-- sesguard:settings -->` gets the settings model's
tables (each field's environment name, default and description, the string under the field in
bot/config/settings.py), and one holding `<!-- sesguard:commands -->` gets every subcommand of the argument parser
(bot/cli/commands.py) with its usage and arguments. Nothing generated is committed. A setting without a description
stops the build: the reference would otherwise have a hole.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

SETTINGS_MARK = "<!-- sesguard:settings -->"
COMMANDS_MARK = "<!-- sesguard:commands -->"
USAGE_WIDTH = 100  # usage lines are wrapped at a fixed width: the page must not depend on the terminal of the build


class MissingDescription(Exception):
    """A setting or an argument with nothing to say about it."""


def env_name(name: str, field: FieldInfo) -> str:
    """The environment variable a field is read from (its alias, or the first of its alias choices)."""
    alias: Any = field.alias or field.validation_alias
    if hasattr(alias, "choices"):
        alias = alias.choices[0]
    return str(alias or name.upper())


def _cell(text: str) -> str:
    """Markdown table cell: one line (a description's line breaks are spaces), pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _plain(text: str) -> str:
    """Plain text (argparse's help) as a Markdown table cell: `*`, `_` and `<` mean nothing there."""
    text = text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("<", "&lt;")
    return _cell(text)


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    return f"`{value}`"


def settings_table(model: type[BaseSettings], names: list[str]) -> str:
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for name in names:
        field = model.model_fields[name]
        if not (field.description or "").strip():
            raise MissingDescription(f"{model.__name__}.{name} ({env_name(name, field)}) has no description: write "
                                     "one as a string under the field")
        rows.append(f"| `{env_name(name, field)}` | {_default(field)} | {_cell(field.description or '')} |")
    return "\n".join(rows)


def settings_reference() -> str:
    """Every setting of the one settings model: detection's first (what `sesguard scan` reads), then the rest."""
    from bot.config.settings import DetectionSettings, Settings

    detection = list(DetectionSettings.model_fields)
    rest = [name for name in Settings.model_fields if name not in DetectionSettings.model_fields]
    return "\n\n".join([
        "### Detection",
        "What detection reads: `sesguard scan` reads these and no other setting; every other command reads them "
        "too.",
        settings_table(Settings, detection),
        "### Slack, the store, the worker and the responses",
        "Read by `serve`, `socket`, `worker`, `poll`, `investigate` and `ip-ranges`.",
        settings_table(Settings, rest),
    ])


def _subcommands(parser: argparse.ArgumentParser) -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    """The subparsers by name, and each one's one-line help as the command list shows it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return dict(action.choices), helps
    return {}, {}


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def _argument(action: argparse.Action) -> str:
    if action.option_strings:
        if action.nargs == 0:
            return ", ".join(f"`{option}`" for option in action.option_strings)
        shown = action.metavar or ("{" + ",".join(map(str, action.choices)) + "}" if action.choices else
                                   action.dest.upper())
        return ", ".join(f"`{option} {shown}`" for option in action.option_strings)
    return f"`{action.metavar or action.dest}`"


def command_section(name: str, parser: argparse.ArgumentParser, summary: str) -> str:
    lines = [f"### `sesguard {name}`", "", _plain(summary)]
    if parser.description and parser.description != summary:
        lines += ["", _plain(parser.description)]
    lines += ["", "```", _usage(parser), "```"]
    arguments = [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]
    if arguments:
        lines += ["", "| argument | meaning |", "|---|---|"]
        for action in arguments:
            if not (action.help or "").strip():
                raise MissingDescription(f"sesguard {name}: argument {action.dest} has no help text")
            lines.append(f"| {_argument(action)} | {_plain(action.help or '')} |")
    return "\n".join(lines)


def commands_reference() -> str:
    """`sesguard`'s own options, then every subcommand in the parser's order."""
    from bot.cli.commands import build_parser

    parser = build_parser()
    subparsers, helps = _subcommands(parser)
    top = [f"`sesguard` (and `python -m bot`): {_plain(parser.description or '')}", "", "```", _usage(parser), "```",
           "", "| command | what it does |", "|---|---|"]
    top += [f"| [`{name}`](#sesguard-{name}) | {_plain(helps.get(name, ''))} |" for name in subparsers]
    sections = [command_section(name, sub, helps.get(name, "")) for name, sub in subparsers.items()]
    return "\n\n".join(["\n".join(top), *sections])


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs' hook: fill the marks of the page being built."""
    if SETTINGS_MARK in markdown:
        markdown = markdown.replace(SETTINGS_MARK, settings_reference())
    if COMMANDS_MARK in markdown:
        markdown = markdown.replace(COMMANDS_MARK, commands_reference())
    return markdown
