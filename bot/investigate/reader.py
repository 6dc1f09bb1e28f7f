"""The CloudTrail reader of investigations in this process, built at the first investigation (start-up
never waits for AWS) and kept: its LookupEvents source holds the credentials, assumed roles and clients."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, TypeAlias

from bot.config.settings import Settings
from detection.sources.activity import ActivityReader
from detection.sources.lookup import Backoff, LookupSource
from detection.store import Store

if TYPE_CHECKING:
    from detection.sources.sql.activity import EngineActivityReader

# LookupEvents' reader, or a SQL engine's: either investigates a subject's window.
Reader: TypeAlias = "ActivityReader | EngineActivityReader"


class SharedReader:
    """Call it for the reader; `source` reuses the worker's own LookupEvents source when it has one."""

    def __init__(self, settings: Settings, store: Store, source: LookupSource | None = None):
        self.settings, self.store, self._source = settings, store, source
        self._reader: Reader | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Reader:
        with self._lock:
            if self._reader is None:
                self._reader = engine_reader(self.settings)
            if self._reader is None:
                source = self._source or LookupSource(
                    self.settings.aws_regions, self.settings.role_arns, self.store, self.settings.identity_key,
                    backoff=Backoff(base=self.settings.retry_seconds),
                    org_role_name=self.settings.org_role_name, exclude=self.settings.accounts_exclude)
                self._reader = ActivityReader(source, self.settings.investigate_max_pages)
            return self._reader


def engine_reader(settings: Settings) -> EngineActivityReader | None:
    """With SESGUARD_ATHENA_TABLE (or else SESGUARD_LAKE_EVENT_DATA_STORE), investigations read the SQL engine: every
    region in one query, up to as many records as SESGUARD_INVESTIGATE_MAX_PAGES pages of LookupEvents hold.
    None without either: they read LookupEvents."""
    from detection.sources.lookup import PAGE_SIZE
    from detection.sources.sql.activity import EngineActivityReader
    from detection.sources.sql.engine import EngineInput

    if settings.athena_table:
        source = EngineInput("athena", settings.athena_table)
    elif settings.lake_event_data_store:
        source = EngineInput("lake", settings.lake_event_data_store)
    else:
        return None
    return EngineActivityReader(source, settings.engine_settings, settings.investigate_max_pages * PAGE_SIZE)
