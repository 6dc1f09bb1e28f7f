"""`GET /metrics` (SPEC §11) on the web app, scraped over HTTP and read with Prometheus's own parser: the store's
figures after real activity (an alert posted through the Slack stand-in, a click on it, answers, pages,
investigations, polling), no label carrying a value from CloudTrail or Slack, and an unreadable store said as a
figure rather than a failed scrape. The processes' own test (`serve` and the worker) is in test_metrics_processes.py."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from bot.contact.tables import Contact
from bot.investigate.tables import PENDING, POSTED, Investigation
from bot.page.tables import PAGE_ACCEPTED, Page
from bot.worker.tables import PollState
from detection.store import utcnow
from tests.support.local_aws import ses_calls, user
from tests.support.metrics import SESGUARD_WORDS, scrape
from tests.support.slack_harness import (
    ACCOUNT,
    CHANNEL,
    TRIAGER,
    Harness,
    cloudtrail_record,
    migrated_sqlite,
    store_signals,
)
from tests.support.slack_signing import post
from tests.support.sqs_trail import Trail, consumer

ESCALATE = "sesguard.escalate"
# Values a record or a payload may carry, each of which must never reach a label (nor the page at all).
HOSTILE = 'x"}\n<!channel> 1'


def add(bot, *rows) -> None:
    with bot.store.session() as session:
        session.add_all(rows)
        session.commit()


def test_the_stores_figures_after_an_alert_a_click_answers_pages_and_a_poll(bot):
    [posted] = store_signals(bot.store, cloudtrail_record(user="mallory", ip="198.51.100.23"))
    assert bot.post_alerts().posted == 1
    ts = bot.alert(posted).slack_ts
    assert bot.click(ESCALATE, TRIAGER, CHANNEL, ts).status == 200  # the first action of a person
    bot.settle()
    [waiting] = store_signals(bot.store, cloudtrail_record(user="oscar"))  # stored, not posted yet
    soon = utcnow() + timedelta(hours=1)
    add(bot,
        Contact(signal_id=posted, slack_user_id="U0PERSON1", asked_by=TRIAGER, deadline=soon, answer="timeout"),
        Contact(signal_id=posted, slack_user_id="U0PERSON2", asked_by=TRIAGER, deadline=soon, answer="no"),
        Contact(signal_id=waiting, slack_user_id="U0PERSON3", asked_by=TRIAGER, deadline=soon),
        Page(history_id=1, signal_id=posted, event_action="trigger", outcome=PAGE_ACCEPTED),
        Page(history_id=2, signal_id=posted, event_action="trigger"),
        Page(history_id=3, signal_id=posted, event_action="trigger", outcome=HOSTILE),
        Investigation(signal_id=posted, window_start=utcnow(), window_end=soon, requested_by="sesguard",
                      state=POSTED, error="AccessDenied"),
        Investigation(signal_id=waiting, window_start=utcnow(), window_end=soon, requested_by=TRIAGER,
                      state=PENDING),
        PollState(source="lookup", account_id=ACCOUNT, region="us-east-1", watermark=utcnow() - timedelta(minutes=5),
                  last_success_at=utcnow()))

    scraped = scrape(f"{bot.base}/metrics")

    assert scraped.value("sesguard_alerts_posted_total") == 1 and scraped.types["sesguard_alerts_posted"] == "counter"
    assert scraped.value("sesguard_alerts_waiting") == 1 and scraped.value("sesguard_alerts_failed") == 0
    assert scraped.value("sesguard_alerts_oldest_waiting_seconds") >= 0
    assert scraped.total("sesguard_signals", status="escalated") == 1 and scraped.total("sesguard_signals") == 2
    assert scraped.total("sesguard_signals", severity=bot.alert(posted).severity) >= 1
    assert scraped.value("sesguard_contact_questions", answer="timeout") == 1
    assert scraped.value("sesguard_contact_questions", answer="no") == 1
    assert scraped.value("sesguard_contact_questions", answer="waiting") == 1
    assert [scraped.value("sesguard_pages", outcome=outcome) for outcome in ("accepted", "waiting", "other")] == [1] * 3
    assert scraped.value("sesguard_investigations", state="failed") == 1
    assert scraped.value("sesguard_investigations", state="pending") == 1
    assert scraped.value("sesguard_investigations", state="posted") == 0
    # the click came within a minute of the alert's storing: one first action, in the first bucket
    assert scraped.types["sesguard_time_to_first_triage_action_seconds"] == "histogram"
    assert scraped.value("sesguard_time_to_first_triage_action_seconds_count") == 1
    assert scraped.value("sesguard_time_to_first_triage_action_seconds_bucket", le="60.0") == 1
    assert 290 <= scraped.value("sesguard_poll_lag_seconds", source="lookup") <= 400
    assert scraped.value("sesguard_poll_places", source="lookup") == 1
    assert scraped.value("sesguard_poll_failing_places", source="lookup") == 0
    assert scraped.value("sesguard_store_up") == 1
    assert scraped.value("sesguard_lookup_events_requests_total") >= 0  # this process's own, present from the start
    # Labels are sesguard's words and sources' configured names; nothing of a record or a payload. The source
    # labels are checked on the store's figures: the in-memory failure counter also names every source that other
    # tests polled in this same process.
    assert scraped.label_values("le", "source") <= SESGUARD_WORDS
    assert {value for key in scraped.samples["sesguard_poll_places"] for _, value in key} == {"lookup"}
    for value in (ACCOUNT, "arn:", "mallory", "oscar", "198.51.100.23", "203.0.113.7", TRIAGER, CHANNEL, "<!channel>",
                  "U0PERSON", "AccessDenied"):
        assert value not in scraped.text


def test_an_unreadable_store_is_a_figure_and_the_scrape_still_answers(bot):
    with bot.store.engine.begin() as connection:  # the store breaks under a running app
        connection.execute(sa.text("ALTER TABLE signals RENAME TO signals_gone"))
    scraped = scrape(f"{bot.base}/metrics")
    assert scraped.value("sesguard_store_up") == 0
    assert "sesguard_alerts_posted_total" not in scraped.samples
    assert "sesguard_lookup_events_requests_total" in scraped.samples  # the process's own figures still answer


def test_metrics_answer_get_only_and_a_name_filter_reads_one_family(bot):
    assert post(f"{bot.base}/metrics", b"", {}).status == 405
    scraped = scrape(f"{bot.base}/metrics?name[]=sesguard_store_up")
    assert set(scraped.samples) == {"sesguard_store_up"}


def test_the_queues_backlog_and_the_messages_left_for_its_redrive_policy(aws, s3_endpoint, monkeypatch, tmp_path):
    """SESGUARD_SOURCE=sqs: a real consumer drains a queue on moto's server (a log file's notification and one
    message it cannot use), then the web app is scraped."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    trail = Trail(s3_endpoint)
    trail.put_log("one", ses_calls(user("mallory"), 1))
    trail.send(HOSTILE)  # not a notification: left on the queue for its redrive policy
    with Harness(migrated_sqlite(tmp_path), source="sqs", sqs_queue_url=trail.queue_url,
                 trail_buckets=[trail.bucket]) as bot:
        drained = consumer(bot.settings, bot.store).drain()
        assert (drained.stored, drained.unusable) == (1, 1)
        scraped = scrape(f"{bot.base}/metrics")
    assert scraped.value("sesguard_queue_unusable_messages_total") == 1
    assert scraped.types["sesguard_queue_unusable_messages"] == "counter"
    assert scraped.value("sesguard_queue_backlog") + scraped.value("sesguard_queue_in_flight") >= 1  # left, not deleted
    assert scraped.value("sesguard_queue_oldest_message_seconds") >= 0
    assert trail.queue_url not in scraped.text and trail.bucket not in scraped.text
