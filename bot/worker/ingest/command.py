"""`sesguard poll [--once]`: the ingestion passes in the foreground, or one of them (SPEC §2)."""

from __future__ import annotations

import logging
import threading

from bot.config.logs import summary
from bot.config.startup import start, stop_on_signals
from bot.worker.ingest.consume import queue_command
from bot.worker.ingest.poll import poll_once
from bot.worker.ingest.sources import make_source


def command(once: bool) -> int:
    """`sesguard poll [--once]`: one pass (exit 0 when it completed, 1 when a source or Slack failed),
    or passes every SESGUARD_POLL_SECONDS in the foreground until stopped."""
    quiet = logging.WARNING if once else logging.INFO  # one pass speaks through its result lines
    settings, store = start("SLACK_BOT_TOKEN", "SLACK_ALERT_CHANNEL", log_level=quiet)
    source = make_source(settings, store)
    stop = threading.Event()
    stop_on_signals(stop)
    if settings.source == "sqs":
        return queue_command(settings, store, source, once, stop)
    while True:
        result = poll_once(settings, store, source, stop=stop)
        if once:
            for line, fields in result.entries():  # errors may quote S3 keys and AWS's answers
                summary(line, fields.get("outcome") == "failed", **fields)
            return 0 if result.ok else 1
        if stop.wait(settings.poll_seconds):
            return 0
