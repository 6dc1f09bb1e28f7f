"""`build_app(settings, store)`: the Bolt app of SPEC §4: its client, middleware and listeners, in one place.

The store, the settings and the triager check reach handlers through middleware (`bot.slack.middleware`);
each capability (triage, contact, contain, commands, investigate, home, suppressions) registers its handlers with its
`listeners.register(app)`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.config.settings import Settings
from bot.contact import listeners as contact
from bot.contain import listeners as contain
from bot.desk.home import listeners as home
from bot.investigate import listeners as investigate
from bot.slack.client import slack_client
from bot.slack.commands import listeners as commands
from bot.slack.middleware import Triagers, reject_replays, services
from bot.triage import listeners as triage
from bot.triage.suppressions import listeners as suppressions
from detection.sources.lookup import LookupSource
from detection.store import Store

log = logging.getLogger(__name__)

# Bolt runs each listener on this pool and acks from inside it, so a request whose listener waits for a
# free thread misses Slack's 3-second deadline. Bolt's default of 5 threads is filled at once by
# listeners waiting on a Slack that hangs (each call may wait for the client's time-out); with this
# many, acks keep coming while Slack is slow. Threads are started only when all are busy.
LISTENER_THREADS = 200


def authorize_with_the_bot_token(settings: Settings) -> Callable[..., AuthorizeResult]:
    """Bolt's `authorize`: every request runs with SLACK_BOT_TOKEN, known without asking Slack.

    Bolt's own single-workspace authorization calls `auth.test` on the first request and, when that fails,
    again on every request after: while Slack's Web API hung or refused connections, every slash command
    and click waited for it and got a 500 (after 15 s, or 2 s). An ack needs only the token. The bot's
    user and bot IDs, which `auth.test` would have told, stay unknown: Bolt uses them only to drop the
    bot's own events, and the one event sesguard listens to (`app_home_opened`) is a person's.
    """
    token = settings.bot_token

    def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=token)

    return authorize


def build_app(settings: Settings, store: Store, *, client: WebClient | None = None,
              listener_executor: Executor | None = None, socket_mode: bool = False,
              activity_source: LookupSource | None = None) -> App:
    """The Bolt app, its Web API client on SLACK_API_URL, its middleware and listeners. Investigations read
    CloudTrail through `activity_source` when given (a LookupEvents source built by the caller, e.g. on a
    clock of its own), else through one built at the first investigation."""
    settings.require("SLACK_BOT_TOKEN")
    if not socket_mode:
        settings.require("SLACK_SIGNING_SECRET")
    triagers = Triagers(settings)
    if triagers.everyone:
        log.warning("neither SLACK_TRIAGERS nor SLACK_TRIAGE_USERGROUP is set: everyone in the workspace may "
                    "triage sesguard alerts")
    listener_executor = listener_executor or ThreadPoolExecutor(max_workers=LISTENER_THREADS,
                                                                thread_name_prefix="bolt-listener")
    app = App(
        # Each request's client gets the token from `authorize`; Bolt warns when this one carries it too.
        client=client or slack_client(settings, with_token=False),
        authorize=authorize_with_the_bot_token(settings),
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
        request_verification_enabled=not socket_mode,
        listener_executor=listener_executor,
    )

    app.use(reject_replays(store))
    app.use(services(store, settings, triagers, listener_executor))
    app.use(investigate.provide_reader(settings, store, activity_source))
    for capability in (triage, contact, contain, commands, investigate, home, suppressions):
        capability.register(app)
    return app


def run_socket_mode() -> int:
    """`sesguard socket`: the same app over Socket Mode (SLACK_APP_TOKEN); no public URL needed."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.config.startup import start

    settings, store = start("SLACK_APP_TOKEN", "SLACK_BOT_TOKEN")
    app = build_app(settings, store, socket_mode=True)
    SocketModeHandler(app, settings.app_token).start()
    return 0
