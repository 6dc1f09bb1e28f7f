"""Amazon Athena's protocol: StartQueryExecution, GetQueryExecution until the query is done, GetQueryResults page
by page. boto3 `athena` directly: PyAthena would add a DB-API layer and its own polling, and hide the execution's
statistics that the bytes-scanned limit needs on every look.

- The SQL text carries only `?`; the values go as ExecutionParameters (each a literal, `values`).
- A workgroup (SESGUARD_ATHENA_WORKGROUP, default `primary`) and, unless the workgroup enforces its own, an
  output location (SESGUARD_ATHENA_OUTPUT, `s3://…/`) where Athena writes the result file.
- States QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED. While it runs, Statistics.DataScannedInBytes is
  compared with SESGUARD_SQL_MAX_GB; past it, or past the deadline, StopQueryExecution and a clear failure.
  (The workgroup's own BytesScannedCutoffPerQuery is the hard stop on AWS's side: set it too, docs/sql-engines.md.)
- Results: pages of at most 1,000 rows following NextToken; the first row of the first page repeats the
  column names; a NULL is a datum without VarCharValue.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from detection.sources.pulled import describe_aws_error
from detection.sources.sql.query import Query
from detection.sources.sql.rows import Figures
from detection.sources.sql.running import Limits, QueryFailed, Waits

DONE, FAILED, CANCELLED = "SUCCEEDED", "FAILED", "CANCELLED"
ENGINE = "athena"


def athena_client():
    import boto3  # AWS_ENDPOINT_URL_ATHENA and the standard credential chain apply

    return boto3.client("athena")


def run(query: Query, workgroup: str, output: str | None, limits: Limits, figures: Figures,
        client=None) -> Iterator[dict]:
    """The rows of a query as dicts (column name → text or None); `figures` filled as it goes.
    QueryFailed for every way it can fail."""
    client = client or _call("client set-up", athena_client)
    query_id = _start(client, query, workgroup, output)
    figures.query_id = query_id
    _wait(client, query_id, limits, figures)
    if limits.over(figures.bytes_scanned):  # finished between two looks, past the limit
        raise limits.too_much(ENGINE, query_id, figures.bytes_scanned)
    yield from _results(client, query_id, limits, figures)


def _call(what: str, call, **arguments):
    try:
        return call(**arguments)
    except (ClientError, BotoCoreError) as exc:
        raise QueryFailed(f"athena {what} failed: {describe_aws_error(exc)}") from exc


def _start(client, query: Query, workgroup: str, output: str | None) -> str:
    arguments: dict[str, Any] = {"QueryString": query.text, "WorkGroup": workgroup,
                                 "ClientRequestToken": str(uuid.uuid4())}
    if query.parameters:
        arguments["ExecutionParameters"] = list(query.parameters)
    if output:
        arguments["ResultConfiguration"] = {"OutputLocation": output}
    answer = _call("StartQueryExecution", client.start_query_execution, **arguments)
    query_id = answer.get("QueryExecutionId")
    if not isinstance(query_id, str) or not query_id:
        raise QueryFailed("athena StartQueryExecution answered without a QueryExecutionId")
    return query_id


def _stop(client, query_id: str) -> None:
    try:
        client.stop_query_execution(QueryExecutionId=query_id)
    except (ClientError, BotoCoreError):
        pass  # the failure being reported matters more; Athena's own time-out ends it anyway


def _wait(client, query_id: str, limits: Limits, figures: Figures) -> dict:
    waits = Waits(limits)
    while True:
        answer = _call("GetQueryExecution", client.get_query_execution, QueryExecutionId=query_id)
        execution = answer.get("QueryExecution") or {}
        _read_statistics(execution, figures)
        status = execution.get("Status") or {}
        state = status.get("State")
        if state == DONE:
            return execution
        if state in (FAILED, CANCELLED):
            reason = (status.get("AthenaError") or {}).get("ErrorMessage") or status.get("StateChangeReason") or ""
            raise QueryFailed(f"athena query {query_id} {state}: {str(reason)[:300] or 'no reason given'}")
        if limits.over(figures.bytes_scanned):
            _stop(client, query_id)
            raise limits.too_much(ENGINE, query_id, figures.bytes_scanned)
        if waits.expired():
            _stop(client, query_id)
            raise QueryFailed(f"athena query {query_id} stopped: still {state} after "
                              f"{limits.deadline_seconds:g} s")
        reason = waits.wait()
        if reason:
            _stop(client, query_id)
            raise QueryFailed(f"athena query {query_id} stopped: {reason}")


def _read_statistics(execution: dict, figures: Figures) -> None:
    statistics = execution.get("Statistics") or {}
    figures.bytes_scanned = _number(statistics.get("DataScannedInBytes"), figures.bytes_scanned)
    figures.engine_millis = _number(statistics.get("EngineExecutionTimeInMillis"), figures.engine_millis)
    figures.total_millis = _number(statistics.get("TotalExecutionTimeInMillis"), figures.total_millis)


def _number(value, default):
    return value if isinstance(value, int) and value >= 0 else default


def _results(client, query_id: str, limits: Limits, figures: Figures) -> Iterator[dict]:
    token = None
    names: list[str] | None = None
    while True:
        arguments = {"QueryExecutionId": query_id, "MaxResults": limits.page_size}
        if token:
            arguments["NextToken"] = token
        page = _call("GetQueryResults", client.get_query_results, **arguments)
        figures.pages += 1
        result = page.get("ResultSet") or {}
        rows = result.get("Rows") or []
        if names is None:
            names = [column.get("Name") for column in (result.get("ResultSetMetadata") or {}).get("ColumnInfo", [])]
            if rows and [datum.get("VarCharValue") for datum in rows[0].get("Data", [])] == names:
                rows = rows[1:]  # the header row
        for row in rows:
            data = row.get("Data") or []
            figures.rows += 1
            yield {name: datum.get("VarCharValue") for name, datum in zip(names, data)}
        token = page.get("NextToken")
        if not token:
            return
        if limits.stop.is_set():
            raise QueryFailed(f"athena query {query_id}: reading its results stopped: the process is stopping")
