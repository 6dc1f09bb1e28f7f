"""The S3 source against moto's S3 server (real HTTP, reached through AWS_ENDPOINT_URL_S3)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from sqlmodel import select

from bot.worker.ingest.poll import poll_once
from bot.worker.tables import PollState
from detection.sources.s3_trail import S3Object
from detection.store import EventRow, SignalRow
from tests.support import records
from tests.support.local_aws import OWN_ACCOUNT, ROLE_ACCOUNT, now, ses_calls, subprocess_env, user, worker_settings

pytestmark = pytest.mark.processes

BUCKET = "org-trail"
ORG = "o-a1b2c3d4e5"


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path):
    for name, value in {"AWS_ENDPOINT_URL_S3": s3_endpoint,
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


def log_key(account: str, region: str, day: datetime, name: str, prefix: str = "trail", org: str | None = ORG) -> str:
    middle = f"{org}/{account}" if org else account
    return (f"{prefix}/AWSLogs/{middle}/CloudTrail/{region}/{day:%Y/%m/%d}/"
            f"{account}_CloudTrail_{region}_{day:%Y%m%dT%H%MZ}_{name}.json.gz")


def deliver(client, key: str, calls: list[dict]) -> str:
    client.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(records.encode(calls, "log")))
    return key


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def poll(store, url=f"s3://{BUCKET}/trail", **overrides):
    settings = worker_settings(database_url=store.url, source=url, backfill_days=8, **overrides)
    return poll_once(settings, store, notify=False)


def signals(store) -> list[SignalRow]:
    with store.session() as session:
        return list(session.exec(select(SignalRow).order_by(SignalRow.first_seen)))


def test_backfill_from_the_bucket_then_one_alert_per_new_identity(s3, store):
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(6), "a"), ses_calls(user("alice"), 3, days_ago=6))
    deliver(s3, log_key(OWN_ACCOUNT, "eu-west-1", days_ago(3), "b"),
            ses_calls(user("alice"), 2, days_ago=3, region="eu-west-1"))
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(10), "old"), ses_calls(user("mallory"), 1, days_ago=10))

    first = poll(store)
    assert first.ok and {(str(o.place), o.backfill) for o in first.places} == {
        (f"{OWN_ACCOUNT}/eu-west-1", True), (f"{OWN_ACCOUNT}/us-east-1", True)}
    assert signals(store) == []
    with store.session() as session:
        assert len(list(session.exec(select(EventRow)))) == 5  # the 10-day-old file is beyond the 8-day backfill

    today = deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "c"),
                    ses_calls(user("mallory"), 2) + ses_calls(user("alice"), 1))
    second = poll(store)
    assert second.ok and [s.identity.rsplit("/", 1)[-1] for s in signals(store)] == ["mallory"]

    # Each file is read once: the same key with other content is not read again.
    deliver(s3, today, ses_calls(user("oscar"), 1))
    assert poll(store).ok and len(signals(store)) == 1
    with store.session() as session:
        remembered = set(session.exec(select(S3Object.key)))
    assert f"s3://{BUCKET}/{today}" in remembered and len(remembered) == 3


def test_accounts_inside_and_outside_an_organisation_folder(s3, store):
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(1), "a"), ses_calls(user("alice"), 1, days_ago=1))
    deliver(s3, log_key(ROLE_ACCOUNT, "ap-southeast-2", days_ago(1), "b", org=None),
            ses_calls(user("bob", ROLE_ACCOUNT), 1, days_ago=1, account=ROLE_ACCOUNT, region="ap-southeast-2"))
    digest = f"trail/AWSLogs/{ORG}/{OWN_ACCOUNT}/CloudTrail-Digest/us-east-1/x.json.gz"
    s3.put_object(Bucket=BUCKET, Key=digest, Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="trail/AWSLogs/not-an-account/CloudTrail/us-east-1/y.json.gz", Body=b"x")
    result = poll(store, url=f"s3://{BUCKET}/trail/AWSLogs")
    assert result.ok and sorted(str(o.place) for o in result.places) == [
        f"{OWN_ACCOUNT}/us-east-1", f"{ROLE_ACCOUNT}/ap-southeast-2"]
    with store.session() as session:
        assert len(list(session.exec(select(EventRow)))) == 2


def test_later_polls_list_from_the_watermarks_day_only(s3, store):
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(5), "a"), ses_calls(user("alice"), 1, days_ago=5))
    assert poll(store).ok
    # A file that turns up in an old day folder after the backfill is outside every later listing.
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(4), "late"), ses_calls(user("mallory"), 1, days_ago=4))
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "now"), ses_calls(user("oscar"), 1))
    assert poll(store).ok
    assert [s.identity.rsplit("/", 1)[-1] for s in signals(store)] == ["oscar"]


def test_a_file_delivered_late_into_yesterdays_folder_after_the_watermark_crossed_midnight_is_caught_once(s3, store):
    """The watermark is past midnight (no look-back: the read starts today); the trail then delivers a file
    named for 23:58 yesterday into yesterday's folder, as CloudTrail does when it delivers late. The next
    poll reads it and alerts (detected normally, whatever its eventTime); the poll after it reads it no more."""
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(5), "a"), ses_calls(user("alice"), 1, days_ago=5))
    assert poll(store, lookback_minutes=0).ok
    with store.session() as session:
        [watermark] = [row.watermark for row in session.exec(select(PollState)) if row.watermark is not None]
    midnight = watermark.replace(hour=0, minute=0, second=0, microsecond=0)
    late = midnight - timedelta(minutes=2)
    calls = [records.record(user("mallory"), "GetSendQuota", time=f"{late - timedelta(seconds=i):%Y-%m-%dT%H:%M:%SZ}")
             for i in range(2)]
    key = deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", late, "late"), calls)
    assert f"/{late:%Y/%m/%d}/" in key and late.date() < watermark.date()

    caught = poll(store, lookback_minutes=0)
    assert caught.ok and caught.places[0].new_calls == 2
    assert [s.identity.rsplit("/", 1)[-1] for s in signals(store)] == ["mallory"]
    again = poll(store, lookback_minutes=0)
    assert again.ok and again.places[0].records == 0 and len(signals(store)) == 1
    with store.session() as session:
        assert f"s3://{BUCKET}/{key}" in set(session.exec(select(S3Object.key)))


def test_a_corrupt_file_is_skipped_counted_and_not_read_again(s3, store):
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(5), "a"), ses_calls(user("alice"), 1, days_ago=5))
    assert poll(store).ok
    s3.put_object(Bucket=BUCKET, Key=log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "bad"), Body=b"\x1f\x8bnot gzip")
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "good"), ses_calls(user("oscar"), 1))
    result = poll(store)
    assert result.ok and result.places[0].bad == 1 and len(signals(store)) == 1
    assert poll(store).places[0].bad == 0


def test_a_missing_bucket_fails_the_source_and_says_so(s3, store):
    result = poll(store, url="s3://no-such-bucket/trail")
    assert not result.ok and "NoSuchBucket" in result.source_error
    with store.session() as session:
        row = session.get(PollState, ("s3://no-such-bucket/trail", "*", "*"))
    assert row.consecutive_failures == 1 and "NoSuchBucket" in row.last_error
    assert now() - row.last_error_at < timedelta(minutes=1)


def test_a_file_of_impossible_times_is_bad_records_and_the_real_attacker_beside_it_alerts(s3, store):
    """eventTimes pushed past year 1 or 9999 by their offsets once failed the whole account/region on
    every pass: the attacker in the next file of the same day was never alerted on."""
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(5), "a"), ses_calls(user("alice"), 1, days_ago=5))
    assert poll(store).ok
    forged = [records.record(user(f"forger{n}"), time=time)
              for n, time in enumerate(["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])]
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "forged"), forged)
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "real"), ses_calls(user("mallory"), 2))
    result = poll(store)
    assert result.ok, result.lines()
    assert [s.identity.rsplit("/", 1)[-1] for s in signals(store)] == ["mallory"]
    assert result.places[0].bad == 2


def test_a_deep_record_without_an_event_id_is_a_bad_record_and_never_blocks_its_place(s3, store):
    """Its substitute eventID hashed the record written back to JSON, which orjson cannot write past about 254
    levels: a TypeError failed the account/region on every pass, and the attacker beside it never alerted."""
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(5), "a"), ses_calls(user("alice"), 1, days_ago=5))
    assert poll(store).ok
    [deep] = ses_calls(user("forger"), 1)
    del deep["eventID"]
    deep["requestParameters"] = records.nested(300)
    s3.put_object(Bucket=BUCKET, Key=log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "deep"),  # json writes it
                  Body=gzip.compress(json.dumps({"Records": [deep]}).encode()))
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "real"), ses_calls(user("mallory"), 2))
    result = poll(store)
    assert result.ok, result.lines()
    assert [s.identity.rsplit("/", 1)[-1] for s in signals(store)] == ["mallory"]
    assert result.places[0].bad == 1


# One poll pass in a process of its own, with the reader's limits lowered so that a bomb many times their
# size is cheap to build and to read: its peak of traced memory (tracemalloc) shows whether the memory
# follows the limits or the inflated size.
ONE_PASS = """
import json, logging, sys, tracemalloc
from bot.config.logs import configure_logging
from bot.worker.ingest.poll import poll_once
from bot.worker.ingest.sources import make_source
from detection.sources import files
from detection.store import Store
from tests.support.local_aws import worker_settings

files.WHOLE_FILE_LIMIT, files.LINE_LIMIT = 8 * 2**20, 2**20
configure_logging(logging.WARNING)
settings = worker_settings(database_url=sys.argv[1], source=sys.argv[2], backfill_days=8)
store = Store(settings.database_url)
source = make_source(settings, store)  # boto3's service models are loaded before the count starts
tracemalloc.start()
result = poll_once(settings, store, source, notify=False)
print(json.dumps({"ok": result.ok, "bad": [o.bad for o in result.places], "peak": tracemalloc.get_traced_memory()[1]}))
"""


def gzip_bomb(head: bytes, filler: bytes, size: int, tail: bytes) -> bytes:
    """`head`, then `filler` up to `size` inflated bytes, then `tail`, gzipped: about a thousandth the size."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = filler * (2**20 // len(filler))
    parts = [packer.compress(head)] + [packer.compress(block) for _ in range(size // len(block))]
    return b"".join(parts + [packer.compress(tail), packer.flush()])


def test_gzip_bombs_are_skipped_and_named_in_the_memory_of_the_limits(s3, sqlite_store, tmp_path):
    """A 256 MB document and a 256 MB JSON Lines line, each from 250 KB in S3, beside a real attacker:
    the document is a corrupt file, the line a bad record, both named; the attacker alerts; the reader
    holds no more than its limits. (Reading whole objects, the pass held twice the bomb: 512 MB.)"""
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(5), "a"), ses_calls(user("alice"), 1, days_ago=5))
    assert poll(sqlite_store).ok
    bomb_size = 256 * 2**20
    document = gzip_bomb(b'{"Records": [', b" ", bomb_size, b"]}")
    first, last = (records.encode([call], "lines") for call in ses_calls(user("oscar"), 2))
    line = gzip_bomb(first + b'{"eventSource": "ses.amazonaws.com", "padding": "', b"x", bomb_size, b'"}\n' + last)
    assert max(len(document), len(line)) < 300 * 2**10
    keys = [log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), name) for name in ("document-bomb", "line-bomb")]
    for key, body in zip(keys, [document, line]):
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "real"), ses_calls(user("mallory"), 2))

    done = subprocess.run([sys.executable, "-c", ONE_PASS, sqlite_store.url, f"s3://{BUCKET}/trail"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=subprocess_env({"PYTHONPATH": str(records.REPO)}))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["bad"] == [2]
    assert sorted(s.identity.rsplit("/", 1)[-1] for s in signals(sqlite_store)) == ["mallory", "oscar"]
    skipped = [line for line in done.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 2
    assert f"s3://{BUCKET}/{keys[0]}: too large to read whole (a JSON document over 8 MB inflated)" in skipped[0]
    assert f"s3://{BUCKET}/{keys[1]}: record 2: a line over 1 MB" in skipped[1]
    # 14 MB on the machine it was written on
    assert result["peak"] < 40 * 2**20, f"peak {result['peak'] / 2**20:.0f} MB"


def test_s3_keys_reach_the_workers_log_lines_made_printable(s3, sqlite_store, tmp_path):
    """Whoever can write to the trail bucket chooses its keys: a key holding a title-setting OSC sequence,
    a screen clear and line breaks that would forge a log line (a carriage return, NEL, the Unicode line
    separator: S3 takes them, as it takes a newline, which moto's server cannot) is named printable in
    "skipped …"."""
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(5), "a"), ses_calls(user("alice"), 1, days_ago=5))
    assert poll(sqlite_store).ok
    hostile = "evil\x1b]0;pwned\x07\x1b[2J\r2025-01-01 00:00:00,000 INFO bot.worker.ingest.poll: all is well\x85\u2028"
    key = log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), hostile)
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(b"not json"))
    deliver(s3, log_key(OWN_ACCOUNT, "us-east-1", days_ago(0), "real"), ses_calls(user("mallory"), 1))
    done = subprocess.run([sys.executable, "-c", ONE_PASS, sqlite_store.url, f"s3://{BUCKET}/trail"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=subprocess_env({"PYTHONPATH": str(records.REPO)}))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bad"] == [1]
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    (skipped,) = done.stderr.splitlines()
    assert "WARNING bot.worker.ingest.poll: skipped s3://" in skipped
    assert "evil?]0;pwned??[2J?2025-01-01 00:00:00,000 INFO bot.worker.ingest.poll: all is well??" in skipped
