"""The rule of `detection.rule` as SQL: Athena's standard CloudTrail table, and a CloudTrail Lake event data store.

One scan of the table, pruned by its projected `timestamp` partition (`yyyy/MM/dd`, Athena) or by eventTime
(Lake), returns only rows the rule can match:
- the matching calls of callers that are not excluded, one row each, with the fields `rows` rebuilds the
  record from;
- for the excluded callers (AWS services, service-linked roles), one row per account: the first eventTime and
  the count. They never signal and are never learned; they only say since when an account was observed (SPEC
  §1), so their thousands of rows a day (Trusted Advisor's quota checks) need not travel.
Both come from one GROUP BY GROUPING SETS over the same scan: grouped by every column, a call is its own group
(two identical rows collapse, as the same record delivered twice does); grouped by account, the excluded ones
are one row.

What SQL cannot say exactly is said more widely, and the rows are passed through the Python rule again
(`rows`): the day of eventTime is compared as text, one day wider than asked on each side (a time written with
an offset, `2025-01-31T23:30:00-05:00`, is a day later in UTC), and the exact bounds are applied to the parsed
time. The partition (the day CloudTrail delivered the file) reaches one day further still: a file is written
minutes after its events, so an event's partition is its day or the next. The exclusion is written exactly as
`rule.is_excluded_caller` decides (checked by the equivalence tests); a row it lets through is one more row
for the Python rule, which excludes it there.

Every value is an execution parameter (`?`) in Athena's SQL text; Lake has none, and there the same checked
literal (`values.literal`) is written in. The organisation trail's table has `account` and `region`
partitions too: they need no filter, every account and region is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from detection import rule
from detection.sources.sql import values

# (alias, Athena expression, Lake expression). The aliases are what `rows` reads.
COLUMNS = (
    ("event_id", "eventid", "eventID"),
    ("event_time", "eventtime", "eventTime"),
    ("event_source", "eventsource", "eventSource"),
    ("event_name", "eventname", "eventName"),
    ("aws_region", "awsregion", "awsRegion"),
    ("source_ip", "sourceipaddress", "sourceIPAddress"),
    ("user_agent", "useragent", "userAgent"),
    ("error_code", "errorcode", "errorCode"),
    ("recipient_account", "recipientaccountid", "recipientAccountId"),
    ("from_console", "sessioncredentialfromconsole", "sessionCredentialFromConsole"),
    # requestParameters: a JSON string in the standard table, a map of strings in Lake.
    ("service_code", "json_extract_scalar(requestparameters, '$.serviceCode')",
     "element_at(requestParameters, 'serviceCode')"),
    ("identity_type", "useridentity.type", "userIdentity.type"),
    ("identity_arn", "useridentity.arn", "userIdentity.arn"),
    ("identity_account", "useridentity.accountid", "userIdentity.accountid"),
    ("access_key_id", "useridentity.accesskeyid", "userIdentity.accesskeyid"),
    ("invoked_by", "useridentity.invokedby", "userIdentity.invokedby"),
    ("issuer_arn", "useridentity.sessioncontext.sessionissuer.arn", "userIdentity.sessioncontext.sessionissuer.arn"),
)
ALIASES = tuple(alias for alias, _, _ in COLUMNS)
# The outer query's own columns: is it an excluded callers' summary row, and how many rows it stands for.
# An eventTime Athena may summarise: CloudTrail's own form, and a date that exists whatever the month (days 29
# to 31 come back row by row), so that the least such text is the earliest valid time.
CANONICAL_EVENT_TIME = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"
SUMMARISED, ROW_COUNT = "summarised", "row_count"
ACCOUNT = "account_key"
# The partition reaches this much later than the events (see the module's docstring).
DELIVERY_MARGIN = timedelta(days=1)
OFFSET_MARGIN = timedelta(days=1)


@dataclass
class Query:
    """SQL text, and (Athena) the execution parameters that fill its `?` in order."""

    text: str
    parameters: list[str] = field(default_factory=list)


class _Values:
    """Writes a value into a query: as `?` with a parameter beside it (Athena), or as the literal (Lake)."""

    def __init__(self, parameters: bool):
        self.parameters: list[str] | None = [] if parameters else None

    def __call__(self, value: str) -> str:
        written = values.literal(value)
        if self.parameters is None:
            return written
        self.parameters.append(written)
        return "?"

    def time(self, moment: datetime) -> str:
        written = values.time_literal(moment)
        if self.parameters is None:
            return written
        self.parameters.append(written)
        return "?"

    def many(self, items) -> str:
        return ", ".join(self(item) for item in sorted(items))


def _constant(value: str) -> str:
    """A constant of this module that is not of the value alphabet (a LIKE pattern): written as it is."""
    assert "'" not in value and "\\" not in value
    return f"'{value}'"


def matching(col: dict[str, str], put: _Values) -> str:
    """SPEC §1 "Matching calls": the event source is checked, and ListServiceQuotas only for SES."""
    ses = f"({col['event_source']} = {put(rule.SES_SOURCE)} AND {col['event_name']} IN " \
          f"({put.many(rule.SES_ENUMERATION_CALLS)}))"
    quotas = (f"({col['event_source']} = {put(rule.SERVICE_QUOTAS_SOURCE)} AND {col['event_name']} = "
              f"{put(rule.SERVICE_QUOTAS_CALL)} AND {col['service_code']} = {put('ses')})")
    return f"({ses} OR {quotas})"


def excluded(col: dict[str, str], put: _Values) -> str:
    """SPEC §1 "Excluded callers", as `rule.is_excluded_caller` decides it; never NULL."""
    issuer, arn = col["issuer_arn"], col["identity_arn"]
    role, assumed = ":role/", ":assumed-role/"
    # Built in reading order: Athena fills the `?` in the order they were written.
    aws_service = f"{col['identity_type']} = {put('AWSService')}"
    service_principal = (f"({col['invoked_by']} LIKE {_constant('%.amazonaws.com')} AND {col['invoked_by']} "
                         f"NOT IN ({put.many(rule.CONSOLE_PRINCIPALS)}))")
    # The role path starts /aws-service-role/ when what follows the issuer's first ":role/" starts
    # "aws-service-role/"; without a usable issuer, the session's role name starts AWSServiceRoleFor.
    service_linked = (
        f"({col['identity_type']} = {put('AssumedRole')} AND CASE WHEN strpos({issuer}, {put(role)}) > 0 "
        f"THEN starts_with(substr({issuer}, strpos({issuer}, {put(role)}) + {len(role)}), "
        f"{put(rule.SERVICE_LINKED_ROLE_PATH.lstrip('/'))}) "
        f"ELSE strpos({arn}, {put(assumed)}) > 0 AND starts_with(substr({arn}, strpos({arn}, {put(assumed)}) "
        f"+ {len(assumed)}), {put('AWSServiceRoleFor')}) END)")
    return f"coalesce({aws_service} OR {service_principal} OR {service_linked}, false)"


def _account(col: dict[str, str]) -> str:
    """`record._account`: recipientAccountId, else userIdentity.accountId (an empty one counts as none)."""
    return f"coalesce(nullif({col['recipient_account']}, ''), nullif({col['identity_account']}, ''))"


def _grouped(inner: str) -> str:
    """The outer query: calls one row each, excluded callers one row per account (the module's docstring)."""
    calls = ", ".join(alias for alias in ALIASES)
    shown = ", ".join(alias if alias != "event_time" else "min(event_time) AS event_time" for alias in ALIASES)
    return (
        f"SELECT {SUMMARISED}, {shown}, {ACCOUNT}, count(*) AS {ROW_COUNT}\n"
        f"FROM ({inner}) AS candidates\n"
        f"GROUP BY GROUPING SETS (({SUMMARISED}, {calls}, {ACCOUNT}), ({SUMMARISED}, {ACCOUNT}))\n"
        f"HAVING (grouping(event_id) = 0 AND NOT {SUMMARISED}) OR (grouping(event_id) = 1 AND {SUMMARISED})"
    )


def athena_rule_query(table: str, since: datetime, until: datetime, parameters: bool = True) -> Query:
    """The rule over `database.table` of AWS's standard CloudTrail table, for eventTimes in [since, until).
    (`parameters=False` writes the literals into the text instead: what the tests compare the order with.)"""
    database, name = values.athena_table(table)
    col = {alias: athena for alias, athena, _ in COLUMNS}
    put = _Values(parameters)
    since, until = values.utc(since), values.utc(until)
    selected = ", ".join(f"{expression} AS {alias}" for alias, expression in col.items())
    # Parameters are filled in the order their `?` appear: every fragment is built in reading order.
    # Excluded callers are summarised where their eventTime is exactly inside [since, until): CloudTrail's own
    # text, compared as text (the others come back row by row, and the Python rule decides them).
    summarised = (f"({excluded(col, put)} AND regexp_like(eventtime, {_constant(CANONICAL_EVENT_TIME)}) "
                  f"AND eventtime >= {put(values.event_time_text(since))} "
                  f"AND eventtime < {put(values.event_time_text(until))})")
    where = (
        f"FROM \"{database}\".\"{name}\" WHERE \"timestamp\" BETWEEN "
        f"{put(values.partition_day(since - OFFSET_MARGIN))} AND "
        f"{put(values.partition_day(until + OFFSET_MARGIN + DELIVERY_MARGIN))}"
        f" AND substr(eventtime, 1, 10) BETWEEN {put(values.day(since - OFFSET_MARGIN))} AND "
        f"{put(values.day(until + OFFSET_MARGIN))} AND {matching(col, put)}"
    )
    inner = f"SELECT {selected}, {summarised} AS {SUMMARISED}, {_account(col)} AS {ACCOUNT} {where}"
    return Query(_grouped(inner), put.parameters or [])


def lake_rule_query(event_data_store: str, since: datetime, until: datetime) -> Query:
    """The rule over a CloudTrail Lake event data store (its ID after FROM, as Lake's SQL names it), for
    eventTimes in [since, until). eventTime is a timestamp there, of milliseconds: the bounds are exact."""
    store = values.event_data_store(event_data_store)
    col = {alias: lake for alias, _, lake in COLUMNS}
    put = _Values(parameters=False)
    selected = ", ".join(f"{expression} AS {alias}" for alias, expression in col.items())
    inner = (
        f"SELECT {selected}, {excluded(col, put)} AS {SUMMARISED}, {_account(col)} AS {ACCOUNT} FROM {store} "
        f"WHERE eventTime >= {put.time(since)} AND eventTime < {put.time(until)} "
        f"AND {matching(col, put)}"
    )
    return Query(_grouped(inner))


# ── §6: an identity's or key's other activity, every event source and region ─────────────────────────

ACTIVITY_COLUMNS = (
    *((alias, athena, lake) for alias, athena, lake in COLUMNS if alias != "service_code"),
    ("read_only", "readonly", "readOnly"),
)


def activity_query(engine: str, name: str, since: datetime, until: datetime, arns: list[str], keys: list[str],
                   account: str | None, limit: int, ips: Sequence[str] = ()) -> Query:
    """The records made with one of `keys`, by one of `arns` (the caller's ARN or its role's) or from one of `ips`,
    newest first, at most `limit`. Every value checked (`values`); Athena's as parameters, Lake's as literals."""
    athena = engine == "athena"
    col = {alias: (a if athena else lk) for alias, a, lk in ACTIVITY_COLUMNS}
    put = _Values(parameters=athena)
    arns = [values.arn(arn) for arn in arns]
    keys = [values.access_key_id(key) for key in keys]
    ips = [values.ip_address(ip) for ip in ips]
    if not arns and not keys and not ips:
        raise values.UnsafeValue("nothing to look for: no ARN, access key or address")
    if not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
        raise values.UnsafeValue("the row limit must be a whole number from 1 to 1,000,000")
    selected = ", ".join(f"{expression} AS {alias}" for alias, expression in col.items())
    since, until = values.utc(since), values.utc(until)
    if athena:
        database, table = values.athena_table(name)
        source = f'"{database}"."{table}"'
        bounds = (f"\"timestamp\" BETWEEN {put(values.partition_day(since - OFFSET_MARGIN))} AND "
                  f"{put(values.partition_day(until + OFFSET_MARGIN + DELIVERY_MARGIN))} AND substr(eventtime, 1, 10) "
                  f"BETWEEN {put(values.day(since - OFFSET_MARGIN))} AND {put(values.day(until + OFFSET_MARGIN))}")
    else:
        source = values.event_data_store(name)
        bounds = f"eventTime >= {put.time(since)} AND eventTime < {put.time(until)}"
    whose = []
    if keys:
        whose.append(f"{col['access_key_id']} IN ({', '.join(put(key) for key in keys)})")
    for column in ("identity_arn", "issuer_arn"):
        if arns:
            whose.append(f"{col[column]} IN ({', '.join(put(arn) for arn in arns)})")
    if ips:
        whose.append(f"{col['source_ip']} IN ({', '.join(put(ip) for ip in ips)})")
    text = f"SELECT {selected} FROM {source} WHERE {bounds} AND ({' OR '.join(whose)})"
    if account is not None:
        text += f" AND {col['recipient_account']} = {put(values.account_id(account))}"
    text += f" ORDER BY {col['event_time']} DESC LIMIT {limit}"
    return Query(text, put.parameters or [])
