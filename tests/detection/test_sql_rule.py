"""The rule as SQL (SPEC §9): Trino SQL that sqlglot parses, values only as checked parameters or literals, and —
transpiled to DuckDB over the engines' table shapes — exactly the Python rule's matches on the same records."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from detection.sources.sql import query, values
from tests.fakes import cloudtrail_tables as tables
from tests.support import records as r
from tests.support import sql_trails as trails

SINCE, UNTIL = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC)
EVERYTHING = (datetime(2006, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _inline(sql: query.Query) -> str:
    """Athena's text with each `?` replaced by its parameter, in order (what the engine runs)."""
    parameters = iter(sql.parameters)
    return re.sub(r"\?", lambda _: next(parameters), sql.text)


# ── the SQL text ─────────────────────────────────────────────────────────────────────────────────────


def test_the_athena_query_parses_as_trino_and_presto_and_prunes_the_timestamp_partition():
    sql = query.athena_rule_query("cloudtrail.logs", SINCE, UNTIL)
    for dialect in ("trino", "presto", "athena"):
        tree = sqlglot.parse_one(sql.text, read=dialect)
        assert isinstance(tree, exp.Select)
    assert sql.text.count("?") == len(sql.parameters)
    constants = ("'$.serviceCode'", "'%.amazonaws.com'", "''", f"'{query.CANONICAL_EVENT_TIME}'")
    assert "'" not in re.sub("|".join(map(re.escape, constants)), "", sql.text)  # every value is a parameter
    written = _inline(sql)
    # the partition reaches from the day before `since` to two days after `until` (offsets, delivery lag)
    assert "\"timestamp\" BETWEEN '2024/12/31' AND '2025/03/03'" in written
    assert "substr(eventtime, 1, 10) BETWEEN '2024-12-31' AND '2025-03-02'" in written
    assert 'FROM "cloudtrail"."logs"' in written


def test_athena_parameters_fill_the_placeholders_in_reading_order():
    with_parameters = query.athena_rule_query("cloudtrail.logs", SINCE, UNTIL)
    written = query.athena_rule_query("cloudtrail.logs", SINCE, UNTIL, parameters=False)
    assert written.parameters == [] and "?" not in written.text
    assert _inline(with_parameters) == written.text


def test_the_lake_query_parses_as_trino_with_the_event_data_store_after_from():
    sql = query.lake_rule_query(trails.STORE, SINCE, UNTIL)
    assert (f"FROM {trails.STORE} WHERE eventTime >= '2025-01-01 00:00:00.000' "
            "AND eventTime < '2025-03-01 00:00:00.000'") in sql.text
    assert "element_at(requestParameters, 'serviceCode')" in sql.text
    tree = sqlglot.parse_one(tables.lake_sql_for_duckdb(sql.text, [trails.STORE]), read="trino")
    assert isinstance(tree, exp.Select)


def test_a_lake_store_may_be_named_by_its_arn():
    arn = f"arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/{trails.STORE}"
    assert values.event_data_store(arn) == trails.STORE


HOSTILE_NAMES = ["db.logs; DROP TABLE x", "db.lo'gs", 'db."logs"', "db", "db.logs.more", "DB.Logs", "db.logs --",
                 "db.lo\u0000gs", ".logs", "db."]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_table_names_never_reach_the_sql(name):
    with pytest.raises(values.UnsafeValue):
        query.athena_rule_query(name, SINCE, UNTIL)


HOSTILE_STORES = ["x FROM y", "abc' OR 1=1", "eds;--", "a b", "ab", "x" * 200, "../etc", "ab\u202ecd",
                  "arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/x' OR '1'='1"]


@pytest.mark.parametrize("name", HOSTILE_STORES)
def test_hostile_event_data_stores_never_reach_the_sql(name):
    with pytest.raises(values.UnsafeValue):
        query.lake_rule_query(name, SINCE, UNTIL)


def test_time_bounds_must_carry_a_zone():
    with pytest.raises(values.UnsafeValue):
        query.athena_rule_query("db.logs", datetime(2025, 1, 1), UNTIL)


HOSTILE_VALUES = ["x' OR '1'='1", "'; DROP TABLE logs; --", "a\\'b", "a b", "<!channel>", "a\u0000b", "", "é",
                  "a\nb", "a--b ", "1/**/OR/**/1", "${jndi:x}", "x" * 3000]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_hostile_values_are_refused_as_literals(value):
    with pytest.raises(values.UnsafeValue):
        values.literal(value)


@pytest.mark.parametrize("value", ["arn:aws:iam::123456789012:user/x' OR '1'='1", "arn:aws:iam::1:user/x",
                                   "arn:aws:iam::123456789012:user/a b", "arn:aws:iam::123456789012:user/<!channel>"])
def test_hostile_arns_are_refused(value):
    with pytest.raises(values.UnsafeValue):
        values.arn(value)


@pytest.mark.parametrize("value", ["203.0.113.1' OR '1'='1", "fe80::1%eth0' --", "1.2.3", "::g", "",
                                   "1.2.3.4 OR 1=1"])
def test_hostile_ips_are_refused(value):
    with pytest.raises(values.UnsafeValue):
        values.literal(values.ip_address(value))


def test_good_values_pass_in_their_canonical_form():
    assert values.ip_address("2001:DB8:0::1") == "2001:db8::1"
    assert values.access_key_id("AKIAIOSFODNN7EXAMPLE") == "AKIAIOSFODNN7EXAMPLE"
    assert values.literal(values.arn("arn:aws:sts::123456789012:assumed-role/Admin/dana@example.com")) == \
        "'arn:aws:sts::123456789012:assumed-role/Admin/dana@example.com'"


# ── the same matches as the Python rule ──────────────────────────────────────────────────────────────


def test_over_the_fixtures_and_samples_athena_and_lake_give_the_files_matches():
    records = trails.fixture_records()
    calls, excluded = trails.python_rule(records, *EVERYTHING)
    assert calls and excluded  # the fixtures hold both kinds
    athena_calls, athena_excluded, scanned, returned = trails.athena_rule(records, *EVERYTHING)
    assert (athena_calls, athena_excluded) == (calls, excluded)
    assert returned < len(records)  # look-alikes, other services, RequestServiceQuotaIncrease stayed in the table
    assert scanned.not_matching == 0
    lake_calls, lake_excluded, _, _ = trails.lake_rule(records, *EVERYTHING)
    assert (lake_calls, lake_excluded) == (calls, excluded)


def test_over_the_realistic_trail_the_excluded_callers_come_back_as_one_row_per_account():
    records = r.realistic_trail()
    calls, excluded = trails.python_rule(records, *EVERYTHING)
    athena_calls, athena_excluded, scanned, returned = trails.athena_rule(records, *EVERYTHING)
    assert (athena_calls, athena_excluded) == (calls, excluded)
    trusted_advisor = sum(1 for rec in records if "TrustedAdvisor" in str(rec["userIdentity"].get("arn")))
    assert trusted_advisor > 10
    # one row per account, besides the few on days 29 to 31 (row by row, see query.CANONICAL_EVENT_TIME)
    assert returned <= len(calls) + len(scanned.bad) + len(excluded) + 3
    assert scanned.summarised >= trusted_advisor - 4


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(0, 400), start=st.integers(0, 50 * 24),
       hours=st.integers(1, 40 * 24), mode=st.sampled_from(["principal", "arn"]))
def test_generated_trails_give_exactly_the_python_rules_matches(seed, size, start, hours, mode):
    """Any trail (every kind of caller, look-alikes, hostile ARNs, offsets, bad times, records delivered twice or a
    day late), any window: the SQL over the table gives the calls the files give, and the same observed accounts."""
    records, late = trails.generated_trail(seed, size)
    since = trails.T0 + timedelta(hours=start, minutes=seed % 60)
    until = since + timedelta(hours=hours)
    calls, excluded = trails.python_rule(records, since, until, mode)
    athena_calls, athena_excluded, _, _ = trails.athena_rule(records, since, until, late, mode)
    assert athena_calls == calls
    assert athena_excluded == excluded
    lake_calls, lake_excluded, _, _ = trails.lake_rule(records, since, until, mode)
    assert lake_calls == calls
    assert lake_excluded == excluded
