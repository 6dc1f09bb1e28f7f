"""Buttons: the four on the alert (triagers only) and the two in the contacted person's DM.

Each handler acks first. A button's value is never trusted: the signal (or question) is re-read from
the store by its ID, and a button must come from that signal's own alert message.
"""

from __future__ import annotations

import logging

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot import blocks, contact, triage
from bot.alerts import post_in_thread, refresh_alert
from bot.ids import Action
from bot.middleware import triagers_only, user_of
from detection.store import SignalRow, Store

log = logging.getLogger(__name__)


def register(app: App) -> None:
    app.action(Action.ESCALATE.value, middleware=[triagers_only])(escalate)
    app.action(Action.NOT_AN_ISSUE.value, middleware=[triagers_only])(not_an_issue)
    app.action(Action.SUPPRESS.value, middleware=[triagers_only])(open_suppress_modal)
    app.action(Action.CONTACT_USER.value, middleware=[triagers_only])(contact_user)
    app.action(Action.ANSWER_YES.value)(answer_yes)
    app.action(Action.ANSWER_NO.value)(answer_no)


# ── helpers ──────────────────────────────────────────────────────────────────────────────────────────


def _clicked(body: dict) -> dict:
    return (body.get("actions") or [{}])[0]


def tell(client: WebClient, body: dict, text: str, channel: str | None = None) -> None:
    """An ephemeral note to whoever clicked, where they clicked."""
    channel = channel or (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = user_of(body)
    if channel and user:
        client.chat_postEphemeral(channel=channel, user=user, text=text)


def clicked_signal(store: Store, body: dict) -> tuple[SignalRow | None, str]:
    """The stored signal the button names, or None and why not."""
    signal_id = str(_clicked(body).get("value") or "")
    with store.session() as session:
        row = session.get(SignalRow, signal_id) if signal_id else None
    if row is None:
        return None, "This alert is not known to sesguard. Nothing was changed."
    message_ts = (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
    if row.slack_ts and message_ts and message_ts != row.slack_ts:
        return None, "This button does not belong to that alert. Nothing was changed."
    return row, ""


def unchanged(change: triage.Change) -> str:
    """Why a click changed nothing (a double click, or a state the action does not apply to)."""
    words = blocks.STATUS_WORDS.get(change.previous_status, change.previous_status)
    note = f"Nothing was changed: this alert is already at *{words}*"
    last = change.last
    if last is not None and last.actor != "sesguard":
        note += f" ({blocks.mention(last.actor)}, {blocks.when(last.at)})"
    return note + "."


def _apply(body: dict, client: WebClient, context: BoltContext, operation, line: str) -> None:
    store = context["store"]
    user = user_of(body)
    row, problem = clicked_signal(store, body)
    if row is None:
        tell(client, body, problem)
        return
    change = operation(store, row.signal_id, user)
    if not change.changed:
        tell(client, body, unchanged(change))
        return
    row = refresh_alert(store, client, row.signal_id) or change.signal
    post_in_thread(client, row, blocks.thread_line(line, user))


# ── the alert's buttons ──────────────────────────────────────────────────────────────────────────────


def escalate(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    _apply(body, client, context, triage.escalate, ":arrow_up: Escalated")


def not_an_issue(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    _apply(body, client, context, triage.close, ":white_check_mark: Marked *not an issue*")


def open_suppress_modal(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    row, problem = clicked_signal(context["store"], body)
    if row is None:
        tell(client, body, problem)
    elif row.status not in triage.SUPPRESS_FROM:
        tell(client, body, unchanged(triage.Change(False, row, row.status)))
    else:  # the trigger_id lives three seconds: open the modal before anything slow
        client.views_open(trigger_id=body["trigger_id"], view=blocks.suppress_modal(row))


def contact_user(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    store, settings = context["store"], context["settings"]
    user = user_of(body)
    row, problem = clicked_signal(store, body)
    if row is None:
        tell(client, body, problem)
        return
    if row.status not in triage.CONTACT_FROM:
        tell(client, body, unchanged(triage.Change(False, row, row.status)))
        return
    waiting = contact.open_contact(store, row.signal_id)
    if waiting is not None:
        tell(client, body, f"Already asked {blocks.mention(waiting.slack_user_id)} at {blocks.when(waiting.asked_at)}; "
                           f"waiting for the answer. Nothing was changed.")
        return
    person = contact.resolve_person(store, client, row)
    if person is None:
        client.views_open(trigger_id=body["trigger_id"], view=blocks.pick_person_modal(row))
        return
    ask_and_tell(client, body, store, settings, row, person, user)


def ask_and_tell(client: WebClient, body: dict, store: Store, settings, row: SignalRow, person: str, user: str,
                 channel: str | None = None) -> None:
    """Ask `person` about the signal and tell the clicker when that did not happen."""
    try:
        asked = contact.ask(store, settings, client, row.signal_id, person, user)
    except Exception as exc:
        log.warning("could not contact %s about %s: %s", person, row.signal_id, exc)
        tell(client, body, f"Could not send {blocks.mention(person)} a message ({type(exc).__name__}). "
                           f"Nothing was changed; try again.", channel)
        return
    if asked.contact is None:
        state = asked.signal.status if asked.signal else "unknown"
        tell(client, body, unchanged(triage.Change(False, asked.signal, state)), channel)
    elif not asked.new:
        tell(client, body, f"Already asked {blocks.mention(asked.contact.slack_user_id)}; waiting for the answer. "
                           f"Nothing was changed.", channel)


# ── the contacted person's answer ────────────────────────────────────────────────────────────────────


def _answer(body: dict, client: WebClient, context: BoltContext, reply: str) -> None:
    result = contact.answer(context["store"], context["settings"], client, str(_clicked(body).get("value") or ""),
                            user_of(body), reply)
    if not result.accepted:
        tell(client, body, result.message)


def answer_yes(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    _answer(body, client, context, contact.YES)


def answer_no(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    _answer(body, client, context, contact.NO)
