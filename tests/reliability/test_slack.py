"""Slack misbehaving under real `sesguard worker` and `sesguard serve` processes (SPEC §3–§4).

- Posting through an invalid token, 429s with Retry-After, 500s, dropped connections and a lost answer:
  every alert lands in the channel exactly once when Slack recovers.
- An alert Slack refuses (`invalid_blocks`) is set aside and tried again later; one with forged, oversized
  access keys is posted cut to Block Kit's limits; neither holds up the alerts behind it.
- Slack hanging altogether: `serve` still acknowledges 50 concurrent slash commands (and button clicks)
  within Slack's 3 seconds; the answers follow once Slack is back.
- Slack's Web API down (hanging, or refusing connections) when `serve` starts: nothing it acknowledges
  waits for Slack, so `/sesguard help` and a click are acknowledged in time from the first request on.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.alerts.notifier import post_pending
from bot.config.settings import load_settings
from detection.store import SignalHistory
from tests.support import records
from tests.support.cuttable_link import CuttableLink
from tests.support.local_aws import OWN_ACCOUNT, ago, ses_calls, user
from tests.support.sesguard_processes import (
    BOT_TOKEN,
    CHANNEL,
    TRIAGER,
    closed_port,
    leaked_secrets,
    wait_for,
)
from tests.support.slack_harness import cloudtrail_record, store_signals

pytestmark = [pytest.mark.processes, pytest.mark.slow]

# Slack shows "operation_timeout" to the user when the app has not answered within 3 seconds.
SLACK_ACK_DEADLINE_SECONDS = 3.0
CONCURRENT_COMMANDS = 50


def test_alerts_survive_an_invalid_token_429_500_a_dropped_connection_and_a_lost_answer(deployment):
    deployment.aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
    revoked = deployment.worker("worker-revoked-token", SLACK_BOT_TOKEN="xoxb-revoked-0000")
    wait_for(deployment.watermark, "the backfill", [revoked])
    names = ("mallory", "oscar", "peggy")
    deployment.aws.api.add_events(*[call for name in names for call in ses_calls(user(name), 2)])
    wait_for(lambda: revoked.output().count("invalid_auth") >= 2, "two passes refused", [revoked])
    assert deployment.slack.channel_messages(CHANNEL) == []
    assert revoked.terminate() == 0

    # The operator fixes the token; Slack then rate-limits, fails, drops and loses an answer, in turn.
    slack = deployment.slack
    slack.fail("chat.postMessage", "ratelimited", times=1, retry_after=1)
    slack.fail("chat.postMessage", "server_error", times=1)
    slack.fail("chat.postMessage", "drop", times=1)
    slack.fail("chat.postMessage", "lost_answer", times=1)
    fixed = deployment.worker("worker")
    wait_for(lambda: len(deployment.signals()) == len(names) and all(r.slack_ts for r in deployment.signals()),
             "every alert posted", [fixed])
    assert fixed.terminate() == 0

    deployment.assert_each_alert_once()
    faults = [call.fault for call in slack.calls if call.method == "chat.postMessage" and call.fault]
    assert faults == ["ratelimited", "server_error", "drop", "lost_answer"]
    # The post after the 429 came no sooner than its Retry-After second (as the stand-in saw them arrive).
    posts = [call for call in slack.calls if call.method == "chat.postMessage"]
    limited = next(call for call in posts if call.fault == "ratelimited")
    retried = next(call for call in posts
                   if call.at > limited.at and call.params["metadata"] == limited.params["metadata"])
    assert retried.at - limited.at >= 1.0
    assert leaked_secrets(*deployment.outputs()) == {}


def forged_key_calls(count: int = 8, length: int = 400) -> list[dict]:
    """Calls by one IAM user, each with a forged access key ID of `length` characters: `count` reasons."""
    return [records.record(records.iam_user("forger", OWN_ACCOUNT, key=f"AKIA{n}" + "X" * (length - 5)),
                           time=ago(minutes=1, seconds=n)) for n in range(count)]


def test_a_refused_alert_and_a_forged_one_never_hold_up_the_next(deployment):
    """Slack refuses the first alert of a burst (`invalid_blocks`); another carries eight forged 400-character
    access keys (once unrenderable). Every alert is posted once; the refused one after a backoff."""
    slack = deployment.slack
    deployment.aws.api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
    worker = deployment.worker()
    wait_for(deployment.watermark, "the backfill", [worker])
    slack.fail("chat.postMessage", "invalid_blocks", times=1)
    deployment.aws.api.add_events(*ses_calls(user("mallory"), 2), *forged_key_calls(), *ses_calls(user("oscar"), 1))
    wait_for(lambda: len(deployment.signals()) == 3 and all(row.slack_ts for row in deployment.signals()),
             "every alert posted", [worker])
    assert worker.terminate() == 0

    deployment.assert_each_alert_once()
    assert slack.refused == []  # the forged alert was cut to Block Kit's limits, not refused
    # the alerts themselves; thread replies (the automatic investigations' summaries) carry no alert metadata
    posts = [call for call in slack.calls if call.method == "chat.postMessage" and not call.params.get("thread_ts")]
    [refusal] = [call for call in posts if call.fault == "invalid_blocks"]
    refused_id = refusal.params["metadata"]["event_payload"]["signal_id"]
    later = [(call.at - refusal.at, call.params["metadata"]["event_payload"]["signal_id"])
             for call in posts if call.at > refusal.at]
    others = [after for after, signal_id in later if signal_id != refused_id]
    [retry] = [after for after, signal_id in later if signal_id == refused_id]
    assert len(others) == 2 and max(others) < retry, (others, retry)  # the others went first, not behind it
    assert retry >= 0.3  # one poll interval of backoff
    steps = [h.action for h in deployment.rows(SignalHistory) if h.signal_id == refused_id]
    assert steps == ["detected", "set aside", "posted"]
    assert "set aside" in worker.output() and "invalid_blocks" in worker.output()
    print(f"next alert {min(others):.2f} s after the refusal, the refused one retried after {retry:.2f} s")
    assert leaked_secrets(*deployment.outputs()) == {}


def _timed(call) -> tuple[int | str, float]:
    started = time.monotonic()
    try:
        status = call().status
    except OSError as error:  # no answer at all: the test says so instead of hanging
        status = type(error).__name__
    return status, time.monotonic() - started


def _posted_alert(deployment) -> str:
    [signal_id] = store_signals(deployment.store, cloudtrail_record(user="mallory"))
    settings = load_settings(_env_file=None, slack_bot_token=BOT_TOKEN, slack_alert_channel=CHANNEL,
                             slack_api_url=deployment.slack.api_url, database_url=deployment.store.url)
    assert post_pending(deployment.store, settings, interval=0).posted == 1
    return signal_id


def _click(signal_id: str, ts: str, user: str) -> dict:
    """A click on the alert's Escalate button, as Slack sends it."""
    return {"type": "block_actions", "user": {"id": user}, "team": {"id": "T0TEAM"}, "api_app_id": "A0SESGUARD",
            "trigger_id": f"t-{user}", "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL},
            "channel": {"id": CHANNEL}, "message": {"ts": ts},
            "actions": [{"type": "button", "action_id": "sesguard.escalate", "value": signal_id, "block_id": "triage",
                         "action_ts": "1.0"}]}


def test_fifty_concurrent_commands_are_acknowledged_in_time_also_while_slack_hangs(deployment):
    signal_id = _posted_alert(deployment)
    ts = deployment.signals()[0].slack_ts
    served = deployment.serve()
    slack = deployment.slack
    commands = ["status", "help", "history mallory", "suppressions", "history 203.0.113.7 7"]

    def fifty(round_name: str) -> list[tuple[int, float]]:
        def one(n: int) -> tuple[int, float]:
            url = slack.response_url(f"{round_name}-{n}")
            return _timed(lambda: served.command(commands[n % len(commands)], TRIAGER, url))

        with ThreadPoolExecutor(CONCURRENT_COMMANDS) as pool:
            return list(pool.map(one, range(CONCURRENT_COMMANDS)))

    healthy = fifty("healthy")
    assert all(status == 200 for status, _ in healthy)
    assert max(seconds for _, seconds in healthy) < SLACK_ACK_DEADLINE_SECONDS, healthy
    wait_for(lambda: len(slack.responses) == CONCURRENT_COMMANDS, "the fifty answers")

    # Slack hangs: every API call and response URL waits until released.
    stalls = [slack.stall(target) for target in ("response_url", "chat.postEphemeral", "chat.update",
                                                   "chat.postMessage", "views.open")]
    hanging = fifty("hanging")
    clicks = [_timed(lambda u=u: served.sender.interaction(_click(signal_id, ts, u))) for u in (TRIAGER, "UOUTSIDER")]
    assert all(status == 200 for status, _ in hanging + clicks)
    assert max(seconds for _, seconds in hanging + clicks) < SLACK_ACK_DEADLINE_SECONDS, hanging + clicks
    assert len(slack.responses) == CONCURRENT_COMMANDS  # nothing got through while Slack hung

    for stall in stalls:
        stall.release.set()
    wait_for(lambda: len(slack.responses) == 2 * CONCURRENT_COMMANDS, "the answers once Slack is back")
    wait_for(lambda: deployment.signals()[0].status == "escalated", "the triager's click applied")
    assert [c["user"] for c in slack.calls_to("chat.postEphemeral")] == ["UOUTSIDER"]  # the refusal
    assert leaked_secrets(*deployment.outputs()) == {}


def test_clicks_are_acknowledged_while_slack_hangs_or_is_unreachable_also_for_usergroup_members(deployment):
    """The triage usergroup is looked up before a click is acknowledged: a hanging or unreachable Slack
    must neither delay the ack past 3 seconds nor turn it into a 500."""
    signal_id = _posted_alert(deployment)
    slack = deployment.slack
    slack.usergroups["S0TRIAGE"] = ["UMEMBER01"]
    host, port = slack.base.rsplit("/", 1)[-1].split(":")
    with CuttableLink(host, int(port)) as link:
        served = deployment.serve(SLACK_TRIAGE_USERGROUP="S0TRIAGE",
                                  SLACK_API_URL=f"http://127.0.0.1:{link.port}/api/")
        ts = deployment.signals()[0].slack_ts
        hang = [slack.stall(method) for method in ("usergroups.users.list", "chat.postEphemeral", "chat.update",
                                                   "chat.postMessage")]
        hanging = [_timed(lambda: served.sender.interaction(_click(signal_id, ts, "UMEMBER01")))]
        for stall in hang:
            stall.release.set()
        link.cut()  # Slack unreachable: every connection refused
        unreachable = [_timed(lambda u=u: served.sender.interaction(_click(signal_id, ts, u)))
                       for u in ("UMEMBER02", "UOUTSIDER", TRIAGER)]
        unreachable.append(_timed(lambda: served.command("status", TRIAGER, slack.response_url("down"))))
    assert all(status == 200 for status, _ in hanging + unreachable), hanging + unreachable
    assert max(seconds for _, seconds in hanging + unreachable) < SLACK_ACK_DEADLINE_SECONDS, hanging + unreachable
    wait_for(lambda: deployment.signals()[0].status == "escalated", "the triager's click applied in the store")
    assert "Traceback" not in served.running.output()
    assert leaked_secrets(*deployment.outputs()) == {}


@pytest.mark.parametrize("slack_down", ["hanging", "refusing connections"])
def test_serve_started_while_slack_is_down_acknowledges_help_and_clicks_in_time(deployment, slack_down):
    """Nothing before an ack asks Slack who the bot is: a cold start during a Slack outage answers at once."""
    signal_id = _posted_alert(deployment)
    ts = deployment.signals()[0].slack_ts
    slack = deployment.slack
    if slack_down == "hanging":
        outage = slack.stall_everything()
        served = deployment.serve()
    else:
        served = deployment.serve(SLACK_API_URL=f"http://127.0.0.1:{closed_port()}/api/")
    patience = 2 * SLACK_ACK_DEADLINE_SECONDS  # a broken ack fails the test in time instead of hanging it
    acks = {"/sesguard help": _timed(lambda: served.command("help", "UOUTSIDER", slack.response_url("help"),
                                                            timeout=patience)),
            "Escalate": _timed(lambda: served.sender.interaction(_click(signal_id, ts, TRIAGER), timeout=patience))}
    assert {what: status for what, (status, _) in acks.items()} == dict.fromkeys(acks, 200), acks
    assert max(seconds for _, seconds in acks.values()) < SLACK_ACK_DEADLINE_SECONDS, acks
    wait_for(lambda: deployment.signals()[0].status == "escalated", "the click applied in the store")

    if slack_down == "hanging":
        outage.release.set()
        wait_for(lambda: any(call["ts"] == ts for call in slack.calls_to("chat.update", answered_only=True)),
                 "the alert updated in place once Slack is back")
    wait_for(lambda: [name for name, _ in slack.responses] == ["help"], "the help text delivered")
    assert "Traceback" not in served.running.output()
    assert leaked_secrets(*deployment.outputs()) == {}
