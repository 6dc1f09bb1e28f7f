"""Where ingestion hands over: the alert outbox to Slack and the pages to PagerDuty, one pass each, their
failures reported instead of stopping the polling."""

from __future__ import annotations

import logging
import threading

from bot.alerts.notifier import NotifyResult, post_pending
from bot.config.settings import Settings
from bot.context.jobs import GatherResult, gather_pending
from bot.page.pager import PageResult, page_pending
from bot.slack.client import slack_client
from detection.store import Store

log = logging.getLogger(__name__)


def notify_pending(store: Store, settings: Settings,
                   stop: threading.Event | None = None) -> tuple[NotifyResult | None, str | None]:
    """The one place the poll hands over to Slack: post the outbox, until `stop` is set. (result, error)"""
    try:
        notified = post_pending(store, settings, stop=stop)
    except Exception as exc:  # a notifier bug must not stop the polling; it is reported and exits 1
        log.exception("the notifier pass failed")
        return None, f"{type(exc).__name__}: {exc}"
    log.log(logging.INFO if notified.ok else logging.WARNING, "%s", notified.line())
    return notified, None


def page_pending_pass(store: Store, settings: Settings) -> tuple[PageResult | None, str | None]:
    """One pager pass, reported like the notifier's. (result, error)"""
    try:
        paged = page_pending(store, settings)
    except Exception as exc:  # a pager bug or a lost database must not stop the polling; it is reported
        log.exception("the pager pass failed")
        return None, f"{type(exc).__name__}: {exc}"
    log.log(logging.INFO if paged.ok else logging.WARNING, "%s", paged.line())
    return paged, None


def gather_context_pass(store: Store, settings: Settings,
                        stop: threading.Event | None = None) -> tuple[GatherResult | None, str | None]:
    """One triage-context pass over the posted alerts (SPEC §10), reported like the notifier's. (result, error)"""
    try:
        gathered = gather_pending(store, settings, slack_client(settings),
                                  stop=stop.is_set if stop is not None else lambda: False)
    except Exception as exc:  # a bug or a lost database must not stop the polling; it is reported
        log.exception("the triage context pass failed")
        return None, f"{type(exc).__name__}: {exc}"
    log.log(logging.WARNING if gathered.unknown else logging.INFO, "%s", gathered.line())
    return gathered, None
