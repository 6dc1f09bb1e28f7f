"""How every sesguard process starts: `serve`, `socket`, `worker` and `poll` (SPEC §2, §5).

The same steps in the same order for each: the settings (a bad one stops start-up, `SettingsError`, which
`bot.cli.commands.main` prints as one line naming it), the settings this process cannot do without, the store
opened and migrated, then logging; and how a platform's SIGTERM ends the process.

It lives in `bot.config` rather than `bot.worker`: the Slack processes (`bot.slack.web`, `bot.slack.app`)
start this way too, and taking their start-up from the worker's package would tie Slack's plumbing to the
worker. Start-up is the configuration taking effect (the settings, the store they name, the log format), and
every process already depends on `bot.config` for that.
"""

from __future__ import annotations

import logging
import signal
import threading

from bot.config.logs import configure_logging
from bot.config.settings import Settings, load_settings
from bot.store.schema import migrate
from detection.store import Store


def start(*required: str, log_level: int = logging.INFO) -> tuple[Settings, Store]:
    """The settings, each of `required` (names as in the environment) set, the store migrated, logging on."""
    settings = load_settings()
    settings.require(*required)
    store = Store(settings.database_url)
    migrate(store)  # before logging is set up: an unusable store is one line, without migration chatter
    configure_logging(log_level)
    return settings, store


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM (a platform stopping the process) and Ctrl-C end the work between two requests or jobs."""
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())


def interrupt_on_sigterm() -> None:
    """SIGTERM taken as Ctrl-C: a server's loop (waitress's) ends on KeyboardInterrupt, with its threads."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
