"""The first start's history from a SQL engine (SESGUARD_BACKFILL_SOURCE=athena://… or lake://…): one query for
every account and region, learned into the store without alerts, as `sesguard scan --db` learns a trail.

Every account the query saw — and every account the worker will poll, passed as `accounts` — is observed since
the start of the history: when the history covers the learning period, alerting starts at once (SPEC §3). The
query's end is what the worker's first poll of each place starts from (`bot.worker.ingest.poll`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from detection.baseline import Tuning
from detection.scan import detect
from detection.sources.sql.engine import EngineSettings, parse, rule_scan
from detection.sources.sql.rows import Figures

if TYPE_CHECKING:
    from detection.store import Store


@dataclass
class BackfillResult:
    source: str
    since: datetime
    until: datetime
    calls: int = 0  # matching calls new to the store
    accounts: list[str] = field(default_factory=list)
    bad: int = 0
    figures: Figures | None = None
    error: str | None = None  # the query's one-line failure: nothing was stored

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        if self.error:
            return f"backfill from {self.source}: FAILED: {self.error}"
        figures = f" ({self.figures.line(self.source)})" if self.figures else ""
        return (f"backfill from {self.source} {self.since:%Y-%m-%d %H:%M} → {self.until:%Y-%m-%d %H:%M}Z: "
                f"{self.calls} matching calls learned in {len(self.accounts)} accounts, {self.bad} bad rows "
                f"skipped{figures}")


def backfill(url: str, store: Store, tuning: Tuning, since: datetime, until: datetime,
             settings: EngineSettings, identity_mode: str = "principal", accounts: Iterable[str] = (),
             athena_table: str | None = None, lake_store: str | None = None) -> BackfillResult:
    """Learn [since, until) of matching history from the engine at `url` into `store`; alerts none."""
    source = parse(url, athena_table, lake_store)
    result = BackfillResult(source.url, since, until)
    scanned = rule_scan(source, since, until, settings, identity_mode)
    result.figures, result.bad = scanned.figures, len(scanned.bad)
    if scanned.error:
        result.error = scanned.error
        return result
    seen = {call.account_id for call in scanned.calls} | {s.account_id for s in scanned.sightings}
    result.accounts = sorted(seen | set(accounts))
    for account in result.accounts:
        store.set_observed_since(account, since)
    _, fresh = detect(scanned.calls, tuning, store, learn_only=True, sightings=scanned.sightings)
    result.calls = len(fresh)
    return result
