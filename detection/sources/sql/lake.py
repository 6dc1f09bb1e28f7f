"""CloudTrail Lake's protocol: StartQuery, DescribeQuery until the query is done, GetQueryResults page by page
(boto3 `cloudtrail`; AWS_ENDPOINT_URL_CLOUDTRAIL applies).

- Lake takes no parameters: the SQL text holds the checked literals (`values`).
- States QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, TIMED_OUT. While it runs, QueryStatistics.BytesScanned is
  compared with SESGUARD_SQL_MAX_GB (Lake bills by bytes scanned); past it, or past the deadline, CancelQuery and
  a clear failure.
- Results: pages of at most 1,000 rows (MaxQueryResults) following NextToken; a row is a list of one-entry maps
  `{column: text}`; a column missing from a row is NULL.
"""

from __future__ import annotations

from collections.abc import Iterator

from botocore.exceptions import BotoCoreError, ClientError

from detection.sources.pulled import describe_aws_error
from detection.sources.sql.query import Query
from detection.sources.sql.rows import Figures
from detection.sources.sql.running import Limits, QueryFailed, Waits

DONE = "FINISHED"
ENDED = ("FAILED", "CANCELLED", "TIMED_OUT")
ENGINE = "lake"


def lake_client():
    import boto3

    return boto3.client("cloudtrail")


def _call(what: str, call, **arguments):
    try:
        return call(**arguments)
    except (ClientError, BotoCoreError) as exc:
        raise QueryFailed(f"lake {what} failed: {describe_aws_error(exc)}") from exc


def run(query: Query, limits: Limits, figures: Figures, client=None) -> Iterator[dict]:
    client = client or _call("client set-up", lake_client)
    answer = _call("StartQuery", client.start_query, QueryStatement=query.text)
    query_id = answer.get("QueryId")
    if not isinstance(query_id, str) or not query_id:
        raise QueryFailed("lake StartQuery answered without a QueryId")
    figures.query_id = query_id
    _wait(client, query_id, limits, figures)
    if limits.over(figures.bytes_scanned):
        raise limits.too_much(ENGINE, query_id, figures.bytes_scanned)
    yield from _results(client, query_id, limits, figures)


def _cancel(client, query_id: str) -> None:
    try:
        client.cancel_query(QueryId=query_id)
    except (ClientError, BotoCoreError):
        pass


def _wait(client, query_id: str, limits: Limits, figures: Figures) -> None:
    waits = Waits(limits)
    while True:
        answer = _call("DescribeQuery", client.describe_query, QueryId=query_id)
        statistics = answer.get("QueryStatistics") or {}
        if isinstance(statistics.get("BytesScanned"), int):
            figures.bytes_scanned = statistics["BytesScanned"]
        if isinstance(statistics.get("EventsScanned"), int):
            figures.events_scanned = statistics["EventsScanned"]
        if isinstance(statistics.get("ExecutionTimeInMillis"), int):
            figures.engine_millis = statistics["ExecutionTimeInMillis"]
        state = answer.get("QueryStatus")
        if state == DONE:
            return
        if state in ENDED:
            reason = str(answer.get("ErrorMessage") or "")[:300] or "no reason given"
            raise QueryFailed(f"lake query {query_id} {state}: {reason}")
        if limits.over(figures.bytes_scanned):
            _cancel(client, query_id)
            raise limits.too_much(ENGINE, query_id, figures.bytes_scanned)
        if waits.expired():
            _cancel(client, query_id)
            raise QueryFailed(f"lake query {query_id} stopped: still {state} after {limits.deadline_seconds:g} s")
        must_stop = waits.wait()
        if must_stop:
            _cancel(client, query_id)
            raise QueryFailed(f"lake query {query_id} stopped: {must_stop}")


def _results(client, query_id: str, limits: Limits, figures: Figures) -> Iterator[dict]:
    token = None
    while True:
        arguments = {"QueryId": query_id, "MaxQueryResults": limits.page_size}
        if token:
            arguments["NextToken"] = token
        page = _call("GetQueryResults", client.get_query_results, **arguments)
        figures.pages += 1
        for row in page.get("QueryResultRows") or []:
            figures.rows += 1
            merged: dict = {}
            for cell in row if isinstance(row, list) else []:
                if isinstance(cell, dict):
                    merged.update(cell)
            yield merged
        token = page.get("NextToken")
        if not token:
            return
        if limits.stop.is_set():
            raise QueryFailed(f"lake query {query_id}: reading its results stopped: the process is stopping")
