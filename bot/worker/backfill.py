"""The first start's baseline for a source that only brings what happens from now on (SPEC §7: the SQS
queue), from SESGUARD_BACKFILL_SOURCE.

One function per kind of backfill source, each returning a `Source` the poll machinery reads as it reads
its own (`bot.worker.poll`: SESGUARD_BACKFILL_DAYS of history learned silently per account and region,
the start of observation set to the start of that history). More kinds (SPEC §9's `athena://` and
`lake://`) are one entry in `BACKFILL_KINDS` each.

`backfill_pass` reads only the places that were never backfilled: a place done once is left to the queue,
an account the backfill source lists for the first time (an organisation's new member) is backfilled on
the next pass.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.worker.poll import PollResult
    from detection.sources.pulled import Source
    from detection.store import Store


def _lookup(settings: Settings, store: Store, url: str) -> Source:
    from detection.sources.lookup import Backoff, LookupSource

    return LookupSource(settings.aws_regions, settings.role_arns, store, settings.identity_key,
                        backoff=Backoff(base=settings.retry_seconds),
                        org_role_name=settings.org_role_name, exclude=settings.accounts_exclude)


def _s3(settings: Settings, store: Store, url: str) -> Source:
    from detection.sources.s3_trail import S3TrailSource

    return S3TrailSource(url, store, settings.identity_key)


# (pattern of SESGUARD_BACKFILL_SOURCE, what it is, the Source it makes)
BACKFILL_KINDS: list[tuple[re.Pattern, str, Callable[[Settings, Store, str], Source]]] = [
    (re.compile(r"lookup"), "lookup", _lookup),
    (re.compile(r"s3://[^/\s]+(/\S*)?"), "s3://bucket/prefix", _s3),
]


def check_backfill_url(value: str) -> str:
    """The value when some kind reads it; ValueError naming the kinds otherwise (for the settings)."""
    if any(pattern.fullmatch(value) for pattern, _, _ in BACKFILL_KINDS):
        return value
    raise ValueError(f"must be one of: {', '.join(kind for _, kind, _ in BACKFILL_KINDS)}")


def backfill_source(settings: Settings, store: Store) -> Source | None:
    """The Source of SESGUARD_BACKFILL_SOURCE; None without one (an account's observation then starts at
    its first event)."""
    url = settings.backfill_source
    if not url:
        return None
    for pattern, _, make in BACKFILL_KINDS:
        if pattern.fullmatch(url):
            return make(settings, store, url)
    # athena:// and lake:// (SPEC §9) are accepted by the settings for the poll; the queue's backfill does
    # not take them yet (one entry in BACKFILL_KINDS will): said once at start, observation from first events.
    log.warning("SESGUARD_BACKFILL_SOURCE=%s is not a backfill the SQS source reads yet (%s); without one, "
                "an account's observation starts at its first event", url.split("://")[0] + "://…",
                ", ".join(kind for _, kind, _ in BACKFILL_KINDS))
    return None


def backfill_pass(settings: Settings, store: Store, source: Source,
                  stop: threading.Event | None = None) -> PollResult:
    """One pass over the places of `source` that were never backfilled; the others are left alone."""
    from bot.worker.poll import poll_once

    return poll_once(settings, store, source, stop=stop, notify=False, only_new_places=True)
