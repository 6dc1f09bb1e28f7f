"""Contact user's buttons and modal: the alert's Contact user (triagers only), the person picker, and the
contacted person's Yes / No in the DM (only that person may answer: checked against the stored question).
"""

from __future__ import annotations

import logging

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.alerts.clicks import signal_of_alert
from bot.alerts.tables import alert_channel
from bot.contact import blocks, people, questions
from bot.slack.blocks import mention, when
from bot.slack.ids import Action, Field, View
from bot.slack.middleware import clicked, triagers_only
from bot.slack.modals import signal_of_modal, submitted
from bot.slack.replies import actor_of, tell
from bot.triage.blocks import unchanged
from bot.triage.states import applies
from detection.store import SignalRow, Store

log = logging.getLogger(__name__)


def register(app: App) -> None:
    app.action(Action.CONTACT_USER.value, middleware=[triagers_only, signal_of_alert])(contact_user)
    app.view(View.PICK_PERSON.value, middleware=[triagers_only])(submit_person)
    app.action(Action.ANSWER_YES.value)(answer_yes)
    app.action(Action.ANSWER_NO.value)(answer_no)


def contact_user(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    store, settings, row = context["store"], context["settings"], context["signal"]
    if not applies(Action.CONTACT_USER, row.status):
        tell(client, body, unchanged(row.status))
        return
    waiting = questions.open_contact(store, row.signal_id)
    if waiting is not None:
        tell(client, body, f"Already asked {mention(waiting.slack_user_id)} at {when(waiting.asked_at)}; "
                           f"waiting for the answer. Nothing was changed.")
        return
    person = people.resolve_person(store, client, row)
    if person is None:
        client.views_open(trigger_id=body["trigger_id"], view=blocks.pick_person_modal(row))
        return
    ask_and_tell(client, body, store, settings, row, person, actor_of(body))


def submit_person(ack: Ack, body: dict, view: dict, client: WebClient, context: BoltContext) -> None:
    person = submitted(view, Field.PERSON).get("selected_user")
    row = signal_of_modal(context["store"], view)
    if not isinstance(person, str) or not person or row is None:
        problem = "Pick a person." if row else "This alert is not known."
        ack(response_action="errors", errors={Field.PERSON.value: problem})
        return
    ack()
    user = actor_of(body)
    options = submitted(view, Field.REMEMBER).get("selected_options")
    if isinstance(options, list) and any(isinstance(o, dict) and o.get("value") == "yes" for o in options):
        people.map_identity(context["store"], row.identity, person, user)
    ask_and_tell(client, body, context["store"], context["settings"], row, person, user,
                 channel=alert_channel(context["store"], row.signal_id))


def ask_and_tell(client: WebClient, body: dict, store: Store, settings, row: SignalRow, person: str, user: str,
                 channel: str | None = None) -> None:
    """Ask `person` about the signal and tell the clicker when that did not happen."""
    try:
        asked = questions.ask(store, settings, client, row.signal_id, person, user)
    except Exception as exc:
        log.warning("could not contact %s about %s: %s", person, row.signal_id, exc)
        tell(client, body, f"Could not send {mention(person)} a message ({type(exc).__name__}). "
                           f"Nothing was changed; try again.", channel)
        return
    if asked.contact is None:
        tell(client, body, unchanged(asked.signal.status if asked.signal else "unknown"), channel)
    elif not asked.new:
        tell(client, body, f"Already asked {mention(asked.contact.slack_user_id)}; waiting for the answer. "
                           f"Nothing was changed.", channel)


def _answer(body: dict, client: WebClient, context: BoltContext, reply: str) -> None:
    result = questions.answer(context["store"], context["settings"], client, str(clicked(body).get("value") or ""),
                              actor_of(body), reply)
    if not result.accepted:
        tell(client, body, result.message)


def answer_yes(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    _answer(body, client, context, questions.YES)


def answer_no(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    _answer(body, client, context, questions.NO)
