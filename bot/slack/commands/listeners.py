"""`/sesguard`: history, suppressions, unsuppress, map, status, investigate, learned, stats, help. Every answer
is ephemeral.

`help` is open to everyone; the rest is for triagers (history shows IPs and keys; unsuppress and map
change what gets alerted and whom the bot asks). Unknown input gets the help text, never a traceback.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from bot.contact.people import map_identity
from bot.desk.digest import command as stats
from bot.desk.learning import command as learned
from bot.health.report import health
from bot.investigate import command as investigate
from bot.slack.blocks import FALLBACK_TEXT_LIMIT, mention, text, text_blocks, when
from bot.slack.commands import blocks
from bot.slack.ids import COMMAND
from bot.slack.middleware import REFUSAL
from bot.slack.numbers import ascii_decimal, ascii_id
from bot.triage.changes import lift_suppression
from detection.history import identity_history
from detection.investigate import MAX_HOURS

log = logging.getLogger(__name__)

DEFAULT_DAYS = 90.0
MAX_DAYS = 3650.0
MAX_TERM = 2048
USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,30})(?:\|[^>]*)?>$")
SLACK_LINK = re.compile(r"^<(?:mailto:|https?://)?([^|>]*)(?:\|([^>]*))?>$")


def register(app: App) -> None:
    app.command(COMMAND)(sesguard_command)


def plain(argument: str) -> str:
    """A command argument as typed: Slack escapes `&<>` and may wrap e-mails and links in `<…|…>`."""
    link = SLACK_LINK.match(argument)
    if link and not argument.startswith("<@"):
        argument = link.group(2) or link.group(1)
    return html.unescape(argument)


def _history(context: BoltContext, user: str, args: list[str]) -> list[str]:
    if not args or len(args) > 2:
        return ["Usage: `/sesguard history &lt;arn|name|ip&gt; [days]`"]
    term = plain(args[0])[:MAX_TERM]
    days = DEFAULT_DAYS if len(args) == 1 else ascii_decimal(args[1])
    if days is None or not 0 < days <= MAX_DAYS:
        return [f"Days must be a number between 0 and {MAX_DAYS:g}."]
    found = identity_history(context["store"], term, days=days)
    if found is None:
        return [f"No SES enumeration calls by {text(term, 300)} in the last {days:g} days."]
    return blocks.history_lines(found)


def _suppressions(context: BoltContext, user: str, args: list[str]) -> list[str]:
    rows = context["store"].active_suppressions()
    if not rows:
        return ["No active suppressions."]
    hits = context["store"].suppression_hits(row.id for row in rows)
    return [f"*Active suppressions* ({len(rows)}); lift one with `/sesguard unsuppress &lt;id&gt;`:"] + [
        blocks.suppression_line(row, hits.get(row.id, 0)) for row in rows]


def _unsuppress(context: BoltContext, user: str, args: list[str]) -> list[str]:
    suppression_id = ascii_id(args[0].removeprefix("#")) if len(args) == 1 else None
    if suppression_id is None:
        return ["Usage: `/sesguard unsuppress &lt;id&gt;` (the ids are in `/sesguard suppressions`)"]
    row, lifted = lift_suppression(context["store"], suppression_id, user)
    if row is None:
        return [f"There is no suppression #{suppression_id}."]
    if not lifted:
        return [f"Suppression #{suppression_id} was already lifted by {mention(row.lifted_by)} "
                f"at {when(row.lifted_at)}."]
    return [f"Lifted suppression #{suppression_id}: alerts for {text(row.identity, 400)} are posted again."]


def _map(context: BoltContext, user: str, args: list[str]) -> list[str]:
    usage = ["Usage: `/sesguard map &lt;arn&gt; &lt;@user&gt;`, "
             "e.g. `/sesguard map arn:aws:iam::123456789012:user/alice @alice`"]
    if len(args) != 2:
        return usage
    identity = plain(args[0])
    person = USER_MENTION.match(args[1])
    if not identity.startswith("arn:") or len(identity) > MAX_TERM or person is None:
        return usage
    map_identity(context["store"], identity, person.group(1), user)
    return [f"Mapped {text(identity, 400)} to {mention(person.group(1))}: "
            f"Contact user will ask them about this identity."]


def _status(context: BoltContext, user: str, args: list[str]) -> list[str]:
    report = health(context["store"], context["settings"])
    title = "*sesguard status*: " + ("ok" if report.ok else ":warning: " + " and ".join(report.problems()))
    return [title] + [f"• {text(line, 600)}" for line in report.lines()]


def _investigate(context: BoltContext, user: str, args: list[str]) -> list[str] | dict:
    if not args or len(args) > 2:
        return ["Usage: `/sesguard investigate &lt;arn|access-key-id|ip&gt; [hours]`"]
    hours = None
    if len(args) == 2:
        # As every number from Slack: ASCII digits and an optional fraction (float() took `٣`, `1e3`, `1_0`).
        hours = ascii_decimal(args[1])
        if hours is None or not 0 < hours <= MAX_HOURS:
            return [f"Hours must be a number between 0 and {MAX_HOURS:g} (LookupEvents keeps 90 days)."]
    return investigate.answer(context, user, plain(args[0])[:MAX_TERM], hours)


def _learned(context: BoltContext, user: str, args: list[str]) -> list[str]:
    return learned.answer(context, args)


def _stats(context: BoltContext, user: str, args: list[str]) -> list[str]:
    return stats.answer(context, args)


SUBCOMMANDS: dict[str, Callable[[BoltContext, str, list[str]], list[str] | dict]] = {
    "history": _history,
    "suppressions": _suppressions,
    "unsuppress": _unsuppress,
    "map": _map,
    "status": _status,
    "investigate": _investigate,
    "learned": _learned,
    "stats": _stats,
}
# Sub-commands that read CloudTrail take seconds: a note answers at once, and the answer replaces it.
PROGRESS_NOTES = {"investigate": ":mag: Investigating… the answer replaces this note in a few seconds."}


def sesguard_command(ack: Ack, body: dict, respond: Respond, client: WebClient, context: BoltContext) -> None:
    ack()
    user = body.get("user_id") or ""
    words = str(body.get("text") or "").split()
    name = words[0].lower() if words else "help"
    handler = SUBCOMMANDS.get(name)
    if handler is None:
        prefix = [] if name == "help" else [f"Unknown command `{text(name, 40)}`."]
        _answer(respond, prefix + [blocks.HELP_TEXT])
        return
    if not context["triagers"].allows(client, user):
        _answer(respond, [REFUSAL])
        return
    note = PROGRESS_NOTES.get(name)
    if note:
        _answer(respond, [note])
    try:
        answer = handler(context, user, words[1:])
    except Exception:
        log.exception("/sesguard %s failed", name)
        answer = [f"`/sesguard {name}` failed on our side; the error is in the app's log."]
    _answer(respond, answer, replace=bool(note))


def _answer(respond: Respond, answer: list[str] | dict, replace: bool = False) -> None:
    """Mrkdwn lines, or a message of its own (`text` and `blocks`), ephemeral; `replace` takes the place of
    the note sent before it."""
    if isinstance(answer, dict):
        fallback, body = answer["text"], answer["blocks"]
    else:
        fallback, body = "\n".join(answer)[:FALLBACK_TEXT_LIMIT], text_blocks(answer)
    try:
        respond(response_type="ephemeral", text=fallback, blocks=body, replace_original=True if replace else None)
    except Exception as exc:
        # Slack's response URL is unreachable (or missing). Raising here, right after the ack, would make
        # Bolt drop that ack and answer 404 three seconds later: the user would see an error for nothing.
        log.warning("the answer to /sesguard could not be delivered: %s", exc)
