"""`sesguard poll [--once]`: the ingestion passes in the foreground, or one whole worker pass (SPEC §2)."""

from __future__ import annotations

import logging
import threading

from bot.config.logs import summary
from bot.config.startup import start, stop_on_signals
from bot.worker.ingest.consume import queue_command
from bot.worker.ingest.poll import poll_once
from bot.worker.ingest.sources import make_source
from bot.worker.scheduler import Worker


def command(once: bool) -> int:
    """`sesguard poll [--once]`: one whole worker pass — ingestion, then every other job of the worker — (exit
    0 when it completed, 1 when a source, Slack or PagerDuty failed), or ingestion passes every
    SESGUARD_POLL_SECONDS in the foreground until stopped."""
    quiet = logging.WARNING if once else logging.INFO  # one pass speaks through its result lines
    settings, store = start("SLACK_BOT_TOKEN", "SLACK_ALERT_CHANNEL", log_level=quiet)
    source = make_source(settings, store)
    stop = threading.Event()
    stop_on_signals(stop)
    if settings.source == "sqs":
        code = queue_command(settings, store, source, once, stop)
        if not once:
            return code
    else:
        while True:
            result = poll_once(settings, store, source, stop=stop)
            if once:
                for line, fields in result.entries():  # errors may quote S3 keys and AWS's answers
                    summary(line, fields.get("outcome") == "failed", **fields)
                code = 0 if result.ok else 1
                break
            if stop.wait(settings.poll_seconds):
                return 0
    # `--once` is a whole worker pass (SPEC §2): the scheduler's other jobs too, so that a cron or CronJob
    # deployment loses nothing (the learning reports, the digest, contact time-outs, …).
    failures = Worker(settings, store, source, stop).once()
    for line in failures:
        summary(line, True, part="job", outcome="failed")
    return 1 if failures else code
