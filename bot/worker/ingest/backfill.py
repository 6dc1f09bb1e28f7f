"""The first start's baseline for a source that only brings what happens from now on (SPEC §7: the SQS
queue), from SESGUARD_BACKFILL_SOURCE.

The backfill source is a `Source` the poll machinery reads as it reads its own (`bot.worker.ingest.poll`:
SESGUARD_BACKFILL_DAYS of history learned silently per account and region, the start of observation set to
the start of that history). SPEC §9's `athena://` and `lake://` backfill the LookupEvents and S3 sources
(`bot.worker.ingest.poll.engine_backfill`); with the queue the settings refuse them.

`backfill_pass` reads only the places that were never backfilled: a place done once is left to the queue,
an account the backfill source lists for the first time (an organisation's new member) is backfilled on
the next pass.
"""

from __future__ import annotations

import threading

from bot.config.settings import Settings
from bot.worker.ingest.poll import PollResult, poll_once
from detection.sources.pulled import Source
from detection.store import Store


def backfill_pass(settings: Settings, store: Store, source: Source,
                  stop: threading.Event | None = None) -> PollResult:
    """One pass over the places of `source` that were never backfilled; the others are left alone."""
    return poll_once(settings, store, source, stop=stop, notify=False, only_new_places=True)
