"""`athena://database.table` and `lake://<event data store>` as inputs: the rule's query run on the engine, its
rows turned into the calls files give (`rows`), with the engine's figures.

Used by `sesguard scan` (with `--since`/`--until`), and by the worker's first start (`backfill`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from detection.sources.sql import query, values
from detection.sources.sql.rows import EngineScan, Figures, scan_rows
from detection.sources.sql.running import Limits, QueryFailed

ATHENA, LAKE = "athena://", "lake://"


def is_engine_url(text: str) -> bool:
    return isinstance(text, str) and text.startswith((ATHENA, LAKE))


@dataclass(frozen=True)
class EngineSettings:
    """Where Athena runs and writes (SESGUARD_ATHENA_WORKGROUP, SESGUARD_ATHENA_OUTPUT), and the limits."""

    athena_workgroup: str = "primary"
    athena_output: str | None = None
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class EngineInput:
    engine: str  # "athena" or "lake"
    name: str  # database.table, or the event data store's ID

    @property
    def url(self) -> str:
        return f"{self.engine}://{self.name}"


def parse(url: str, athena_table: str | None = None, lake_store: str | None = None) -> EngineInput:
    """An engine URL, its name checked (values.UnsafeValue names what is wrong). A bare `athena://` or `lake://`
    names the configured table or store (SESGUARD_ATHENA_TABLE, SESGUARD_LAKE_EVENT_DATA_STORE)."""
    if url.startswith(ATHENA):
        name = url[len(ATHENA):] or athena_table or ""
        if not name:
            raise values.UnsafeValue("athena:// names no database.table, and SESGUARD_ATHENA_TABLE is not set")
        values.athena_table(name)
        return EngineInput("athena", name.strip())
    if url.startswith(LAKE):
        name = url[len(LAKE):] or lake_store or ""
        if not name:
            raise values.UnsafeValue("lake:// names no event data store, and SESGUARD_LAKE_EVENT_DATA_STORE is not set")
        return EngineInput("lake", values.event_data_store(name))
    raise values.UnsafeValue(f"not an athena:// or lake:// URL: {url[:40]!r}")


def rule_scan(source: EngineInput, since: datetime, until: datetime, settings: EngineSettings,
              identity_mode: str = "principal", athena_client=None, lake_client=None) -> EngineScan:
    """The rule's matching calls in [since, until) from the engine; a failed query is the scan's `error`
    (one line), as an unreadable file is."""
    from detection.sources.sql import athena, lake  # boto3: imported only when a query runs

    since, until = values.utc(since), values.utc(until)
    figures = Figures(source.engine)
    try:
        if since >= until:
            raise QueryFailed(f"{source.url}: the time range is empty "
                              f"({since:%Y-%m-%d %H:%M} → {until:%Y-%m-%d %H:%M})")
        if source.engine == "athena":
            sql = query.athena_rule_query(source.name, since, until)
            found = athena.run(sql, settings.athena_workgroup, settings.athena_output, settings.limits, figures,
                               athena_client)
        else:
            sql = query.lake_rule_query(source.name, since, until)
            found = lake.run(sql, settings.limits, figures, lake_client)
        scanned = scan_rows(source.url, found, identity_mode, since, until)
    except QueryFailed as exc:
        scanned = EngineScan(source.url, error=str(exc))
    scanned.figures = figures
    return scanned
