"""What `poll` and `worker` need before anything runs, and how they stop."""

from __future__ import annotations

import signal
import threading

from bot.config.settings import Settings
from detection.store import Store


def start(settings: Settings) -> Store:
    """Slack settings checked, and the store migrated."""
    settings.require("SLACK_BOT_TOKEN", "SLACK_ALERT_CHANNEL")
    store = Store(settings.database_url)
    store.migrate()
    return store


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM (a platform stopping the process) and Ctrl-C end the work between two requests or jobs."""
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
