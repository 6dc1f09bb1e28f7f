"""The signal behind a click on an alert's button: listener middleware every capability's alert buttons use.

It lives with the alerts, not in `bot.slack.middleware`: which message is a signal's alert is the alerts'
table (`AlertPost`), and Slack's plumbing knows no capability's tables.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import Ack, BoltContext, BoltResponse
from slack_sdk import WebClient

from bot.alerts.tables import posted_message
from bot.slack.middleware import after_ack, clicked
from bot.slack.replies import channel_of, tell
from detection.store import SignalRow, Store


def clicked_signal(store: Store, body: dict) -> tuple[SignalRow | None, str]:
    """The stored signal the button names, or None and why not: a button's value is never trusted."""
    signal_id = str(clicked(body).get("value") or "")
    with store.session() as session:
        row = session.get(SignalRow, signal_id) if signal_id else None
    if row is None:
        return None, "This alert is not known to sesguard. Nothing was changed."
    message_ts = (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
    alert = posted_message(store, signal_id)
    if alert is not None and message_ts and message_ts != alert.ts:
        return None, "This button does not belong to that alert. Nothing was changed."
    return row, ""


def signal_of_alert(body: dict, client: WebClient, context: BoltContext, ack: Ack,
                    next: Callable) -> BoltResponse | None:
    """Listener middleware of the alert's buttons: the signal the button names, re-read from the store and
    from its own message, in `context["signal"]`; otherwise an ephemeral note, and the handler never runs."""
    row, problem = clicked_signal(context["store"], body)
    if row is not None:
        context["signal"] = row
        alert = posted_message(context["store"], row.signal_id) if channel_of(body) is None else None
        if alert is not None:  # a click in the App Home: notes go to the alert's channel
            body["channel"] = {"id": alert.channel}
        next()
        return None
    after_ack(context, tell, client=client, body=body, text=problem)
    return ack()
