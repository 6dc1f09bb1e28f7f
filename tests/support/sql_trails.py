"""The rule two ways over the same records, for the SQL engines' tests and benchmark: the files' path (records →
`scan_bytes` → calls), and the engines' (records in a DuckDB table of the engine's shape → the generated SQL,
transpiled → rows → calls). Also a generator of trails with every kind of caller, shape and time."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from detection import rule
from detection.sources.files import decompress, scan_bytes
from detection.sources.sql import query, rows
from tests.fakes import cloudtrail_tables as tables
from tests.support import records as r

REPO = Path(__file__).resolve().parents[2]
TABLE = "cloudtrail.logs"
STORE = "EXAMPLEf852-4e8f-8bd1-bcf6cEXAMPLE"


def fixture_records() -> list[dict]:
    """Every record of the repository's fixtures and sample copies, whatever their layout."""
    found = []
    for folder in ("tests/fixtures", "tests/samples"):
        for path in sorted((REPO / folder).iterdir()):
            if not path.name.endswith((".json", ".json.gz")) or path.name.startswith("_"):
                continue
            text, _ = decompress(path.read_bytes())
            found += _records_of(text)
    return found


def _records_of(text: bytes) -> list[dict]:
    try:
        document = json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(document, list):
        return [item for item in document if isinstance(item, dict)]
    if "Records" in document:
        return document["Records"]
    if "Events" in document:
        return [json.loads(event["CloudTrailEvent"]) for event in document["Events"]]
    return [document]


def python_rule(records: list[dict], since: datetime, until: datetime, mode: str = "principal"):
    """(calls, accounts with excluded callers' calls) as the files give them, within [since, until)."""
    scanned = scan_bytes("trail.jsonl", r.encode(records, "lines"), mode)
    calls = {call for call in scanned.calls if since <= call.event_time < until}
    excluded = {s.account_id for s in scanned.sightings if since <= s.event_time < until}
    return calls, excluded


def athena_rule(records: list[dict], since: datetime, until: datetime, late: dict[int, int] | None = None,
                mode: str = "principal"):
    """The same through the Athena SQL over a standard CloudTrail table in DuckDB; also the engine's rows."""
    late = late or {}
    connection = duckdb.connect()
    tables.athena_table(connection, TABLE, [(rec, tables.delivery_day(rec, late.get(i, 0)))
                                            for i, rec in enumerate(records)])
    sql = query.athena_rule_query(TABLE, since, until)
    names, result = tables.run_trino(connection, sql.text, sql.parameters)
    return _engine_answer([dict(zip(names, row)) for row in result], since, until, mode)


def lake_rule(records: list[dict], since: datetime, until: datetime, mode: str = "principal"):
    connection = duckdb.connect()
    tables.lake_table(connection, STORE, records)
    sql = query.lake_rule_query(STORE, since, until)
    names, result = tables.run_trino(connection, tables.lake_sql_for_duckdb(sql.text, [STORE]))
    return _engine_answer([dict(zip(names, _texts(row))) for row in result], since, until, mode)


def _texts(row: tuple) -> tuple:
    """Lake answers every value as text: a timestamp as `2025-01-20 16:52:14.000`."""
    return tuple(value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if isinstance(value, datetime) else value
                 for value in row)


def _engine_answer(found: list[dict], since, until, mode):
    scanned = rows.scan_rows("engine", found, mode, since, until)
    return set(scanned.calls), {s.account_id for s in scanned.sightings}, scanned, len(found)


# ── a generated trail ────────────────────────────────────────────────────────────────────────────────

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ACCOUNTS = ("111122223333", "444455556666", "777788889999")
HOSTILE = ("x' OR '1'='1", "a'; DROP TABLE logs; --", "<!channel>", "\\'", "bob\u0000")
LOOKALIKES = [("apigateway.amazonaws.com", "GetAccount"), ("cognito-identity.amazonaws.com", "ListIdentities"),
              ("iam.amazonaws.com", "ListUsers"), ("ses.amazonaws.com", "SendEmail"),
              ("ses.amazonaws.com", "getaccount"), ("SES.amazonaws.com", "GetAccount")]


def identity_for(rng: random.Random, account: str) -> dict:
    choice = rng.randrange(14)
    name = rng.choice(["alice", "bob", "ci", "svc-mailer", rng.choice(HOSTILE)])
    if choice == 0:
        return r.root(account)
    if choice == 1:
        return r.sso_session(f"{name}@example.com", account=account, issuer=rng.random() < 0.8)
    if choice == 2:
        return r.assumed_role("app-server", f"i-{rng.randrange(10**6):06d}", account)
    if choice == 3:
        return r.trusted_advisor(account=account, issuer=rng.random() < 0.7)
    if choice == 4:
        return r.aws_service(rng.choice(["config.amazonaws.com", "trustedadvisor.amazonaws.com"]))
    if choice == 5:
        principal = rng.choice(["cloudformation.amazonaws.com", "signin.amazonaws.com", "console.amazonaws.com",
                                "amazonaws.com", "evil.example.com"])
        return r.invoked_by(r.iam_user(name, account), principal)
    if choice == 6:
        return r.assumed_role("AWSServiceRoleForSecurityHub", "securityhub", account,
                              path="/aws-service-role/securityhub.amazonaws.com/", issuer=rng.random() < 0.5)
    if choice == 7:
        return r.federated_user(name, account)
    if choice == 8:
        return {"type": "IAMUser", "principalId": "AIDANOARN", "accountId": account}  # no ARN: a bad record
    if choice == 9:  # a role whose path merely mentions the service-role path
        return r.assumed_role("deploy", "s", account, path="/team/aws-service-role/")
    if choice == 10:
        identity = r.iam_user(name, account)
        return {**identity, "arn": identity["arn"] + rng.choice(HOSTILE)}
    return r.iam_user(name, account, key=rng.choice([r.LONG_TERM_KEY, r.SESSION_KEY]))


def event_time(rng: random.Random, days: int) -> str:
    moment = T0 + timedelta(seconds=rng.randrange(days * 86400))
    shape = rng.randrange(20)
    if shape == 0:
        return moment.strftime("%Y-%m-%d %H:%M:%S.000000000")  # Panther's export
    if shape == 1:
        return (moment - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S-05:00")
    if shape == 2:
        return rng.choice(["not a time", "2025-02-30T00:00:00Z", ""])
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def generated_trail(seed: int, size: int, days: int = 60, matching_share: float = 0.5) -> tuple[list[dict], dict]:
    """`size` records over `days` days, about `matching_share` of them SES/quota candidates; and which were
    delivered a day late (the partition of the next day)."""
    rng = random.Random(seed)
    trail, late = [], {}
    for _ in range(size):
        account = rng.choice(ACCOUNTS)
        identity = identity_for(rng, account)
        kind = rng.random()
        if kind < matching_share * 0.8:
            source, name = "ses.amazonaws.com", rng.choice(sorted(rule.SES_ENUMERATION_CALLS))
            request = None
        elif kind < matching_share:
            source, name = "servicequotas.amazonaws.com", "ListServiceQuotas"
            request = {"serviceCode": rng.choice(["ses", "ses", "ec2", "SES", 5, None])}
        else:
            source, name = rng.choice(LOOKALIKES + [("s3.amazonaws.com", "GetObject")] * 6)
            request = {"bucketName": "logs"} if source.startswith("s3") else None
        rec = r.record(identity, name, time=event_time(rng, days), source=source, account=account,
                       region=rng.choice(["us-east-1", "eu-west-1", "ap-south-1"]),
                       ip=rng.choice(["203.0.113.10", "198.51.100.66", "2001:db8::1"]),
                       error=rng.choice([None, None, "AccessDenied"]), request=request,
                       console=rng.choice([None, True, False]))
        if rng.random() < 0.05:  # a record delivered twice
            trail.append(dict(rec))
        if rng.random() < 0.03:
            rec["recipientAccountId"] = ""
        trail.append(rec)
        if rng.random() < 0.2:
            late[len(trail) - 1] = 1
    return trail, late

