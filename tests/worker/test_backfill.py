"""The baseline of a queue-fed deployment (SPEC §7): SESGUARD_BACKFILL_SOURCE read once per place, before
the consumer starts, then left to the queue."""

from __future__ import annotations

import json
import threading

import pytest
from sqlmodel import select

from bot.config.errors import SettingsError
from bot.worker.ingest.backfill import backfill_pass
from bot.worker.ingest.consume import backfill_done, wait_for_backfill
from bot.worker.ingest.sources import backfill_source
from detection.sources.lookup import LookupSource
from detection.sources.s3_trail import S3TrailSource
from detection.store import SignalRow
from tests.support.local_aws import OWN_ACCOUNT, ses_calls, user, worker_settings
from tests.support.sqs_trail import Trail, consumer, eventbridge


def test_the_backfill_source_is_read_once_per_place_and_the_queue_alerts_against_that_baseline(
        aws, sqs_env, store):
    aws.api.limit = 20
    aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=9))
    trail = Trail(sqs_env)
    settings = worker_settings(database_url=store.url, source="sqs", sqs_queue_url=trail.queue_url,
                               backfill_source="lookup", backfill_days=30)
    source = backfill_source(settings, store)
    assert isinstance(source, LookupSource)
    stop = threading.Event()
    stop.set()
    assert not backfill_done(store, source.name) and not wait_for_backfill(store, source.name, stop, every=0.01)

    first = backfill_pass(settings, store, source)
    assert first.ok and [o.backfill for o in first.places] == [True]
    assert backfill_done(store, source.name)
    requests = len(aws.api.lookups())
    again = backfill_pass(settings, store, source)
    assert again.ok and again.places == [] and len(aws.api.lookups()) == requests  # left to the queue now

    trail.send(eventbridge(ses_calls(user("alice"), 1)[0]))
    trail.send(eventbridge(ses_calls(user("mallory"), 1)[0]))
    assert consumer(settings, store).drain().signals == 1  # 30 days observed: learning is over
    with store.session() as session:
        assert list(session.exec(select(SignalRow.identity))) == [f"arn:aws:iam::{OWN_ACCOUNT}:user/mallory"]


def test_an_s3_trail_can_be_the_backfill_source_and_other_kinds_are_refused_by_name(sqlite_store):
    base = {"database_url": sqlite_store.url, "source": "sqs",
            "sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/111111111111/trail"}
    source = backfill_source(worker_settings(**base, backfill_source="s3://trail-bucket/org"), sqlite_store)
    assert isinstance(source, S3TrailSource) and source.name == "s3://trail-bucket/org"
    assert backfill_source(worker_settings(**base), sqlite_store) is None
    with pytest.raises(SettingsError, match="SESGUARD_BACKFILL_SOURCE: must be lookup, s3://bucket/prefix"):
        worker_settings(**base, backfill_source="gopher://x")


@pytest.mark.parametrize("values, message", [
    ({"source": "sqs"}, "SESGUARD_SOURCE=sqs needs SESGUARD_SQS_QUEUE_URL"),
    ({"source": "sqs", "sqs_queue_url": "not a url"}, "invalid setting SESGUARD_SQS_QUEUE_URL"),
    ({"source": "kafka://x"}, "SESGUARD_SOURCE: must be lookup, s3://bucket/prefix or sqs"),
    ({"source": "sqs", "sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/111111111111/trail",
      "backfill_source": "athena://cloudtrail.logs"}, "with SESGUARD_SOURCE=sqs use lookup or s3://"),
])
def test_the_queue_settings_stop_start_up_with_one_line(values, message):
    with pytest.raises(SettingsError, match=message):
        worker_settings(**values)


def test_json_body_of_the_queue_settings_is_never_echoed():
    with pytest.raises(SettingsError) as refused:
        worker_settings(source="sqs", sqs_queue_url=json.dumps({"secret": "s3cr3t value"}))
    assert "s3cr3t" not in str(refused.value)


def test_a_place_whose_backfill_fails_shows_in_health_and_does_not_hold_the_queue_up(aws, sqs_env, store):
    from bot.health.report import health
    from tests.support.local_aws import ROLE_ACCOUNT, ROLE_ARN

    aws.api.limit = 20  # ROLE_ARN is not a role the stand-in knows: AssumeRole is denied
    trail = Trail(sqs_env)
    settings = worker_settings(database_url=store.url, source="sqs", sqs_queue_url=trail.queue_url,
                               backfill_source="lookup", role_arns=[ROLE_ARN])
    source = backfill_source(settings, store)
    result = backfill_pass(settings, store, source)
    assert not result.ok and [o.place.account_id for o in result.places if o.error] == [ROLE_ACCOUNT]
    assert backfill_done(store, source.name)  # tried: the consumer starts for every other account
    shown = {(s.source, s.account_id): s for s in health(store, settings).sources}
    assert "AccessDenied" in shown[("lookup", ROLE_ACCOUNT)].last_error
    assert ("lookup", OWN_ACCOUNT) not in shown  # backfilled: the queue brings the rest
