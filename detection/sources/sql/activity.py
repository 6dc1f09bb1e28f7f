"""§6's investigations on a SQL engine: an identity's or access key's other activity in every event source and
every region of its account, in one query, instead of LookupEvents region by region (SPEC §6, §9).

Same interface as `detection.sources.activity.ActivityReader` (`investigate`, `read`), so the Slack app, the
worker and `sesguard investigate` use either. The query asks for the records made with one of the subject's keys
or by the identity itself (its ARN, or its role's ARN as session issuer), newest first, at most `max_rows`; the
rows are rebuilt into records and summarised by `detection.investigate.summarise`, which keeps only the subject's
own records (`belongs`), exactly as for LookupEvents. A refused value (an ARN or key of an unexpected shape) or a
failed query is a problem of the reading, said in the summary.
"""

from __future__ import annotations

from collections.abc import Iterable

from detection.investigate import Reading, Subject, Summary, Window, summarise
from detection.record import BadRecord, parse_time
from detection.sources.activity import Gathered
from detection.sources.sql import athena, lake, query, values
from detection.sources.sql.engine import EngineInput, EngineSettings
from detection.sources.sql.rows import Figures, to_record
from detection.sources.sql.running import QueryFailed


class EngineActivityReader:
    def __init__(self, source: EngineInput, settings: EngineSettings, max_rows: int):
        self.source, self.settings, self.max_rows = source, settings, max_rows
        self.figures: Figures | None = None  # the last query's

    def address(self, address: str, window: Window) -> Summary:
        """An IP address's whole traffic in the window, whoever called, every account and region."""
        return self.investigate(Subject(address, None, None, source_ip=address), window)

    def investigate(self, subject: Subject, window: Window, regions: Iterable[str] = (), between=None) -> Summary:
        gathered = self.read(subject, window, regions, between)
        return summarise(gathered.records, subject, window, gathered.reading)

    def read(self, subject: Subject, window: Window, regions: Iterable[str] = (), between=None) -> Gathered:
        """Every region is read whatever `regions` says: the table holds them all."""
        gathered = Gathered(reading=Reading(page_cap=None))
        arns = [subject.identity] if subject.identity and subject.identity.startswith("arn:") else []
        keys = list(subject.access_keys)
        ips = [subject.source_ip] if subject.source_ip is not None else []
        try:
            sql = query.activity_query(self.source.engine, self.source.name, window.start, window.end, arns, keys,
                                       subject.account_id, self.max_rows, ips)
        except values.UnsafeValue as exc:
            gathered.reading.problems.append(f"{self.source.url}: {exc}")
            return gathered
        self.figures = figures = Figures(self.source.engine)
        asked = [*keys, *arns, *(f"source address {ip}" for ip in ips)]
        gathered.reading.lookups.append(f"{self.source.url}: {', '.join(asked)}, every region")
        try:
            if self.source.engine == "athena":
                rows = athena.run(sql, self.settings.athena_workgroup, self.settings.athena_output,
                                  self.settings.limits, figures)
            else:
                rows = lake.run(sql, self.settings.limits, figures)
            for row in rows:
                record = to_record(row)
                if row.get("read_only") is not None:
                    record["readOnly"] = row["read_only"]
                gathered.records.append(record)
        except QueryFailed as exc:
            gathered.reading.problems.append(str(exc))
        gathered.reading.pages = figures.pages
        if figures.rows >= self.max_rows:  # newest first: complete back to the oldest row it reached
            gathered.reading.capped = True
            gathered.reading.complete_since = min(_times(gathered.records), default=window.end)
        return gathered


def _times(records: list[dict]):
    for record in records:
        try:
            yield parse_time(record.get("eventTime"))
        except BadRecord:
            continue
