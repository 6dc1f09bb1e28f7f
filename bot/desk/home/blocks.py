"""The Home tab's view: pure Block Kit builders, no I/O.

A view holds at most 100 blocks (https://docs.slack.dev/reference/views): the open alerts take two each
(summary, buttons) up to `content.ALERTS_SHOWN`, then one line says how many more are open; every other
part is one header and one section of lines, each list cut with "and N more". Every value from CloudTrail
goes through `text()`, as in the alert. The buttons are the alert's own (same action IDs and values), so
the alert's listeners handle a click here as on the message, and update the message too; each actions
block has an ID of its own, as Slack requires within one view.
"""

from __future__ import annotations

import hashlib
import json

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.alerts.blocks import SEVERITY_ICONS, STATUS_WORDS, alert_buttons
from bot.desk.home.content import Desk
from bot.slack.blocks import SECTION_TEXT_LIMIT, md, mention, text, when
from bot.slack.ids import Action
from detection.store import row_id

MAX_BLOCKS = 100
HEALTH_LINES_SHOWN = 8


def _header(words: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=words[:150]))


def _lines(lines: list[str], total: int, more_words: str, block_id: str | None = None) -> SectionBlock:
    """Lines within one section's 3,000 characters, then how many more there are (`total` in all)."""
    shown, length = [], 0
    for line in lines:
        if length + len(line) + 1 > SECTION_TEXT_LIMIT - 80:
            break
        shown.append(line)
        length += len(line) + 1
    if total > len(shown):
        shown.append(f"… and {total - len(shown)} more {more_words}")
    return SectionBlock(block_id=block_id, text=md("\n".join(shown) or "-"))


def _alert(row) -> list[Block]:
    icon = SEVERITY_ICONS.get(str(row.severity), "")
    summary = (f"{icon} *{text(str(row.severity).upper(), 20)}* · {text(row.identity, 600)}\n"
               f"Account {text(row.account_id, 40)} · first seen {when(row.first_seen)} · "
               f"*{STATUS_WORDS.get(row.status, text(row.status, 40))}* · signal {text(row.signal_id, 40)}")
    blocks: list[Block] = [SectionBlock(text=md(summary[:SECTION_TEXT_LIMIT]))]
    buttons = alert_buttons(row.status, row.signal_id)
    if buttons:
        blocks.append(ActionsBlock(block_id=f"home-{row.signal_id}"[:255], elements=buttons))
    return blocks


def _question_lines(desk: Desk) -> list[str]:
    if desk.triager:
        return [f"• {mention(q.person)} about {text(q.identity, 300)} in {text(q.account_id, 40)}, asked by "
                f"{mention(q.asked_by)} at {when(q.asked_at)}; escalates at {when(q.deadline)}" for q in desk.questions]
    return [f"• Calls by {text(q.identity, 300)} in AWS account {text(q.account_id, 40)}: were they yours? "
            f"(asked at {when(q.asked_at)}; answer here or in the message sesguard sent you)" for q in desk.questions]


def _answer_buttons(desk: Desk) -> list[Block]:
    """The person's own Yes / No, as in the DM: the DM's listeners check that only they answer."""
    blocks: list[Block] = []
    for question in desk.questions[:20]:
        value = str(question.contact_id)
        blocks.append(ActionsBlock(block_id=f"home-question-{value}", elements=[
            ButtonElement(text="Yes, this was me", action_id=Action.ANSWER_YES.value, value=value, style="primary"),
            ButtonElement(text="No, this wasn't me", action_id=Action.ANSWER_NO.value, value=value, style="danger"),
        ]))
    return blocks


def person_blocks(desk: Desk) -> list[Block]:
    blocks: list[Block] = [_header(":shield: sesguard")]
    if not desk.questions:
        blocks.append(SectionBlock(text=md("Nothing is waiting for you. When the security team asks whether some "
                                           "AWS calls were yours, the question shows here.")))
        return blocks
    blocks.append(_header(f"Questions for you ({desk.questions_waiting})"))
    blocks.append(_lines(_question_lines(desk), desk.questions_waiting, "questions"))
    return blocks + _answer_buttons(desk)


def triager_blocks(desk: Desk) -> list[Block]:
    counts = ", ".join(f"{count} {STATUS_WORDS.get(status, status).split(':')[0].lower()}"
                       for status, count in sorted(desk.alerts_by_status.items())) or "none"
    health = ":white_check_mark: ok" if desk.health_ok else ":warning: " + " and ".join(desk.health_problems)
    blocks: list[Block] = [
        _header(":shield: sesguard triage desk"),
        ContextBlock(elements=[md(f"*{desk.alerts_open}* open alerts ({counts}) · *{desk.questions_waiting}* "
                                  f"questions waiting · worker {health}"[:3000])]),
        _header(f"Open alerts ({desk.alerts_open})"),
    ]
    tail: list[Block] = [DividerBlock(), _header(f"Questions waiting for an answer ({desk.questions_waiting})"),
                         _lines(_question_lines(desk), desk.questions_waiting, "questions")]
    tail += [_header(f"Accounts still learning ({desk.learning_count})"), _lines(
        [f"• {text(account, 40)}: learning silently until {when(end)}" for account, end in desk.learning],
        desk.learning_count, "accounts")]
    tail += [_header(f"Suppressions expiring within 7 days ({desk.expiring_count})"), _lines(
        [f"• *#{row.id}* {text(row.identity, 300)}, expires {when(row.expires_at)}; covered "
         f"{desk.hits.get(row_id(row), 0)} signals; by {mention(row.author)}: {text(row.reason, 200)}"
         for row in desk.expiring], desk.expiring_count, "suppressions")]
    lines = [f"• {text(line, 400)}" for line in desk.health_lines]
    tail += [_header("Worker health"), _lines(lines[:HEALTH_LINES_SHOWN], len(lines), "lines in `/sesguard status`",
                                                    block_id="health-lines")]

    alerts: list[Block] = []
    shown = 0
    room = MAX_BLOCKS - len(blocks) - len(tail) - 1  # one for "and N more"
    for row in desk.alerts:
        part = _alert(row)
        if len(alerts) + len(part) > room:
            break
        alerts += part
        shown += 1
    if not desk.alerts_open:
        alerts.append(SectionBlock(text=md("No open alerts.")))
    elif desk.alerts_open > shown:
        alerts.append(ContextBlock(elements=[md(
            f"… and {desk.alerts_open - shown} more open alerts (the newest {shown} are shown); "
            f"the alert channel has them all, `/sesguard history` finds any identity")]))
    return blocks + alerts + tail


def home_view(desk: Desk) -> dict:
    blocks = triager_blocks(desk) if desk.triager else person_blocks(desk)
    return View(type="home", blocks=blocks[:MAX_BLOCKS]).to_dict()


def digest(view: dict) -> str:
    """What a view shows, as a short hash: an unchanged tab is not published again. The health lines
    carry times that move on every poll; only whether the worker is healthy counts as a change."""
    shown = [block for block in view["blocks"] if not str(block.get("block_id", "")).startswith("health")]
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:32]
