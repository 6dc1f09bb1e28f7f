"""The SQS source (SPEC §7) against moto's SQS and S3 over real HTTP: moto delivers the bucket's own event
notifications (and its s3:TestEvent) to the queue, applies the redrive policy, and keeps the messages; the
store is real SQLite and PostgreSQL; alerts go to the Slack stand-in."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from sqlmodel import select

from bot.health.report import health
from bot.worker.scheduler import Worker
from bot.worker.tables import QueueState
from detection.store import EventRow, Scope, SignalRow, Store
from tests.fakes.slack_api import FakeSlack
from tests.support.local_aws import OWN_ACCOUNT, ses_calls, user, worker_settings
from tests.support.records import nested
from tests.support.sqs_trail import DAY, Trail, consumer, eventbridge, notification
from tests.support.waiting import wait_for

pytestmark = pytest.mark.processes

CHANNEL = "C0ALERTS"


def settings_for(store, trail, **overrides):
    values = {"database_url": store.url, "source": "sqs", "sqs_queue_url": trail.queue_url, "learning_days": 0,
              "trail_buckets": [trail.bucket]}
    values.update(overrides)
    return worker_settings(**values)


def signals(store) -> list[str]:
    with store.session() as session:
        return sorted(row.identity.rsplit("/", 1)[-1] for row in session.exec(select(SignalRow)))


def event_ids(store) -> list[str]:
    with store.session() as session:
        return sorted(session.exec(select(EventRow.event_id)))


def test_every_record_of_a_notified_object_is_detected_once_and_test_events_and_digests_are_ignored(
        sqs_env, store):
    trail = Trail(sqs_env)
    mallory = ses_calls(user("mallory"), 3)
    alice = ses_calls(user("alice"), 2, region="eu-west-1")
    trail.put_log("one", mallory)
    trail.put_log("two", alice, region="eu-west-1")
    trail.put(f"AWSLogs/o-abcdefghij/{OWN_ACCOUNT}/CloudTrail-Digest/us-east-1/{DAY}/digest.json.gz",
              gzip.compress(b'{"digestStartTime": "x"}'))
    settings = settings_for(store, trail)

    drained = consumer(settings, store).drain()
    assert (drained.stored, drained.unusable, drained.signals) == (2, 0, 2)
    assert drained.ignored == 2  # s3:TestEvent (sent when the notification was configured) and the digest file
    assert signals(store) == ["alice", "mallory"]
    assert event_ids(store) == sorted(r["eventID"] for r in mallory + alice)
    assert trail.counts() == (0, 0)  # every message deleted once used
    assert consumer(settings, store).drain().received == 0
    with store.session() as session:
        row = session.get(QueueState, trail.queue_url)
    assert row.ignored == 2 and row.unusable == 0 and row.backlog is not None
    assert row.oldest_received_seconds is not None and row.oldest_received_seconds >= 0
    lines = health(store, settings).lines()
    assert any(f"queue {trail.queue_url}: " in line and "waiting" in line for line in lines)
    assert any("sqs (receiving from the queue)" in line and line.startswith("ok") for line in lines)


def test_a_message_delivered_twice_or_in_an_sns_envelope_is_stored_and_alerted_once(sqs_env, store):
    trail = Trail(sqs_env)
    key = trail.put_log("one", ses_calls(user("mallory"), 2))
    body = notification(trail.bucket, key)
    trail.send(body)  # the same notification again, as SQS's at-least-once delivery may bring it
    trail.send(json.dumps({"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
                           "Message": body}))
    settings = settings_for(store, trail)
    drained = consumer(settings, store).drain()
    assert drained.stored == 3 and drained.signals == 1 and drained.new_calls == 2
    assert signals(store) == ["mallory"] and len(event_ids(store)) == 2
    with store.session() as session:
        [row] = session.exec(select(SignalRow))
    assert row.event_count == 2
    assert trail.counts() == (0, 0)


def test_a_truncated_object_and_garbage_are_left_to_the_redrive_policy_and_the_rest_goes_on(sqs_env, store):
    trail = Trail(sqs_env, visibility=1, max_receives=2)
    whole = gzip.compress(json.dumps({"Records": ses_calls(user("eve"), 2)}).encode())
    trail.put(trail.key("truncated"), whole[: len(whole) // 2])
    trail.put_log("good", ses_calls(user("mallory"), 1))
    trail.send("this is not JSON <!channel>")
    settings = settings_for(store, trail)

    first = consumer(settings, store).drain()
    assert first.unusable == 2 and first.stored == 1 and signals(store) == ["mallory"]
    # Redelivered after the visibility timeout, and moved to the dead-letter queue after two receives.
    wait_for(lambda: consumer(settings, store).drain() is not None and len(trail.dead_letters()) == 2,
             "the unusable messages in the dead-letter queue")
    dead = trail.dead_letters()
    assert any("truncated" in body for body in dead) and "this is not JSON <!channel>" in dead
    assert signals(store) == ["mallory"] and len(event_ids(store)) == 1  # nothing of the truncated file
    with store.session() as session:
        assert session.get(QueueState, trail.queue_url).unusable >= 4


def test_an_eventbridge_event_is_the_record_and_other_kinds_are_ignored(sqs_env, store):
    trail = Trail(sqs_env)
    [call] = ses_calls(user("mallory"), 1)
    trail.send(eventbridge(call))
    trail.send(eventbridge(call))  # a duplicate
    trail.send(json.dumps({"version": "0", "detail-type": "EC2 Instance State-change Notification", "detail": {}}))
    trail.send(json.dumps({"version": "0", "detail-type": "AWS API Call via CloudTrail", "detail": "x"}))
    drained = consumer(settings_for(store, trail), store).drain()
    assert (drained.stored, drained.ignored, drained.unusable) == (2, 2, 1)  # + the bucket's s3:TestEvent
    assert signals(store) == ["mallory"] and event_ids(store) == [call["eventID"]]


def test_two_consumers_together_store_each_record_once_and_alert_each_identity_once(sqs_env, store_url):
    trail = Trail(sqs_env)
    people = ["mallory", "eve", "trudy", "oscar"]
    records = []
    for number in range(24):
        batch = ses_calls(user(people[number % len(people)]), 2, minutes_ago=1 + number / 10)
        records += batch
        trail.put_log(f"part{number}", batch)
    stores = [Store(store_url) for _ in range(2)]
    # Observed for a while already (as after a backfill): otherwise the first batch stored would start the
    # account's observation, and calls of earlier files handled later would come before it.
    stores[0].set_observed_since(OWN_ACCOUNT, datetime.now(UTC) - timedelta(days=30))
    settings = settings_for(stores[0], trail)
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(consumer(settings, s).drain())) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # (a message may be handed to both consumers, as SQS delivers at least once: it is then stored once)
    assert len(results) == 2 and sum(r.stored for r in results) >= 24 and sum(r.unusable for r in results) == 0
    assert signals(stores[0]) == sorted(people)
    assert event_ids(stores[0]) == sorted(r["eventID"] for r in records)
    assert trail.counts() == (0, 0)
    for s in stores:
        s.engine.dispose()


def test_an_eventbridge_event_reaches_slack_seconds_after_it_reached_the_queue(sqs_env, sqlite_store):
    trail = Trail(sqs_env)
    with FakeSlack(channels={CHANNEL: ()}) as slack:
        settings = worker_settings(database_url=sqlite_store.url, source="sqs", sqs_queue_url=trail.queue_url,
                                   learning_days=0, slack_bot_token=slack.token, slack_alert_channel=CHANNEL,
                                   slack_api_url=slack.api_url, poll_seconds=300, lease_seconds=5)
        worker = Worker(settings, sqlite_store, stop=threading.Event())
        running = threading.Thread(target=worker.run)
        running.start()
        try:
            # consuming: the bucket's s3:TestEvent has been received and deleted
            wait_for(lambda: trail.counts() == (0, 0), "the consumer to take the test event")
            [call] = ses_calls(user("mallory"), 1)
            trail.send(eventbridge(call))
            # The outbox job ran at start and waits 30 s now: only the consumer's own post can be this quick.
            wait_for(lambda: len(slack.channel_messages(CHANNEL)) == 1, "the alert in Slack", patience=15)
            assert "mallory" in str(slack.channel_messages(CHANNEL)[0].blocks)
        finally:
            worker.stop.set()
            running.join(60)
        assert not running.is_alive()


# ── a batch that takes long, and a consumer killed in the middle of one (PostgreSQL holds them up) ─────


def waiting_on_a_lock(store: Store) -> bool:
    """Some other session of this database waits for a lock (the consumer, held up by the test's lock)."""
    with store.engine.connect() as connection:
        return bool(connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()").scalar())


class HeldEvents:
    """The `events` table locked by the test: a consumer stops mid-batch when it comes to store its calls."""

    def __init__(self, store: Store):
        self.connection = store.engine.connect()
        self.transaction = self.connection.begin()
        self.connection.exec_driver_sql("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        if self.transaction.is_active:
            self.transaction.rollback()
        self.connection.close()


def test_a_long_batch_keeps_its_messages_invisible_to_other_consumers(sqs_env, postgres_store):
    trail = Trail(sqs_env, visibility=3)
    trail.put_log("one", ses_calls(user("mallory"), 2))
    settings = settings_for(postgres_store, trail)
    assert consumer(settings, postgres_store).drain().ignored == 1  # the s3:TestEvent; the object's message is next
    trail.put_log("two", ses_calls(user("eve"), 1))
    extensions = []
    slow = consumer(settings, postgres_store)
    slow.sqs.meta.events.register("before-call.sqs.ChangeMessageVisibilityBatch", lambda **_: extensions.append(1))
    held = HeldEvents(postgres_store)
    try:
        drained = []
        running = threading.Thread(target=lambda: drained.append(slow.drain()))
        running.start()
        wait_for(lambda: waiting_on_a_lock(postgres_store), "the consumer held up mid-batch")
        # Four extensions, a third of the 3 s timeout apart: the batch has outlasted its first timeout.
        wait_for(lambda: len(extensions) >= 4, "the visibility extended while the batch is held up")
        other = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs_env)
        assert other.receive_message(QueueUrl=trail.queue_url, WaitTimeSeconds=0).get("Messages") is None
    finally:
        held.release()
    running.join(60)
    assert drained[0].stored == 1 and signals(postgres_store) == ["eve", "mallory"]
    assert trail.counts() == (0, 0)


def test_a_consumer_killed_mid_batch_loses_nothing_and_its_successor_alerts_each_identity_once(
        sqs_env, postgres_store, tmp_path):
    from tests.support.sesguard_processes import BOT_TOKEN, sesguard_env, start
    from tests.support.sesguard_processes import wait_for as wait_on_processes

    trail = Trail(sqs_env, visibility=2)
    people = ["mallory", "eve", "trudy"]
    records = [call for name in people for call in ses_calls(user(name), 2)]
    for number, name in enumerate(people):
        trail.put_log(f"part{number}", [r for r in records if r["userIdentity"]["userName"] == name])
    aws_env = {"AWS_ENDPOINT_URL_SQS": sqs_env, "AWS_ENDPOINT_URL_S3": sqs_env, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    with FakeSlack(token=BOT_TOKEN, channels={CHANNEL: ()}) as slack:
        env = sesguard_env(aws_env, slack.api_url, postgres_store.url, SESGUARD_SOURCE="sqs",
                           SESGUARD_SQS_QUEUE_URL=trail.queue_url, SESGUARD_LEARNING_DAYS="0",
                           SESGUARD_POLL_SECONDS="300", SESGUARD_TRAIL_BUCKETS=trail.bucket)
        held = HeldEvents(postgres_store)
        first = start(["worker"], env, tmp_path, "first")
        try:
            # The whole batch received (test event and the three objects' messages), and stuck storing it.
            wait_on_processes(lambda: trail.counts()[1] == 4 and waiting_on_a_lock(postgres_store),
                              "the first worker mid-batch", [first])
            first.kill()
        finally:
            held.release()
        assert event_ids(postgres_store) == []
        second = start(["worker"], env, tmp_path, "second")
        try:
            wait_on_processes(lambda: len(slack.channel_messages(CHANNEL)) == len(people) and trail.counts() == (0, 0),
                              "the successor's alerts", [second])
        finally:
            second.terminate()
        posted = [str(message.blocks) for message in slack.channel_messages(CHANNEL)]
    assert sorted(next(name for name in people if f":user/{name}" in text) for text in posted) == sorted(people)
    assert signals(postgres_store) == sorted(people)
    assert event_ids(postgres_store) == sorted(r["eventID"] for r in records)


def test_poll_once_drains_the_queue_posts_and_exits_1_when_a_message_was_left(sqs_env, sqlite_store, monkeypatch,
                                                                                capsys):
    import signal

    from bot.cli.commands import main

    trail = Trail(sqs_env)
    trail.put_log("one", ses_calls(user("mallory"), 1))
    with FakeSlack(channels={CHANNEL: ()}) as slack:
        for name, value in {"DATABASE_URL": sqlite_store.url, "SLACK_BOT_TOKEN": slack.token,
                            "SLACK_ALERT_CHANNEL": CHANNEL, "SLACK_API_URL": slack.api_url, "SESGUARD_SOURCE": "sqs",
                            "SESGUARD_SQS_QUEUE_URL": trail.queue_url, "SESGUARD_LEARNING_DAYS": "0",
                            "SESGUARD_TRAIL_BUCKETS": trail.bucket}.items():
            monkeypatch.setenv(name, value)
        handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            assert main(["poll", "--once"]) == 0
            assert len(slack.channel_messages(CHANNEL)) == 1
            trail.send("garbage")
            assert main(["poll", "--once"]) == 1
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
    err = capsys.readouterr().err
    assert "1 left for the redrive policy" in err
    assert f"sqs {trail.queue_url}: 2 messages, 1 stored, 1 ignored" in err


def test_a_consumer_that_keeps_receiving_keeps_the_source_healthy_however_long_it_has_run(sqs_env, store):
    """A worker started ten intervals ago that received a moment ago is healthy: a receive that works is the
    queue source's success (it has no places to list), not only a start of waiting."""
    from bot.health.report import FAILING_AFTER_INTERVALS
    from bot.worker.tables import PollState

    trail = Trail(sqs_env)
    settings = settings_for(store, trail)
    queue = consumer(settings, store)
    queue.consume_batch(threading.Event(), wait_seconds=0)
    started = datetime.now(UTC) - timedelta(seconds=settings.poll_seconds * 10)
    with store.session() as session:
        for row in session.exec(select(PollState).where(PollState.source == "sqs")):
            row.waiting_since = started
            session.add(row)
        session.commit()
    queue.consume_batch(threading.Event(), wait_seconds=0)

    soon = datetime.now(UTC) + timedelta(seconds=settings.poll_seconds * (FAILING_AFTER_INTERVALS - 1))
    report = health(store, settings, now=soon)
    assert report.sources and not any(source.failing for source in report.sources), report.lines()


def test_a_backlog_is_taken_in_full_receives_and_stored_together_and_a_trickle_as_it_comes(sqs_env, store):
    """Thirty EventBridge events waiting: one batch takes them in three full receives and a fourth that finds
    the queue empty, stores them together and deletes them; three waiting are taken by one receive (one that
    came back short says the queue has no more at once)."""
    trail = Trail(sqs_env)
    consumer_ = consumer(settings_for(store, trail), store)
    consumer_.drain()  # the bucket's s3:TestEvent
    receives = []
    consumer_.sqs.meta.events.register("before-call.sqs.ReceiveMessage", lambda **_: receives.append(1))
    calls = [call for number in range(30) for call in ses_calls(user(f"user{number % 7}"), 1, minutes_ago=number)]
    for start in range(0, 30, 10):
        trail.sqs.send_message_batch(QueueUrl=trail.queue_url, Entries=[
            {"Id": str(number), "MessageBody": eventbridge(call)}
            for number, call in enumerate(calls[start:start + 10])])

    batch = consumer_.consume_batch(threading.Event(), wait_seconds=1)
    assert (batch.received, batch.stored, batch.new_calls) == (30, 30, 30) and len(receives) == 4
    assert event_ids(store) == sorted(call["eventID"] for call in calls)
    assert trail.counts() == (0, 0)

    receives.clear()
    few = ses_calls(user("mallory"), 3)
    for call in few:
        trail.send(eventbridge(call))
    batch = consumer_.consume_batch(threading.Event(), wait_seconds=1)
    assert (batch.received, batch.stored, len(receives)) == (3, 3, 1)
    assert trail.counts() == (0, 0)


def test_a_deeply_nested_eventbridge_detail_neither_sinks_its_batch_nor_is_lost(sqs_env, store):
    """A detail whose requestParameters nest 300 levels: the batch's other message is stored and deleted, and
    the deep record itself is evaluated as it is (never written back to JSON), so its call is detected too."""
    trail = Trail(sqs_env)
    [deep] = ses_calls(user("mallory"), 1, event_name="ListIdentities")
    deep["requestParameters"] = nested(300)
    [plain] = ses_calls(user("alice"), 1)
    trail.send(eventbridge(deep))
    trail.send(eventbridge(plain))
    drained = consumer(settings_for(store, trail), store).drain()
    assert (drained.stored, drained.unusable, drained.signals) == (2, 0, 2)
    assert signals(store) == ["alice", "mallory"]
    assert event_ids(store) == sorted([deep["eventID"], plain["eventID"]])
    assert trail.counts() == (0, 0)


def test_an_event_put_by_an_account_of_the_organisation_passes_for_no_one_elses_cloudtrail(sqs_env, store):
    """Any account may put events on the organisation's bus. EventBridge refuses `PutEvents` a source beginning
    `aws.` and stamps `account` with the sender's: only an `aws.*` event whose account is the record's
    recipientAccountId is CloudTrail's; the rest are counted and left to the redrive policy, never alerted."""
    trail = Trail(sqs_env)
    production, sandbox = OWN_ACCOUNT, "999988887777"
    [forged] = ses_calls(user("admin"), 1)
    custom = json.loads(eventbridge(forged))
    custom.update({"source": "com.sandbox.tool", "account": sandbox})
    trail.send(json.dumps(custom))
    [relabelled] = ses_calls(user("operator"), 1)
    other_account = json.loads(eventbridge(relabelled))
    other_account["account"] = sandbox  # an aws.* source, but sent from another account than the record names
    trail.send(json.dumps(other_account))
    no_source = json.loads(eventbridge(ses_calls(user("nobody"), 1)[0]))
    del no_source["source"]
    trail.send(json.dumps(no_source))
    [real] = ses_calls(user("mallory"), 1, account=production)
    trail.send(eventbridge(real))
    drained = consumer(settings_for(store, trail), store).drain()
    assert (drained.stored, drained.unusable) == (1, 3)
    assert signals(store) == ["mallory"] and event_ids(store) == [real["eventID"]]
    assert any("com.sandbox.tool" in problem for problem in drained.problems)
    assert any(f"account {sandbox}" in problem for problem in drained.problems)
    with store.session() as session:
        assert session.get(QueueState, trail.queue_url).unusable == 3


def test_a_record_dated_in_the_future_is_bad_and_cannot_blind_its_account(sqs_env, store):
    """Stored first for its account, a record dated 2099-06-01 started the account's observation: learning
    silently until 2099, a later real enumeration never alerted, no learning report ever."""
    trail = Trail(sqs_env)
    [future] = ses_calls(user("decoy"), 1)
    future["eventTime"] = "2099-06-01T00:00:00Z"
    trail.send(eventbridge(future))
    settings = settings_for(store, trail, learning_days=7)
    first = consumer(settings, store).drain()
    assert (first.new_calls, first.signals) == (0, 0)
    with store.session() as session:
        assert session.get(Scope, OWN_ACCOUNT) is None  # no observation started
    # The real history starts now: a week of it learned, then the real attacker from two regions.
    store.set_observed_since(OWN_ACCOUNT, datetime.now(UTC) - timedelta(days=8))
    trail.send(eventbridge(ses_calls(user("mallory"), 1, region="eu-west-1")[0]))
    trail.send(eventbridge(ses_calls(user("mallory"), 1, region="us-east-1")[0]))
    second = consumer(settings, store).drain()
    assert second.signals == 1 and signals(store) == ["mallory"]


def test_only_the_configured_trail_buckets_are_read_and_only_records_of_the_account_their_key_names(sqs_env, store):
    """A notification names a bucket of the sender's choosing: its records raised alerts for production. Only
    the trail buckets sesguard is configured with are read; and in them only the records of the account the
    object's key names (CloudTrail writes each account's records under its own folder)."""
    trail, stranger = Trail(sqs_env), Trail(sqs_env)
    stranger.put_log("planted", ses_calls(user("admin"), 2))  # the stranger's own bucket notifies the queue too
    trail.send(notification(stranger.bucket, stranger.key("planted")))
    sandbox = "999988887777"
    forged = ses_calls(user("operator"), 1)  # production's record, in the sandbox account's folder
    mine = ses_calls(user("tester", account=sandbox), 1, account=sandbox)
    trail.put_log("sandbox", forged + mine, account=sandbox)
    trail.put_log("real", ses_calls(user("mallory"), 1))
    settings = settings_for(store, trail)
    drained = consumer(settings, store).drain()
    assert drained.unusable == 1 and any(f"bucket {stranger.bucket}" in p for p in drained.problems)
    assert drained.foreign_records == 1
    assert signals(store) == ["mallory", "tester"]
