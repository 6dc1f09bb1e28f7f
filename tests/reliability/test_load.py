"""Load (SPEC §3–§4): a thousand signals at once, and posting passes that run at the same time.

A real `sesguard worker` starts on 1,000 stored signals and posts at Slack's pace of about one message
a second per channel (measured on the stand-in's arrival times); SIGTERM stops it between two posts.
Posting the rest at that pace would take a quarter of an hour, so the rest goes through the same outbox
in-process without the pause (`post_pending(interval=0)`), with Slack failing on the way: every signal
ends up in the channel exactly once.
"""

from __future__ import annotations

import threading

import pytest

from bot.alerts.notifier import post_pending
from bot.config.settings import load_settings
from detection.record import to_call
from detection.scan import detect
from tests.support.sesguard_processes import BOT_TOKEN, CHANNEL, leaked_secrets, wait_for
from tests.support.slack_harness import NO_LEARNING, cloudtrail_record

pytestmark = [pytest.mark.processes, pytest.mark.slow]

SIGNALS = 1000
PACED_POSTS = 3
# Slack's limit is about one message a second per channel; arrival times jitter by a few milliseconds.
ABOUT_ONE_SECOND = 0.9


def store_many(store, count: int, prefix: str = "user") -> None:
    records = [cloudtrail_record(user=f"{prefix}{n:04d}", ip=f"198.51.100.{n % 250}") for n in range(count)]
    detect([to_call(record) for record in records], NO_LEARNING, store)


def outbox_settings(deployment, **overrides):
    return load_settings(_env_file=None, slack_bot_token=BOT_TOKEN, slack_alert_channel=CHANNEL,
                         slack_api_url=deployment.slack.api_url, database_url=deployment.store.url, **overrides)


def post_arrivals(slack, alerts_only: bool = False) -> list[float]:
    """When posts to the channel arrived: all of them (the worker's automatic investigations reply in the
    alerts' threads, at the same pace), or the alerts alone."""
    return [call.at for call in slack.calls if call.method == "chat.postMessage"
            and not (alerts_only and call.params.get("thread_ts"))]


def test_a_thousand_signals_at_once_are_paced_and_each_posted_exactly_once(deployment):
    store_many(deployment.store, SIGNALS)
    assert len(deployment.signals()) == SIGNALS
    worker = deployment.worker()
    wait_for(lambda: len(deployment.slack.channel_messages(CHANNEL)) >= PACED_POSTS, "the first posts", [worker])
    assert worker.terminate() == 0  # between two posts, however many are waiting
    arrivals = post_arrivals(deployment.slack)
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    paced = post_arrivals(deployment.slack, alerts_only=True)
    assert len(paced) >= PACED_POSTS and min(gaps) >= ABOUT_ONE_SECOND, gaps
    assert all(row.claimed_by is None for row in deployment.signals())

    slack = deployment.slack
    for fault in ("ratelimited", "server_error", "drop", "lost_answer"):
        slack.fail("chat.postMessage", fault)
    passes = []
    while not passes or passes[-1].pending:  # as the worker does: a pass Slack stops is resumed by the next
        passes.append(post_pending(deployment.store, outbox_settings(deployment), interval=0))
        assert len(passes) <= 3, [p.line() for p in passes]
    assert sum(p.posted + p.found for p in passes) == SIGNALS - len(paced)
    deployment.assert_each_alert_once()
    assert len(slack.channel_messages(CHANNEL)) == SIGNALS and slack.refused == []
    assert leaked_secrets(*deployment.outputs()) == {}


def test_posting_passes_at_the_same_time_share_the_channels_pace(deployment):
    """The poll's own outbox pass and the outbox job (or a second process) may run together."""
    store_many(deployment.store, 8)
    settings = outbox_settings(deployment)
    interval = 0.25
    start = threading.Barrier(3)
    results = []

    def one_pass() -> None:
        start.wait()
        results.append(post_pending(deployment.store, settings, interval=interval))

    passes = [threading.Thread(target=one_pass) for _ in range(3)]
    for thread in passes:
        thread.start()
    for thread in passes:
        thread.join()
    assert sum(result.posted for result in results) == 8
    arrivals = post_arrivals(deployment.slack)
    assert min(later - earlier for earlier, later in zip(arrivals, arrivals[1:])) >= interval * ABOUT_ONE_SECOND
    deployment.assert_each_alert_once()

