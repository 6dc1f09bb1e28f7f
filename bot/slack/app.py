"""`build_app(settings, store)`: the Bolt app of SPEC §4: its client, middleware and listeners, in one place.

The store, the settings and the triager check reach handlers through middleware (`bot.slack.middleware`);
each capability (triage, contact, commands) registers its handlers with its `listeners.register(app)`.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor

from slack_bolt import App
from slack_sdk import WebClient

from bot.settings import Settings
from bot.slack.client import slack_client
from bot.slack.commands import listeners as commands
from bot.slack.contact import listeners as contact
from bot.slack.middleware import Triagers, reject_replays, services
from bot.slack.triage import listeners as triage
from detection.store import Store

log = logging.getLogger(__name__)

# Bolt runs each listener on this pool and acks from inside it, so a request whose listener waits for a
# free thread misses Slack's 3-second deadline. Bolt's default of 5 threads is filled at once by
# listeners waiting on a Slack that hangs (each call may wait for the client's time-out); with this
# many, acks keep coming while Slack is slow. Threads are started only when all are busy.
LISTENER_THREADS = 200


def build_app(settings: Settings, store: Store, *, client: WebClient | None = None,
              listener_executor: Executor | None = None, socket_mode: bool = False) -> App:
    """The Bolt app, its Web API client on SLACK_API_URL, its middleware and listeners."""
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
        client=client or slack_client(settings),
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
        request_verification_enabled=not socket_mode,
        # Start without calling Slack (auth.test runs on the first request), so that a Slack outage
        # never keeps the web process from starting and answering /healthz.
        token_verification_enabled=False,
        listener_executor=listener_executor,
    )

    app.use(reject_replays(store))
    app.use(services(store, settings, triagers, listener_executor))
    for capability in (triage, contact, commands):
        capability.register(app)
    return app


def run_socket_mode() -> int:
    """`sesguard socket`: the same app over Socket Mode (SLACK_APP_TOKEN); no public URL needed."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.logs import configure_logging
    from bot.settings import load_settings

    settings = load_settings()
    settings.require("SLACK_APP_TOKEN", "SLACK_BOT_TOKEN")
    store = Store(settings.database_url)
    store.migrate()  # before logging is set up: an unusable store is one line, without migration chatter
    configure_logging()
    app = build_app(settings, store, socket_mode=True)
    SocketModeHandler(app, settings.slack_app_token.get_secret_value()).start()
    return 0
