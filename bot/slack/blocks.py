"""The shared Block Kit kit: safe text from CloudTrail, mentions, times, sections; pure functions, no I/O.

Messages are built with slack-sdk's Block Kit models, whose `to_dict()` validates Slack's limits, so a
message that Slack would reject fails here, in a test, instead of in the channel. Each capability
builds its own messages from these pieces (`alert.blocks`, `contact.blocks`, `triage.blocks`,
`commands.blocks`).

Every value that came from CloudTrail is attacker-controlled. `text()` is the one way such a value
enters a message: control and bidi characters become `?`, `&`, `<` and `>` are escaped (so no
`<!channel>`, `<@U…>` or `<https://evil|click>` survives), and the result is cut to fit. Text objects
carrying such values are `verbatim`, so Slack does not turn bare URLs or channel names into links.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View as ModalView

# Slack's limits (https://api.slack.com/reference/block-kit/blocks), with room to spare where we join parts.
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
CONTEXT_TEXT_LIMIT = 3000
FALLBACK_TEXT_LIMIT = 3000  # `text` may be 40,000, but a notification only shows the start
# Long lists (a burst from hundreds of IPs) are shown in part; the store keeps them all.
LIST_FIELD_LIMIT = 600
# What the fields of one section show in all: each may hold 2,000, but ten of them would take most of what
# Slack accepts in one message's blocks (about 13,000 characters in all: `msg_blocks_too_long`).
FIELDS_TOTAL_LIMIT = 3000
# A malformed user ID is shown as text, never longer than a real one needs.
USER_ID_SHOWN_LIMIT = 40
ELLIPSIS = "…"

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def _visible(ch: str) -> str:
    # Cc: control characters (newlines break the layout); Cf: bidi overrides and zero-width characters
    # that make one text look like another.
    return "?" if unicodedata.category(ch) in ("Cc", "Cf") else ch


def escape(value: Any) -> str:
    """A CloudTrail value as inert mrkdwn: only `&`, `<` and `>` are special to Slack."""
    raw = "".join(_visible(ch) for ch in str(value))
    return raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def text(value: Any, limit: int) -> str:
    """`escape(value)`, cut so that the escaped text (ellipsis included) fits `limit` characters.

    Cut on the raw value, never inside an entity such as `&amp;`.
    """
    escaped = escape(value)
    if len(escaped) <= limit:
        return escaped
    out, length = [], 0
    for ch in str(value):
        piece = escape(ch)
        if length + len(piece) > limit - len(ELLIPSIS):
            break
        out.append(piece)
        length += len(piece)
    return "".join(out) + ELLIPSIS


def listing(values: Iterable[Any], limit: int, separator: str = ", ", each: int | None = None) -> str:
    """Escaped values joined while they fit in `limit` (each cut to `each`), then how many more there were."""
    values = [v for v in values if v not in (None, "")]
    if not values:
        return "-"
    room = max(limit - 20, 10)  # keeps space for ", … 123456 more"
    room = min(room, each) if each else room
    shown: list[str] = []
    length = 0
    for index, value in enumerate(values):
        piece = text(value, room)
        added = len(piece) + (len(separator) if shown else 0)
        more = len(values) - index - 1
        if length + added + (len(f"{separator}… {more} more") if more else 0) > limit:
            break
        shown.append(piece)
        length += added
    rest = len(values) - len(shown)
    if not rest:
        return separator.join(shown)
    return separator.join(shown + [f"… {rest} more"])


def mention(user_id: Any) -> str:
    """`<@U…>` for a well-formed Slack user ID; anything else is shown as escaped text."""
    if isinstance(user_id, str) and _USER_ID.match(user_id):
        return f"<@{user_id}>"
    return text(user_id, USER_ID_SHOWN_LIMIT)


def fitted_fields(fields: Sequence[tuple[str, Callable[[int], str]]], total: int = FIELDS_TOTAL_LIMIT) -> list[str]:
    """`*label*\nvalue` for each field, all of them within `total` characters (and each within Slack's
    2,000). A value is given as a function of the room it gets; short values take what they need and
    the long ones share the rest equally, so that one huge list never crowds out the identity."""
    heads = [f"*{label}*\n" for label, _ in fields]
    room = total - sum(len(head) for head in heads)
    need = [len(show(FIELD_TEXT_LIMIT - len(head))) for head, (_, show) in zip(heads, fields)]
    shown: dict[int, str] = {}
    for done, index in enumerate(sorted(range(len(fields)), key=need.__getitem__)):
        share = min(room // (len(fields) - done), FIELD_TEXT_LIMIT - len(heads[index]))
        shown[index] = fields[index][1](share)
        room -= len(shown[index])
    return [heads[index] + shown[index] for index in range(len(fields))]


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def md(value: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=value, verbatim=True)


def dicts(blocks: Sequence[Block]) -> list[dict]:
    return [block.to_dict() for block in blocks]  # to_dict() validates Slack's limits


def modal(callback_id: str, signal: Any, title: str, submit: str, body: list[Block]) -> dict:
    """A modal about one signal: its ID rides along in private_metadata (re-read from the store on submit)."""
    return ModalView(type="modal", callback_id=callback_id, private_metadata=signal.signal_id, title=title,
                     submit=submit, close="Cancel", blocks=body).to_dict()


def text_blocks(lines: Sequence[str]) -> list[dict]:
    """Already-escaped mrkdwn lines as sections, split within Slack's limits (at most 50 blocks)."""
    blocks: list[Block] = []
    chunk = ""
    for line in lines:
        line = line[:SECTION_TEXT_LIMIT]
        if chunk and len(chunk) + 1 + len(line) > SECTION_TEXT_LIMIT:
            blocks.append(SectionBlock(text=md(chunk)))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append(SectionBlock(text=md(chunk)))
    return dicts(blocks[:50])
