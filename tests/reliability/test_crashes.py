"""Crashes of a real `sesguard worker` process (SPEC §3: the outbox never loses an alert, never posts it twice).

The kills land in exact windows: the Slack stand-in holds the worker's post — before carrying it out, or
after carrying it out with the answer held back — and reports when it has it, so that the test kills the
process inside the window instead of racing a sleep against it.
"""

from __future__ import annotations

import signal

import pytest

from bot.store.lease import Lease
from bot.worker.scheduler import SCHEDULER_LEASE
from detection.store import SignalHistory, utcnow
from tests.support.local_aws import ses_calls, user
from tests.support.sesguard_processes import CHANNEL, leaked_secrets, wait_for

pytestmark = [pytest.mark.processes, pytest.mark.slow]

NEW_PEOPLE = ("mallory", "oscar", "trent")


def backfilled(deployment) -> None:
    """A worker's first pass learned the history; then it was stopped."""
    deployment.aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=12))


def new_identities(deployment, *names: str) -> None:
    deployment.aws.api.add_events(*[call for name in names for call in ses_calls(user(name), 2)])


def more_passes(deployment, worker, count: int = 1) -> None:
    """Let the worker run `count` more whole polls (each followed by its outbox pass)."""
    for _ in range(count):
        moment = utcnow()
        wait_for(lambda moment=moment: deployment.polled_since(moment), "another poll", [worker])


@pytest.mark.parametrize("window", ["before the post reached Slack", "after Slack posted, before the ts was stored"])
def test_a_worker_killed_mid_post_leaves_every_alert_once_in_the_channel(deployment, window):
    lost_answer = window.startswith("after")
    backfilled(deployment)
    first = deployment.worker("worker-killed")
    wait_for(deployment.watermark, "the backfill", [first])
    hold = deployment.slack.hold_answer("chat.postMessage") if lost_answer else \
        deployment.slack.hold_and_drop("chat.postMessage")
    new_identities(deployment, *NEW_PEOPLE)
    wait_for(hold.reached.is_set, "the first post", [first])

    stored = deployment.signals()
    assert [row.identity.rsplit("/", 1)[-1] for row in stored] == list(NEW_PEOPLE)
    assert all(row.slack_ts is None for row in stored)  # stored first, nothing recorded as posted yet
    assert len(deployment.slack.channel_messages(CHANNEL)) == (1 if lost_answer else 0)
    first.kill()
    hold.release.set()

    restarted = deployment.worker("worker-restarted")
    wait_for(lambda: all(row.slack_ts for row in deployment.signals()), "every alert recorded", [restarted])
    more_passes(deployment, restarted)
    assert restarted.terminate() == 0

    deployment.assert_each_alert_once()
    notes = [h.detail for h in deployment.rows(SignalHistory) if h.action == "posted"]
    assert len(notes) == len(NEW_PEOPLE)
    assert sum("found in the channel after a lost answer" in note for note in notes) == (1 if lost_answer else 0)
    assert leaked_secrets(*deployment.outputs()) == {}
def test_sigterm_stops_the_worker_between_two_posts_and_a_restart_posts_the_rest(deployment):
    backfilled(deployment)
    worker = deployment.worker()
    wait_for(deployment.watermark, "the backfill", [worker])
    hold = deployment.slack.hold_answer("chat.postMessage")
    names = ("mallory", "oscar", "peggy")
    new_identities(deployment, *names)
    wait_for(hold.reached.is_set, "the first post", [worker])

    worker.process.send_signal(signal.SIGTERM)  # while a post is under way
    hold.release.set()
    assert worker.process.wait(timeout=60) == 0
    assert "stopped" in worker.output()

    rows = deployment.signals()
    posted = [row for row in rows if row.slack_ts]
    # The post under way finished and was recorded; no further post started; no claim is left behind.
    assert len(posted) == 1 and len(deployment.slack.channel_messages(CHANNEL)) == 1
    assert all(row.claimed_by is None for row in rows)
    assert Lease(deployment.store, SCHEDULER_LEASE, 1).current_holder() is None

    restarted = deployment.worker("worker-restarted")
    wait_for(lambda: all(row.slack_ts for row in deployment.signals()), "the other alerts", [restarted])
    assert restarted.terminate() == 0
    deployment.assert_each_alert_once()
    assert len(deployment.alerts_in_channel()) == len(names)
