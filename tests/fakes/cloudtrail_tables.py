"""CloudTrail records loaded into DuckDB tables shaped as the engines hold them, and SQL run over them.

- `athena_table`: AWS's standard CloudTrail table for Athena (the partition projection DDL): lower-case
  columns, `useridentity` a struct, `requestparameters` and the other payloads JSON strings, every scalar a
  string, and the projected partition column `timestamp` (`yyyy/MM/dd`, the day the log file was
  delivered). A record's values become columns as the Hive JSON SerDe reads them: field names matched
  without regard to case, a JSON string as its text, any other scalar as its JSON text, an object or
  array in a string column as its JSON text, a non-object where a struct is expected as NULL.
- `lake_table`: a CloudTrail Lake event data store: `eventTime` a timestamp (Lake ingests no record
  without a valid one), `requestParameters` a map of strings (nested values as JSON text).
- `run_trino`: Trino/Presto SQL (as Athena and Lake take it) transpiled by sqlglot to DuckDB and run, with
  Athena-style execution parameters: each one a single SQL literal, bound to its `?` in order.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from datetime import UTC
from typing import Any

import duckdb
import orjson
import sqlglot
from sqlglot import exp

from detection.record import BadRecord, parse_time

_SESSION_ISSUER = ("type", "principalid", "arn", "accountid", "username")
_IDENTITY = ("type", "principalid", "arn", "accountid", "invokedby", "accesskeyid", "username")
_STRINGS = ("eventversion", "eventtime", "eventsource", "eventname", "awsregion", "sourceipaddress",
            "useragent", "errorcode", "errormessage", "requestparameters", "responseelements",
            "additionaleventdata", "requestid", "eventid", "readonly", "eventtype", "apiversion",
            "recipientaccountid", "sessioncredentialfromconsole")

_ISSUER_TYPE = "STRUCT(" + ", ".join(f"{name} VARCHAR" for name in _SESSION_ISSUER) + ")"
_IDENTITY_TYPE = ("STRUCT(" + ", ".join(f"{name} VARCHAR" for name in _IDENTITY)
                  + ", sessioncontext STRUCT(attributes STRUCT(mfaauthenticated VARCHAR, creationdate VARCHAR), "
                  + f"sessionissuer {_ISSUER_TYPE}))")
ATHENA_DDL = ("CREATE TABLE {table} (useridentity " + _IDENTITY_TYPE + ", "
              + ", ".join(f"{name} VARCHAR" for name in _STRINGS) + ', "timestamp" VARCHAR)')
LAKE_STRINGS = [name for name in _STRINGS if name not in ("eventtime", "requestparameters")]
LAKE_DDL = ("CREATE TABLE {table} (useridentity " + _IDENTITY_TYPE + ", eventtime TIMESTAMP, "
            "requestparameters MAP(VARCHAR, VARCHAR), " + ", ".join(f"{name} VARCHAR" for name in LAKE_STRINGS) + ")")


def _lower_keys(value: Any) -> dict:
    """An object's fields by lower-cased name (the SerDe's matching); the first of two equal names wins."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.setdefault(str(key).lower(), item)
    return out


def hive_string(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _struct(value: Any, names: tuple[str, ...]) -> dict | None:
    if not isinstance(value, dict):
        return None
    fields = _lower_keys(value)
    return {name: hive_string(fields.get(name)) for name in names}


def identity_struct(value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    fields = _lower_keys(value)
    identity = {name: hive_string(fields.get(name)) for name in _IDENTITY}
    context = _lower_keys(fields.get("sessioncontext")) if isinstance(fields.get("sessioncontext"), dict) else None
    identity["sessioncontext"] = None if context is None else {
        "attributes": _struct(context.get("attributes"), ("mfaauthenticated", "creationdate")),
        "sessionissuer": _struct(context.get("sessionissuer"), _SESSION_ISSUER),
    }
    return identity


def athena_row(record: dict, delivered: str) -> tuple:
    fields = _lower_keys(record)
    return (identity_struct(fields.get("useridentity")), *(hive_string(fields.get(name)) for name in _STRINGS),
            delivered)


def delivery_day(record: dict, late_days: int = 0) -> str:
    """The `timestamp` partition of the file a record was delivered in: its UTC day, `late_days` later."""
    from datetime import timedelta

    try:
        moment = parse_time(_lower_keys(record).get("eventtime"))
    except BadRecord:
        return "1970/01/01"
    return (moment + timedelta(days=late_days)).strftime("%Y/%m/%d")


def athena_table(connection: duckdb.DuckDBPyConnection, table: str, records: Iterable[tuple[dict, str]]) -> int:
    """(record, delivered partition) pairs into a standard CloudTrail table named `database.table`."""
    database, name = table.split(".")
    connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{database}"')
    connection.execute(ATHENA_DDL.format(table=f'"{database}"."{name}"'))
    rows = [athena_row(record, delivered) for record, delivered in records]
    _insert(connection, f'"{database}"."{name}"', ["useridentity", *_STRINGS, "timestamp"], rows)
    return len(rows)


def lake_row(record: dict) -> tuple | None:
    """A record as Lake holds it; None when Lake would not ingest it (no valid eventTime)."""
    fields = _lower_keys(record)
    try:
        moment = parse_time(fields.get("eventtime"))
    except BadRecord:
        return None
    parameters = fields.get("requestparameters")
    parameters = ({str(key): hive_string(item) for key, item in parameters.items()}
                  if isinstance(parameters, dict) else None)
    return (identity_struct(fields.get("useridentity")), moment.astimezone(UTC).replace(tzinfo=None),
            parameters, *(hive_string(fields.get(name)) for name in LAKE_STRINGS))


def lake_table(connection: duckdb.DuckDBPyConnection, table: str, records: Iterable[dict]) -> int:
    connection.execute(LAKE_DDL.format(table=f'"{table}"'))
    rows = [row for row in map(lake_row, records) if row is not None]
    _insert(connection, f'"{table}"', ["useridentity", "eventtime", "requestparameters", *LAKE_STRINGS], rows)
    return len(rows)


def _insert(connection: duckdb.DuckDBPyConnection, table: str, names: list[str], rows: list[tuple]) -> None:
    """Rows in through DuckDB's JSON reader (row-by-row inserts take a second per few hundred rows)."""
    if not rows:
        return
    types = dict(connection.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall())
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as lines:
        for row in rows:
            lines.write(orjson.dumps(dict(zip(names, row)), default=str) + b"\n")
        lines.flush()
        columns = "{" + ", ".join(f"'{name}': '{types[name]}'" for name in names) + "}"
        connection.execute(f"INSERT INTO {table} ({', '.join(chr(34) + n + chr(34) for n in names)}) "
                           f"SELECT * FROM read_json(?, columns = {columns}, format = 'newline_delimited')",
                           [lines.name])


class BadParameter(ValueError):
    """An execution parameter that is not one SQL literal."""


def parameter_value(parameter: str) -> Any:
    """An Athena execution parameter (`'text'`, `12`, …) as the value it stands for; only a single literal."""
    try:
        parsed = sqlglot.parse_one(parameter, read="trino")
    except sqlglot.errors.ParseError as exc:
        raise BadParameter(f"not a literal: {parameter[:40]!r}") from exc
    if isinstance(parsed, exp.Literal):
        return parsed.this if parsed.is_string else float(parsed.this) if "." in parsed.this else int(parsed.this)
    raise BadParameter(f"not a single literal: {parameter[:40]!r}")


def to_duckdb(sql: str) -> str:
    return sqlglot.transpile(sql, read="trino", write="duckdb")[0]


def run_trino(connection: duckdb.DuckDBPyConnection, sql: str,
              parameters: list[str] = ()) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of Trino SQL run in DuckDB."""
    duck = to_duckdb(sql)
    bound = [parameter_value(parameter) for parameter in parameters]
    if duck.count("?") != len(bound):
        raise BadParameter(f"{len(bound)} parameters for {duck.count('?')} placeholders")
    cursor = connection.execute(duck, bound)
    return [column[0] for column in cursor.description], cursor.fetchall()


def lake_sql_for_duckdb(sql: str, stores: Iterable[str]) -> str:
    """Lake names an event data store by its bare ID after FROM (hyphens and all); quoted here for the parser."""
    for store in stores:
        sql = re.sub(rf"\bFROM\s+{re.escape(store)}\b", f'FROM "{store}"', sql)
    return sql
