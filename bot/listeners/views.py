"""Modal submissions: Suppress… and the person picker of Contact user (triagers only).

A submitted modal is a payload like any other: its choices are checked against what the modal offered,
and the signal is re-read from the store by the ID the modal carries.
"""

from __future__ import annotations

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot import blocks, triage
from bot.alerts import post_in_thread, refresh_alert
from bot.ids import DURATIONS, SCOPE_ACCOUNT, SCOPE_EVERYWHERE, Field, View
from bot.listeners.actions import ask_and_tell, unchanged
from bot.middleware import triagers_only, user_of
from detection.store import SignalRow

MIN_REASON, MAX_REASON = 3, 500


def register(app: App) -> None:
    app.view(View.SUPPRESS.value, middleware=[triagers_only])(submit_suppression)
    app.view(View.PICK_PERSON.value, middleware=[triagers_only])(submit_person)


def _input(view: dict, field: Field) -> dict:
    """The state of one input; {} when the payload lacks it or has it in another shape."""
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    block = values.get(field.value) if isinstance(values, dict) else None
    element = block.get(field.value) if isinstance(block, dict) else None
    return element if isinstance(element, dict) else {}


def _selected(view: dict, field: Field) -> str | None:
    return (_input(view, field).get("selected_option") or {}).get("value")


def _signal(context: BoltContext, view: dict) -> SignalRow | None:
    with context["store"].session() as session:
        return session.get(SignalRow, str(view.get("private_metadata") or ""))


def _tell(client: WebClient, row: SignalRow, user: str, text: str) -> None:
    if row.slack_channel and user:
        client.chat_postEphemeral(channel=row.slack_channel, user=user, text=text)


def submit_suppression(ack: Ack, body: dict, view: dict, client: WebClient, context: BoltContext) -> None:
    scope, duration = _selected(view, Field.SCOPE), _selected(view, Field.DURATION)
    reason = str(_input(view, Field.REASON).get("value") or "").strip()
    errors = {}
    if scope not in (SCOPE_ACCOUNT, SCOPE_EVERYWHERE):
        errors[Field.SCOPE.value] = "Pick a scope."
    if duration not in DURATIONS:
        errors[Field.DURATION.value] = "Pick a duration."
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        errors[Field.REASON.value] = f"Say why, in {MIN_REASON} to {MAX_REASON} characters."
    row = _signal(context, view)
    if row is None:
        errors[Field.REASON.value] = "This alert is not known to sesguard."
    if errors:
        ack(response_action="errors", errors=errors)
        return
    ack()
    user = user_of(body)
    change = triage.suppress(context["store"], row.signal_id, user, scope, duration, reason)
    if not change.changed:
        _tell(client, row, user, unchanged(change))
        return
    row = refresh_alert(context["store"], client, row.signal_id) or change.signal
    post_in_thread(client, row, blocks.thread_line(":mute: Suppressed", user, change.detail))


def submit_person(ack: Ack, body: dict, view: dict, client: WebClient, context: BoltContext) -> None:
    person = _input(view, Field.PERSON).get("selected_user")
    row = _signal(context, view)
    if not isinstance(person, str) or not person or row is None:
        ack(response_action="errors", errors={Field.PERSON.value: "Pick a person." if row else "This alert is not known."})
        return
    ack()
    user = user_of(body)
    remember = any(o.get("value") == "yes" for o in _input(view, Field.REMEMBER).get("selected_options") or [])
    if remember:
        triage.map_identity(context["store"], row.identity, person, user)
    ask_and_tell(client, body, context["store"], context["settings"], row, person, user, channel=row.slack_channel)
