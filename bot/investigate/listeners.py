"""The alert's Investigate button (SPEC §6), triagers only: acknowledged at once; the reading, the summary
in the thread and any escalation happen after the ack, on the listener pool."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.alerts.clicks import signal_of_alert
from bot.config.settings import Settings
from bot.investigate import blocks, runs
from bot.investigate.reader import SharedReader
from bot.slack.blocks import text
from bot.slack.ids import Action
from bot.slack.middleware import triagers_only
from bot.slack.replies import actor_of, tell
from detection.sources.lookup import LookupSource
from detection.store import Store, row_id


def register(app: App) -> None:
    app.action(Action.INVESTIGATE.value, middleware=[triagers_only, signal_of_alert])(investigate_alert)


def provide_reader(settings: Settings, store: Store, source: LookupSource | None = None) -> Callable:
    """Global middleware: `context["activity_reader"]`, the one CloudTrail reader of this app."""
    reader = SharedReader(settings, store, source)

    def inject_activity_reader(context: BoltContext, next: Callable) -> None:
        context["activity_reader"] = reader
        next()

    return inject_activity_reader


def investigate_alert(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    store, settings, user = context["store"], context["settings"], actor_of(body)
    signal = context["signal"]
    requested = runs.request(store, signal.signal_id, user, settings.investigate_hours)
    if requested.investigation is None:
        tell(client, body, blocks.not_applicable(signal))
        return
    if not requested.new:
        tell(client, body, blocks.requested_before(requested.investigation))
        return
    tell(client, body, f":mag: Investigating {text(signal.identity, 300)}: the summary will be in the alert's thread.")
    runs.carry_out(store, settings, client, context["activity_reader"], row_id(requested.investigation))
