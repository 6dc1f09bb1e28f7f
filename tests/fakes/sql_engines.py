"""Local Amazon Athena and CloudTrail Lake endpoints over real HTTP, whose queries really run: over DuckDB tables
of the engines' shapes (`cloudtrail_tables`), the SQL transpiled by sqlglot.

boto3 reaches them through AWS_ENDPOINT_URL_ATHENA and AWS_ENDPOINT_URL_CLOUDTRAIL. They speak whatever protocols
botocore's models of `athena` and `cloudtrail` name (Athena: restJson1 since botocore 1.44, `POST
/query-executions`, `GET /query-executions/{QueryExecutionId}/results`, …), and awsJson1.1 as well (Athena under
its former `AmazonAthena` target prefix): `aws_protocol.Router` reads the request and writes the answer in the
protocol it came in, so the handlers below see params and return outputs in one form. The two services share
an operation name (GetQueryResults): a request is Lake's or Athena's by its target prefix, its path, or the
service its signature is scoped to. Every request must be SigV4-signed for its service. The rules kept, as AWS
documents them:

Athena — StartQueryExecution needs a QueryString (at most 262,144 bytes), a known WorkGroup (`primary` exists)
and an output location (the request's, or the workgroup's); ClientRequestToken (32 to 128 characters) makes
it idempotent; ExecutionParameters fill the `?` in order, each one a literal (a count that does not match fails
the query). GetQueryExecution shows QUEUED, then RUNNING (`running_looks` looks, DataScannedInBytes growing),
then SUCCEEDED — or FAILED (with StateChangeReason and AthenaError) or CANCELLED after StopQueryExecution.
DataScannedInBytes: the JSON size of the rows in the `timestamp` partitions the query's BETWEEN names (all
rows without one: a full scan). GetQueryResults answers only a SUCCEEDED query; MaxResults 1 to 1000; the
first page's first row repeats the column names; a NULL is a datum without VarCharValue; NextToken pages.

Lake — StartQuery takes a SELECT whose FROM names a known event data store ID (else
EventDataStoreNotFoundException) and that parses (else InvalidQueryStatementException); DescribeQuery shows
QUEUED, RUNNING, then FINISHED (or FAILED, CANCELLED after CancelQuery, TIMED_OUT) with QueryStatistics
(EventsMatched, EventsScanned, BytesScanned, ExecutionTimeInMillis); GetQueryResults: MaxQueryResults 1 to
1000, rows as lists of one-entry maps of text, NULL columns left out, NextToken pages.

Scripted outcomes for the next queries (`script`): fail with a reason, time out, scan a given number of bytes,
stay running for a number of looks. Every request is recorded (`requests`: `aws_protocol.Call`s, each with its
service, operation, params and protocol; `bodies(action)` the params of one operation's).
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import sqlglot
from sqlglot import exp

from tests.fakes import cloudtrail_tables as tables
from tests.fakes.aws_protocol import AwsError, Call, HttpAnswer, HttpRequest, Router, Server, Service

_AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/[^/]+/(?P<service>[^/]+)/aws4_request, ?"
                            r"SignedHeaders=[^,]+, ?Signature=[0-9a-f]{64}$")
MAX_QUERY_BYTES = 262_144
MAX_PAGE = 1000


@dataclass
class Outcome:
    """How one query should go (the next one started takes the first queued)."""

    running_looks: int = 1
    fail: str | None = None  # Athena: FAILED with this reason; Lake: FAILED
    timed_out: bool = False  # Lake: TIMED_OUT
    cancelled: bool = False  # cancelled by someone else (the console, another process)
    bytes_scanned: int | None = None  # instead of the measured size


@dataclass
class Execution:
    query_id: str
    engine: str
    statement: str
    parameters: list[str]
    outcome: Outcome
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    error: str | None = None
    bytes_scanned: int = 0
    events_scanned: int = 0
    looks: int = 0
    state: str = "QUEUED"
    workgroup: str = "primary"
    output: str | None = None


ServiceError = AwsError  # an answer the engines give as an error (code, message, status)

# Athena's awsJson1.1 target prefix from before botocore 1.44, whose model no longer names one.
ATHENA_LEGACY_TARGET_PREFIX = "AmazonAthena"
# The handlers' prefix for each botocore service served here: `_athena_…` and `_lake_…`.
ENGINES = {"athena": "athena", "cloudtrail": "lake"}


def substitute(sql: str, parameters: list[str]) -> str:
    """Each `?` outside quotes replaced by the next parameter, as Athena binds execution parameters."""
    out, values, i = [], iter(parameters), 0
    count = 0
    while i < len(sql):
        char = sql[i]
        if char in "'\"":
            end = i + 1
            while end < len(sql):
                if sql[end] == char:
                    if end + 1 < len(sql) and sql[end + 1] == char:  # a doubled quote inside
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i:end + 1])
            i = end + 1
            continue
        if char == "?":
            count += 1
            try:
                parameter = next(values)
            except StopIteration:
                raise ServiceError("INVALID_PARAMETER_USAGE",
                                   "fewer execution parameters than ? in the query") from None
            tables.parameter_value(parameter)  # a single literal, or the query fails
            out.append(parameter)
        else:
            out.append(char)
        i += 1
    if count != len(parameters):
        raise ServiceError("INVALID_PARAMETER_USAGE", f"{len(parameters)} execution parameters for {count} ?")
    return "".join(out)


class SqlEngines:
    """Both stand-ins on one server; `endpoint` is its URL."""

    def __init__(self) -> None:
        self.duck = duckdb.connect()
        self.lock = threading.Lock()
        self.workgroups: dict[str, str | None] = {"primary": None}  # name → its enforced output location
        self.executions: dict[str, Execution] = {}
        self.tokens: dict[str, str] = {}  # ClientRequestToken → query ID
        self.stores: set[str] = set()
        self.athena_tables: set[str] = set()
        self.script: deque[Outcome] = deque()
        self.requests: list[Call] = []
        self.router = Router(Service("athena", legacy_target_prefix=ATHENA_LEGACY_TARGET_PREFIX),
                             Service("cloudtrail"))
        self._server: Server | None = None
        self._endpoint = ""

    # ── set-up ───────────────────────────────────────────────────────────────────────────────────────

    def load_athena(self, table: str, records: list[dict], late: dict[int, int] | None = None) -> None:
        late = late or {}
        with self.lock:
            tables.athena_table(self.duck, table, [(rec, tables.delivery_day(rec, late.get(i, 0)))
                                                   for i, rec in enumerate(records)])
            self.athena_tables.add(table)

    def load_lake(self, store: str, records: list[dict]) -> None:
        with self.lock:
            tables.lake_table(self.duck, store, records)
            self.stores.add(store)

    def start(self) -> str:
        self._server = Server(self.handle)
        self._endpoint = self._server.start()
        return self.endpoint

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def bodies(self, action: str, service: str | None = None) -> list[dict]:
        """The params of the requests of one operation (`StartQueryExecution`, `GetQueryResults`, …), in order,
        whatever protocol carried them; of one botocore service (`athena`, `cloudtrail`) if named."""
        return [call.params for call in self.requests
                if call.operation == action and service in (None, call.service)]

    # ── the protocol ─────────────────────────────────────────────────────────────────────────────────

    def handle(self, request: HttpRequest) -> HttpAnswer:
        call = self.router.route(request)
        with self.lock:
            self.requests.append(call)
        if call.refusal is not None:
            return self.router.error(call, call.refusal)
        signed = _AUTHORIZATION.match(request.headers.get("Authorization", ""))
        if not signed or signed["service"] != self.router.service(call.service).signing_name:
            return self.router.error(call, ServiceError("MissingAuthenticationTokenException", "request not signed",
                                                        403))
        handler = getattr(self, f"_{ENGINES[call.service]}_{_snake(call.operation)}", None)
        if handler is None:
            return self.router.error(call, ServiceError("UnknownOperationException", f"{call.operation} is not "
                                                                                     "served here"))
        try:
            with self.lock:
                return self.router.answer(call, handler(call.params))
        except ServiceError as exc:
            return self.router.error(call, exc)

    def _next_outcome(self) -> Outcome:
        return self.script.popleft() if self.script else Outcome()

    # Athena

    def _athena_start_query_execution(self, body: dict) -> dict:
        statement = body.get("QueryString")
        if not isinstance(statement, str) or not 1 <= len(statement.encode()) <= MAX_QUERY_BYTES:
            raise ServiceError("InvalidRequestException", "QueryString must be 1 to 262144 bytes")
        token = body.get("ClientRequestToken")
        if token is not None and not (isinstance(token, str) and 32 <= len(token) <= 128):
            raise ServiceError("InvalidRequestException", "ClientRequestToken must be 32 to 128 characters")
        if token in self.tokens:
            return {"QueryExecutionId": self.tokens[token]}
        workgroup = body.get("WorkGroup") or "primary"
        if workgroup not in self.workgroups:
            raise ServiceError("InvalidRequestException", f"WorkGroup {workgroup} is not found.")
        output = self.workgroups[workgroup] or (body.get("ResultConfiguration") or {}).get("OutputLocation")
        if not output:
            raise ServiceError("InvalidRequestException", "No output location provided. An output location is "
                                                          "required either through the Workgroup result "
                                                          "configuration setting or as an API input.")
        parameters = body.get("ExecutionParameters")
        if parameters is not None and (not isinstance(parameters, list) or not parameters
                                       or not all(isinstance(p, str) and 1 <= len(p) <= 1024 for p in parameters)):
            raise ServiceError("InvalidRequestException", "ExecutionParameters: 1 or more strings of 1 to 1024")
        execution = Execution(str(uuid.uuid4()), "athena", statement, parameters or [], self._next_outcome(),
                              workgroup=workgroup, output=output)
        self._run_athena(execution)
        self.executions[execution.query_id] = execution
        if token is not None:
            self.tokens[token] = execution.query_id
        return {"QueryExecutionId": execution.query_id}

    def _run_athena(self, execution: Execution) -> None:
        try:
            written = substitute(execution.statement, execution.parameters)
            tree = sqlglot.parse_one(written, read="trino")
            cursor = self.duck.execute(tree.sql("duckdb"))
            execution.columns = [column[0] for column in cursor.description]
            execution.rows = cursor.fetchall()
            execution.bytes_scanned = self._athena_bytes(tree)
        except (ServiceError, tables.BadParameter) as exc:
            execution.error = f"INVALID_PARAMETER_USAGE: {exc}"
        except (sqlglot.errors.SqlglotError, duckdb.Error) as exc:
            execution.error = f"SYNTAX_ERROR: {str(exc).splitlines()[0][:200]}"

    def _athena_bytes(self, tree: exp.Expression) -> int:
        table = next(tree.find_all(exp.Table))
        name = f'"{table.db}"."{table.name}"' if table.db else f'"{table.name}"'
        where = ""
        for between in tree.find_all(exp.Between):
            if isinstance(between.this, exp.Column) and between.this.name == "timestamp":
                low, high = between.args["low"], between.args["high"]
                where = f' WHERE "timestamp" BETWEEN {low.sql("duckdb")} AND {high.sql("duckdb")}'
        return int(self.duck.execute(f"SELECT coalesce(sum(strlen(to_json(t)::VARCHAR)), 0) FROM {name} AS t"
                                     f"{where}").fetchone()[0])

    def _athena_execution(self, body: dict) -> Execution:
        execution = self.executions.get(body.get("QueryExecutionId"))
        if execution is None or execution.engine != "athena":
            raise ServiceError("InvalidRequestException", "QueryExecution was not found")
        return execution

    def _athena_get_query_execution(self, body: dict) -> dict:
        execution = self._athena_execution(body)
        _advance(execution)
        status: dict = {"State": execution.state}
        if execution.state == "FAILED":
            reason = execution.outcome.fail or execution.error
            status["StateChangeReason"] = reason
            status["AthenaError"] = {"ErrorCategory": 2, "ErrorType": 1000, "ErrorMessage": reason}
        if execution.state == "CANCELLED" and execution.outcome.cancelled:
            status["StateChangeReason"] = "Query cancelled by user"
        scanned = _scanned(execution)
        return {"QueryExecution": {
            "QueryExecutionId": execution.query_id, "Query": execution.statement, "StatementType": "DML",
            "WorkGroup": execution.workgroup, "ResultConfiguration": {"OutputLocation": execution.output},
            "ExecutionParameters": execution.parameters or None, "Status": status,
            "Statistics": {"DataScannedInBytes": scanned, "EngineExecutionTimeInMillis": 120 * execution.looks,
                           "TotalExecutionTimeInMillis": 150 * execution.looks, "QueryQueueTimeInMillis": 30},
        }}

    def _athena_stop_query_execution(self, body: dict) -> dict:
        execution = self._athena_execution(body)
        if execution.state in ("QUEUED", "RUNNING"):
            execution.state = "CANCELLED"
        return {}

    def _athena_get_query_results(self, body: dict) -> dict:
        execution = self._athena_execution(body)
        if execution.state != "SUCCEEDED":
            raise ServiceError("InvalidRequestException",
                               f"Query has not yet finished. Current state: {execution.state}")
        size = _page_size(body.get("MaxResults"), "MaxResults")
        offset = _offset(body.get("NextToken"), execution)
        header = [{"Data": [{"VarCharValue": name} for name in execution.columns]}] if offset == 0 else []
        room = size - len(header)
        chosen = execution.rows[offset:offset + room]
        rows = header + [{"Data": [_athena_datum(value) for value in row]} for row in chosen]
        answer = {"ResultSet": {"Rows": rows, "ResultSetMetadata": {"ColumnInfo": [
            {"Name": name, "Label": name, "Type": "varchar", "CatalogName": "hive"} for name in execution.columns]}},
            "UpdateCount": 0}
        if offset + room < len(execution.rows):
            answer["NextToken"] = _token(execution, offset + room)
        return answer

    # Lake

    def _lake_start_query(self, body: dict) -> dict:
        statement = body.get("QueryStatement")
        if not isinstance(statement, str) or not statement.strip():
            raise ServiceError("InvalidParameterException", "QueryStatement is required")
        found = re.search(r"\bFROM\s+([A-Za-z0-9-]+)", statement, re.IGNORECASE)
        if not found or found[1] not in self.stores:
            raise ServiceError("EventDataStoreNotFoundException", "The specified event data store was not found.")
        execution = Execution(str(uuid.uuid4()), "lake", statement, [], self._next_outcome())
        try:
            tree = sqlglot.parse_one(tables.lake_sql_for_duckdb(statement, self.stores), read="trino")
            if not isinstance(tree, exp.Select):
                raise ServiceError("InvalidQueryStatementException", "Only SELECT statements are allowed.")
            cursor = self.duck.execute(tree.sql("duckdb"))
        except (sqlglot.errors.SqlglotError, duckdb.Error) as exc:
            raise ServiceError("InvalidQueryStatementException", str(exc).splitlines()[0][:200]) from None
        execution.columns = [column[0] for column in cursor.description]
        execution.rows = cursor.fetchall()
        store = f'"{found[1]}"'
        execution.events_scanned = int(self.duck.execute(f"SELECT count(*) FROM {store}").fetchone()[0])
        execution.bytes_scanned = int(self.duck.execute(
            f"SELECT coalesce(sum(strlen(to_json(t)::VARCHAR)), 0) FROM {store} AS t").fetchone()[0])
        self.executions[execution.query_id] = execution
        return {"QueryId": execution.query_id}

    def _lake_execution(self, body: dict) -> Execution:
        execution = self.executions.get(body.get("QueryId"))
        if execution is None or execution.engine != "lake":
            raise ServiceError("QueryIdNotFoundException", "The query ID does not exist or does not map to a query.")
        return execution

    def _lake_describe_query(self, body: dict) -> dict:
        execution = self._lake_execution(body)
        _advance(execution, done="FINISHED")
        answer = {"QueryId": execution.query_id, "QueryString": execution.statement, "QueryStatus": execution.state,
                  "QueryStatistics": {"EventsMatched": len(execution.rows), "EventsScanned": execution.events_scanned,
                                      "BytesScanned": _scanned(execution),
                                      "ExecutionTimeInMillis": 200 * execution.looks,
                                      "CreationTime": datetime.now().timestamp()}}
        if execution.state in ("FAILED", "TIMED_OUT"):
            answer["ErrorMessage"] = execution.outcome.fail or "Query timed out"
        return answer

    def _lake_cancel_query(self, body: dict) -> dict:
        execution = self._lake_execution(body)
        if execution.state not in ("QUEUED", "RUNNING"):
            raise ServiceError("InactiveQueryException", "The specified query cannot be canceled because it is in "
                                                         f"the {execution.state} state.")
        execution.state = "CANCELLED"
        return {"QueryId": execution.query_id, "QueryStatus": "CANCELLED"}

    def _lake_get_query_results(self, body: dict) -> dict:
        execution = self._lake_execution(body)
        if execution.state != "FINISHED":
            raise ServiceError("InactiveQueryException", f"The query is in the {execution.state} state.")
        size = _page_size(body.get("MaxQueryResults"), "MaxQueryResults")
        offset = _offset(body.get("NextToken"), execution)
        chosen = execution.rows[offset:offset + size]
        rows = [[{name: _text(value)} for name, value in zip(execution.columns, row) if value is not None]
                for row in chosen]
        answer = {"QueryStatus": "FINISHED", "QueryResultRows": rows,
                  "QueryStatistics": {"ResultsCount": len(rows), "TotalResultsCount": len(execution.rows),
                                      "BytesScanned": execution.bytes_scanned}}
        if offset + size < len(execution.rows):
            answer["NextToken"] = _token(execution, offset + size)
        return answer


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _advance(execution: Execution, done: str = "SUCCEEDED") -> None:
    """One look moves a query on: QUEUED, RUNNING for `running_looks` looks, then its end."""
    if execution.state in ("SUCCEEDED", "FINISHED", "FAILED", "CANCELLED", "TIMED_OUT"):
        return
    execution.looks += 1
    if execution.looks == 1:
        execution.state = "QUEUED"
    elif execution.looks <= 1 + execution.outcome.running_looks:
        execution.state = "RUNNING"
    elif execution.outcome.cancelled:
        execution.state = "CANCELLED"
    elif execution.outcome.timed_out:
        execution.state = "TIMED_OUT"
    elif execution.outcome.fail or execution.error:
        execution.state = "FAILED"
    else:
        execution.state = done


def _scanned(execution: Execution) -> int:
    total = execution.outcome.bytes_scanned if execution.outcome.bytes_scanned is not None else execution.bytes_scanned
    if execution.state == "QUEUED":
        return 0
    if execution.state == "RUNNING":
        return total * (execution.looks - 1) // (execution.outcome.running_looks + 1)
    return total


def _page_size(value, name: str) -> int:
    if value is None:
        return MAX_PAGE
    if not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise ServiceError("InvalidRequestException", f"{name} must be 1 to {MAX_PAGE}")
    return value


def _token(execution: Execution, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{execution.query_id}:{offset}".encode()).decode()


def _offset(token, execution: Execution) -> int:
    if token is None:
        return 0
    try:
        query_id, _, offset = base64.urlsafe_b64decode(token.encode()).decode().rpartition(":")
        if query_id == execution.query_id:
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise ServiceError("InvalidRequestException", "NextToken is not valid for this query")


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return str(value)


def _athena_datum(value) -> dict:
    return {} if value is None else {"VarCharValue": _text(value)}
