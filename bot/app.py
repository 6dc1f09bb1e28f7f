"""`build_app(settings, store)`: the Bolt app of SPEC §4: its client, middleware and listeners, in one place.

The store, the settings and the triager check reach handlers through middleware (`bot.middleware`);
each listener module registers its handlers with `register(app)`.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor

from slack_bolt import App
from slack_sdk import WebClient

from bot.listeners import actions, commands, views
from bot.middleware import Triagers, reject_replays, services
from bot.settings import Settings
from bot.slack_client import slack_client
from detection.store import Store

log = logging.getLogger(__name__)


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
    options = {"listener_executor": listener_executor} if listener_executor is not None else {}
    app = App(
        client=client or slack_client(settings),
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
        request_verification_enabled=not socket_mode,
        # Start without calling Slack (auth.test runs on the first request), so that a Slack outage
        # never keeps the web process from starting and answering /healthz.
        token_verification_enabled=False,
        **options,
    )

    app.use(reject_replays(store))
    app.use(services(store, settings, triagers))
    for listeners in (actions, views, commands):
        listeners.register(app)
    return app


def run_socket_mode() -> int:
    """`sesguard socket`: the same app over Socket Mode (SLACK_APP_TOKEN); no public URL needed."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    settings.require("SLACK_APP_TOKEN", "SLACK_BOT_TOKEN")
    store = Store(settings.database_url)
    store.migrate()
    app = build_app(settings, store, socket_mode=True)
    SocketModeHandler(app, settings.slack_app_token.get_secret_value()).start()
    return 0
