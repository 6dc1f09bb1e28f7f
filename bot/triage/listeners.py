"""The alert's triage buttons (Escalate, Not an issue, Suppress…, Reopen) and the Suppress… modal; triagers only.

Each handler acks first. The signal comes from `signal_of_alert`, re-read from the store; a submitted
modal is a payload like any other: its choices are checked against what the modal offered, and the
signal is re-read by the ID the modal carries.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.alerts.blocks import thread_line
from bot.alerts.clicks import signal_of_alert
from bot.alerts.message import post_in_thread, refresh_alert
from bot.alerts.tables import alert_channel
from bot.slack.ids import (
    DURATIONS,
    SCOPE_ACCOUNT,
    SCOPE_EVERYWHERE,
    Action,
    Field,
    View,
)
from bot.slack.middleware import triagers_only
from bot.slack.modals import selected, signal_of_modal, submitted
from bot.slack.replies import actor_of, tell
from bot.triage import blocks, changes
from bot.triage.states import applies

MIN_REASON, MAX_REASON = 3, 500


def register(app: App) -> None:
    on_alert = [triagers_only, signal_of_alert]
    app.action(Action.ESCALATE.value, middleware=on_alert)(escalate)
    app.action(Action.NOT_AN_ISSUE.value, middleware=on_alert)(not_an_issue)
    app.action(Action.SUPPRESS.value, middleware=on_alert)(open_suppress_modal)
    app.action(Action.REOPEN.value, middleware=on_alert)(reopen)
    app.view(View.SUPPRESS.value, middleware=[triagers_only])(submit_suppression)


def _apply(body: dict, client: WebClient, context: BoltContext, change_status: Callable, line: str) -> None:
    store, user = context["store"], actor_of(body)
    change = change_status(store, context["signal"].signal_id, user)
    if not change.changed:
        tell(client, body, blocks.unchanged(change.previous_status, change.last))
        return
    row = refresh_alert(store, client, change.signal.signal_id, context["settings"]) or change.signal
    post_in_thread(store, client, row.signal_id, thread_line(line, user))


def escalate(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    _apply(body, client, context, changes.escalate, ":arrow_up: Escalated")


def not_an_issue(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    _apply(body, client, context, changes.close, ":white_check_mark: Marked *not an issue*")


def reopen(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    _apply(body, client, context, changes.reopen, ":leftwards_arrow_with_hook: Reopened")


def open_suppress_modal(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    row = context["signal"]
    if not applies(Action.SUPPRESS, row.status):
        tell(client, body, blocks.unchanged(row.status))
    else:  # the trigger_id lives three seconds: open the modal before anything slow
        client.views_open(trigger_id=body["trigger_id"], view=blocks.suppress_modal(row))


def submit_suppression(ack: Ack, body: dict, view: dict, client: WebClient, context: BoltContext) -> None:
    scope, duration = selected(view, Field.SCOPE), selected(view, Field.DURATION)
    reason = str(submitted(view, Field.REASON).get("value") or "").strip()
    errors = {}
    if scope not in (SCOPE_ACCOUNT, SCOPE_EVERYWHERE):
        errors[Field.SCOPE.value] = "Pick a scope."
    if duration not in DURATIONS:
        errors[Field.DURATION.value] = "Pick a duration."
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        errors[Field.REASON.value] = f"Say why, in {MIN_REASON} to {MAX_REASON} characters."
    row = signal_of_modal(context["store"], view)
    if row is None:
        errors[Field.REASON.value] = "This alert is not known to sesguard."
    if errors or row is None or scope is None or duration is None:  # each of these is one of the errors
        ack(response_action="errors", errors=errors)
        return
    ack()
    user = actor_of(body)
    change = changes.suppress(context["store"], row.signal_id, user, scope, duration, reason)
    if not change.changed:
        tell(client, body, blocks.unchanged(change.previous_status, change.last),
             alert_channel(context["store"], row.signal_id))
        return
    row = refresh_alert(context["store"], client, row.signal_id, context["settings"]) or change.signal or row
    post_in_thread(context["store"], client, row.signal_id, thread_line(":mute: Suppressed", user, change.detail))
