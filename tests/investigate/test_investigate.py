"""Investigate (SPEC §6) through the signed HTTP endpoint, against the CloudTrail stand-in over real HTTP:
the button, its summary in the alert's thread, the escalation to critical, the pace shared with a poll,
and `/sesguard investigate`."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from sqlmodel import select

from bot.investigate.tables import Investigation
from bot.worker.ingest.poll import poll_once
from detection.pacing import RequestPacer
from detection.sources.lookup import REQUESTS_PER_WINDOW, SAFETY_MARGIN_SECONDS, WINDOW_SECONDS, LookupSource
from detection.store import SignalHistory
from tests.support import records
from tests.support.attack_story import FOLLOW_ON, IP, KEY, NEW_KEY, attack, call
from tests.support.clocks import SteppingClock
from tests.support.local_aws import OWN_ACCOUNT, worker_settings
from tests.support.slack_harness import CHANNEL, OUTSIDER, TRIAGER, Harness, migrated_sqlite, store_signals

INVESTIGATE = "sesguard.investigate"
MALLORY = f"arn:aws:iam::{OWN_ACCOUNT}:user/mallory"
ESCALATED = "critical: follow-on abuse"
SLACK_LIMITS = {"blocks": 50, "section": 3000, "field": 2000}


@pytest.fixture
def harness_options(aws):
    return {"auto_investigate": "off"}


def alert_of(bot: Harness, aws, story) -> tuple[str, str]:
    """The story in CloudTrail, its enumeration detected and posted as an alert: (signal ID, alert ts)."""
    aws.api.add_events(*story.everything)
    [signal_id] = store_signals(bot.store, *story.enumeration)
    assert bot.post_alerts().posted == 1
    return signal_id, bot.alert(signal_id).slack_ts


def thread(bot: Harness, ts: str) -> list:
    return bot.slack.replies(CHANNEL, ts)


def escalations(bot: Harness, signal_id: str) -> list[SignalHistory]:
    with bot.store.session() as session:
        return list(session.exec(select(SignalHistory).where(SignalHistory.signal_id == signal_id,
                                                              SignalHistory.action == ESCALATED)))


def section_texts(blocks: list[dict]) -> list[str]:
    texts = []
    for block in blocks:
        if block.get("text"):
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])] + [e.get("text", "") for e in block.get("elements", [])]
    return texts


def assert_within_slack_limits(blocks: list[dict]) -> None:
    assert len(blocks) <= SLACK_LIMITS["blocks"]
    for block in blocks:
        if block.get("text"):
            assert len(block["text"]["text"]) <= SLACK_LIMITS["section"]
        assert len(block.get("fields", [])) <= 10
        assert all(len(f["text"]) <= SLACK_LIMITS["field"] for f in block.get("fields", []))


# ── the button ───────────────────────────────────────────────────────────────────────────────────────


def test_every_alert_has_the_investigate_button(bot, aws):
    signal_id, ts = alert_of(bot, aws, attack())
    assert bot.buttons(CHANNEL, ts)[-1] == INVESTIGATE
    assert bot.button(CHANNEL, ts, INVESTIGATE)["value"] == signal_id


def test_the_summary_lists_exactly_the_attackers_other_calls_and_the_signal_becomes_critical_once(bot, aws):
    story = attack(second_region="eu-west-1")
    signal_id, ts = alert_of(bot, aws, story)

    reply = bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
    bot.settle()

    assert reply.status == 200
    [line, summary] = thread(bot, ts)
    # the escalation line: the channel mentioned once, the calls named
    assert line.text.startswith("<!channel> :rotating_light: *Follow-on abuse* by")
    assert all(api in line.text for api in FOLLOW_ON) and line.text.count("<!channel>") == 1
    body = json.dumps(summary.blocks)
    assert "<!channel>" not in body and "<!channel>" not in summary.text
    follow_on = next(t for t in section_texts(summary.blocks) if "*Follow-on abuse*" in t)
    assert re.findall(r"• \*([^*]+)\* ×(\d+)", follow_on) == [(api, n) for api, n in zip(FOLLOW_ON, ("3", "1", "1"))]
    apis = next(t for t in section_texts(summary.blocks) if t.startswith("*Calls per API*"))
    assert re.findall(r"• (?::pencil2: )?(\S+) ×(\d+)", apis) == [
        ("ses:SendEmail", "4"), ("iam:CreateAccessKey", "1"), ("ses:UpdateAccountSendingEnabled", "1"),
        ("iam:ListUsers", "3"), ("s3:ListBuckets", "2"), ("sts:GetCallerIdentity", "1")]
    assert "12 other calls" in body and "3 calls to 1 API were denied" in body
    assert NEW_KEY in body and KEY in body and IP in body
    # none of the unrelated calls: the namesake EC2 session, other users, the call three hours before
    assert "iam:CreateUser" not in body and "DescribeInstances" not in body

    # the signal is critical, the alert shows it in place, the pager's history row is there once
    row = bot.alert(signal_id)
    assert row.severity == "critical" and row.follow_on_abuse == ["SendEmail", "UpdateAccountSendingEnabled",
                                                                     "CreateAccessKey"]
    assert row.reasons[0] == ("follow-on abuse after the enumeration: "
                              "SendEmail, UpdateAccountSendingEnabled, CreateAccessKey")
    assert row.status == "new"
    [update] = bot.slack.calls_to("chat.update")
    assert update["ts"] == ts and "Severity: CRITICAL" in json.dumps(update["blocks"])
    assert len(escalations(bot, signal_id)) == 1
    # only the Username lookup was needed (an IAM user's keys all carry its name): one page in each region of
    # AWS_REGIONS and of the signal
    assert sorted((r.region, json.dumps(r.params["LookupAttributes"])) for r in aws.api.lookups()) == [
        (region, json.dumps([{"AttributeKey": "Username", "AttributeValue": "mallory"}]))
        for region in ("eu-west-1", "us-east-1")]

    # a second investigation finds the same abuse and adds no second escalation
    time.sleep(1.1)  # a later "now": a window of its own
    bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
    bot.settle()
    replies = thread(bot, ts)
    assert len(replies) == 3 and "*Follow-on abuse*" in json.dumps(replies[-1].blocks)
    assert sum(m.text.count("<!channel>") for m in replies) == 1
    assert len(escalations(bot, signal_id)) == 1 and len(bot.slack.calls_to("chat.update")) == 1


def test_the_ack_comes_before_the_work(bot, aws):
    signal_id, ts = alert_of(bot, aws, attack())
    held = aws.api.inject("hold")  # the first LookupEvents waits until the test lets it go
    started = time.monotonic()
    reply = bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
    acked_after = time.monotonic() - started
    try:
        assert reply.status == 200 and acked_after < 3
        assert held.reached.wait(10)  # the work runs, after the ack, and waits for its first page
        assert len(aws.api.lookups()) == 1
        assert thread(bot, ts) == []
        [note] = bot.ephemerals(TRIAGER)
        assert note.startswith(":mag: Investigating") and "thread" in note
    finally:
        held.release.set()
    bot.settle()
    assert len(thread(bot, ts)) == 2


def test_a_non_triagers_click_changes_nothing(bot, aws):
    signal_id, ts = alert_of(bot, aws, attack())
    before = len(bot.slack.calls)
    reply = bot.click(INVESTIGATE, OUTSIDER, CHANNEL, ts)
    bot.settle()
    assert reply.status == 200
    assert aws.api.lookups() == [] and thread(bot, ts) == []
    assert [c.method for c in bot.slack.calls[before:] if c.method != "auth.test"] == ["chat.postEphemeral"]
    assert "Only triagers" in bot.ephemerals(OUTSIDER)[0]
    with bot.store.session() as session:
        assert session.exec(select(Investigation)).all() == []
    assert bot.alert(signal_id).severity == "high"


def test_a_second_click_while_one_runs_starts_nothing(bot, aws):
    signal_id, ts = alert_of(bot, aws, attack())
    held = aws.api.inject("hold")
    bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
    assert held.reached.wait(10)
    bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
    time.sleep(0.3)
    held.release.set()
    bot.settle()
    assert len(aws.api.lookups()) == 1 and len(thread(bot, ts)) == 2
    assert "under way" in bot.ephemerals(TRIAGER)[-1]


def test_an_investigation_of_a_window_already_closed_and_investigated_is_not_repeated(tmp_path, aws):
    # A window ends SESGUARD_INVESTIGATE_HOURS after the last call: here long ago, so both clicks ask for it.
    with Harness(migrated_sqlite(tmp_path), auto_investigate="off", investigate_hours=0.2) as bot:
        story = attack()
        signal_id, ts = alert_of(bot, aws, story)
        bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
        bot.settle()
        bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
        bot.settle()
        assert len(aws.api.lookups()) == 1 and len(thread(bot, ts)) == 2
        assert "was investigated" in bot.ephemerals(TRIAGER)[-1]
        assert len(escalations(bot, signal_id)) == 1


def test_a_suppressed_alerts_stale_button_investigates_nothing(bot, aws):
    from bot.triage.changes import suppress

    signal_id, ts = alert_of(bot, aws, attack())
    button = bot.button(CHANNEL, ts, INVESTIGATE)
    suppress(bot.store, signal_id, TRIAGER, "account", "7d", "pen-test")
    bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts, button=button)
    bot.settle()
    assert aws.api.lookups() == [] and thread(bot, ts) == []
    assert "suppressed" in bot.ephemerals(TRIAGER)[-1] and "/sesguard investigate" in bot.ephemerals(TRIAGER)[-1]


# ── the pace and the page cap ────────────────────────────────────────────────────────────────────────


def test_an_investigation_while_a_poll_runs_keeps_the_account_region_within_two_requests_a_second(tmp_path, aws):
    """The web process's investigation and the worker's poll (each its own source and pacer, one store, as two
    processes have) share the account/region's budget. The poll is held at its first request, inside the span of
    the place's time its process booked, while the investigation reads; then the poll goes on. Both pace on
    one clock the test moves, and the stand-in keeps the limit on it: the order is set by the hold, the
    times by the pace's rule, never by how busy the host is."""
    clock = SteppingClock()
    aws.api.clock = clock.time
    store = migrated_sqlite(tmp_path)

    def paced_source() -> LookupSource:
        return LookupSource(["us-east-1"], [], store, pacer=RequestPacer(
            store, REQUESTS_PER_WINDOW, WINDOW_SECONDS, SAFETY_MARGIN_SECONDS, sleep=clock.sleep, clock=clock.time))

    story = attack()
    # mallory made 120 more calls (three pages); a CI role's 400 SES calls keep the poll busy (nine pages)
    story.other += [call(records.iam_user("mallory", account=OWN_ACCOUNT, key=KEY), "DescribeInstances",
                         story.now, 45 - i * 0.1, source="ec2.amazonaws.com") for i in range(120)]
    ci = records.assumed_role("ci-deploy", "run-7", account=OWN_ACCOUNT)
    aws.api.add_events(*[call(ci, "GetSendQuota", story.now, 60 * 24 + i) for i in range(400)])
    with Harness(store, activity_source=paced_source(), auto_investigate="off") as bot:
        signal_id, ts = alert_of(bot, aws, story)
        settings = worker_settings(database_url=store.url, slack_bot_token="xoxb-test-token",
                                   slack_alert_channel=CHANNEL)
        held = aws.api.inject("hold", event_source="ses.amazonaws.com", first_page=True)
        poll = threading.Thread(target=poll_once, args=(settings, store, paced_source()), kwargs={"notify": False})
        poll.start()
        assert held.reached.wait(timeout=60), "the poll's first request never came"
        bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
        bot.settle()
        held.release.set()
        poll.join(timeout=120)
        assert not poll.is_alive()

        lookups = aws.api.lookups()
        polled = [r for r in lookups if r.params["LookupAttributes"][0]["AttributeKey"] == "EventSource"]
        investigated = [r for r in lookups if r not in polled]
        assert len(investigated) == 3 and len(polled) >= 10  # both ran: three pages of mallory's, the poll long
        # The investigation inside the poll: after the poll's held first request and before its next pages (its
        # other event source's first page went side by side with the held one, in the same span).
        assert lookups[0] is polled[0] and max(map(lookups.index, investigated)) < lookups.index(polled[2])
        # The poll's held request booked its process a span of the place (one spacing long, its end recorded as
        # two requests); the investigation's span starts a full spacing after that end: two requests at its
        # start, the third a spacing later.
        spacing = WINDOW_SECONDS + SAFETY_MARGIN_SECONDS
        assert [r.at - polled[0].at for r in investigated] == pytest.approx([2 * spacing, 2 * spacing, 3 * spacing])
        assert aws.api.busiest_window() == REQUESTS_PER_WINDOW
        assert [r.error for r in lookups if r.error] == []  # never throttled
        assert "132 other calls" in json.dumps(thread(bot, ts)[-1].blocks)


def test_the_page_cap_stops_the_read_and_the_summary_says_so(tmp_path, aws):
    with Harness(migrated_sqlite(tmp_path), auto_investigate="off", investigate_max_pages=2) as bot:
        story = attack()
        story.other += [call(records.iam_user("mallory", account=OWN_ACCOUNT, key=KEY), "DescribeInstances",
                             story.now, 20 - i * 0.1, source="ec2.amazonaws.com") for i in range(150)]
        signal_id, ts = alert_of(bot, aws, story)
        bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
        bot.settle()
    assert len(aws.api.lookups()) == 2
    body = json.dumps(thread(bot, ts)[-1].blocks)
    assert "Stopped at the page cap (2 pages, SESGUARD_INVESTIGATE_MAX_PAGES)" in body
    assert "100 other calls" in body  # the newest two pages


def test_a_role_is_read_by_its_sessions_names_and_namesakes_are_left_out(bot, aws):
    story = attack()
    session = records.ec2_role(session="i-0abc", account=OWN_ACCOUNT)
    enumeration = [call(session, "GetSendQuota", story.now, 30), call(session, "ListIdentities", story.now, 29)]
    later = [call(session, "CreateUser", story.now, 20, source="iam.amazonaws.com", write=True)]
    namesake = [call(records.iam_user("i-0abc", account=OWN_ACCOUNT), "AttachUserPolicy", story.now, 19,
                     source="iam.amazonaws.com", write=True)]
    aws.api.add_events(*enumeration, *later, *namesake)
    [signal_id] = store_signals(bot.store, *enumeration)
    bot.post_alerts()
    ts = bot.alert(signal_id).slack_ts

    bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
    bot.settle()

    # the session's key is covered by its name: each of its calls carries it
    asked = [r.params["LookupAttributes"][0] for r in aws.api.lookups()]
    assert asked == [{"AttributeKey": "Username", "AttributeValue": "i-0abc"}]
    [line, summary] = thread(bot, ts)
    assert "iam:CreateUser ×1" in line.text and "AttachUserPolicy" not in json.dumps(summary.blocks)
    assert "*1 other call*" in json.dumps(summary.blocks)


def test_an_account_sesguard_cannot_read_is_said_in_the_thread(bot, aws):
    elsewhere = records.iam_user("mallory", account="999999999999")
    enumeration = [call(elsewhere, "GetSendQuota", attack().now, 10) | {"recipientAccountId": "999999999999"}]
    [signal_id] = store_signals(bot.store, *enumeration)
    bot.post_alerts()
    ts = bot.alert(signal_id).slack_ts
    bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
    bot.settle()
    [summary] = thread(bot, ts)
    body = json.dumps(summary.blocks)
    assert "Not everything could be read" in body
    assert "neither the credentials' own nor one of SESGUARD_ROLE_ARNS" in body
    assert aws.api.lookups() == [] and bot.alert(signal_id).severity == "high"


# ── hostile CloudTrail ───────────────────────────────────────────────────────────────────────────────


def test_hostile_values_in_every_field_are_escaped_and_the_messages_stay_within_slacks_limits(bot, aws):
    hostile = {"userAgent": "<!channel> <@U1> " + "A" * 5000, "sourceIPAddress": "<@U1>",
               "errorCode": "<!channel>AccessDenied"}
    story = attack(name="eve<!channel><@U1>", **hostile)
    story.other += [{**r, "eventName": f"<!channel>Send<@U1>{i}" + "x" * 300, "eventSource": "<!here>.amazonaws.com",
                     "eventID": f"hostile-{i}", "awsRegion": "us-east-1"} for i, r in enumerate(story.other * 5)]
    signal_id, ts = alert_of(bot, aws, story)

    bot.click(INVESTIGATE, TRIAGER, CHANNEL, ts)
    bot.settle()

    line, summary = thread(bot, ts)
    for message in (line, summary):
        assert_within_slack_limits(message.blocks)
    everything = [m.text + json.dumps(m.blocks) for m in (line, summary)]
    assert sum(t.count("<!channel>") for t in everything) == 1 and line.text.startswith("<!channel> ")
    assert not any("<@U1>" in t or "<!here>" in t for t in everything)
    assert "&lt;!channel&gt;" in everything[1] and "&lt;@U1&gt;" in everything[1]
    assert "eve&lt;!channel&gt;&lt;@U1&gt;" in line.text
    assert bot.alert(signal_id).severity == "critical"


# ── /sesguard investigate ────────────────────────────────────────────────────────────────────────────


def answer_text(answer: dict) -> str:
    return answer.get("text", "") + json.dumps(answer.get("blocks", []), ensure_ascii=False)


def command(bot: Harness, text: str, user: str = TRIAGER) -> list[dict]:
    """Every answer `/sesguard text` sent to its response URL (a note, then the answer)."""
    name = f"investigate-{time.monotonic_ns()}"
    reply = bot.sender.command(text, user, bot.slack.response_url(name))
    assert reply.status == 200
    bot.settle()
    return [body for key, body in bot.slack.responses if key == name]


def test_the_command_investigates_an_arn_over_the_last_hours_without_touching_the_alert(bot, aws):
    story = attack()
    signal_id, ts = alert_of(bot, aws, story)
    note, answer = command(bot, f"investigate {MALLORY} 2")
    assert note["text"].startswith(":mag: Investigating") and answer["replace_original"] is True
    assert answer["response_type"] == "ephemeral"
    body = answer_text(answer)
    assert "ses:SendEmail* ×3" in body and "iam:CreateAccessKey ×1" in body and "s3:ListBuckets ×2" in body
    assert "15 other calls" in body  # no alert: its enumeration calls are not left out
    assert bot.alert(signal_id).severity == "high" and thread(bot, ts) == []


def test_the_command_investigates_an_access_key_in_every_account_sesguard_reads(bot, aws):
    alert_of(bot, aws, attack())
    _, answer = command(bot, f"investigate {NEW_KEY}")
    assert [r.params["LookupAttributes"][0] for r in aws.api.lookups()] == [
        {"AttributeKey": "AccessKeyId", "AttributeValue": NEW_KEY}]
    assert "s3:ListBuckets ×2" in answer_text(answer) and "in every account sesguard reads" in answer_text(answer)


def test_the_command_answers_an_ip_with_its_stored_calls_across_identities(bot, aws):
    story = attack()
    alert_of(bot, aws, story)
    store_signals(bot.store, {**call(records.iam_user("trent", account=OWN_ACCOUNT), "GetAccount", story.now, 5),
                              "sourceIPAddress": IP})
    _, answer = command(bot, f"investigate {IP}")
    body = answer_text(answer)
    assert "user/mallory" in body and "user/trent" in body and "SQL engine" in body
    assert aws.api.lookups() == []  # LookupEvents cannot search by address


@pytest.mark.parametrize("text, expected", [
    ("investigate", "Usage"), ("investigate not-a-thing", "is not an ARN"),
    (f"investigate {MALLORY} 0", "Hours must be"), (f"investigate {MALLORY} 2161", "Hours must be"),
    # hours are read as every number from Slack is (bot/slack/numbers.py): ASCII digits, an optional fraction
    *[(f"investigate {MALLORY} {hours}", "Hours must be")
      for hours in ("٣", "３", "²", "1e3", "1_0", "+3", "nan", "inf", "3.", ".5", "0x10")],
])
def test_the_command_refuses_what_it_cannot_investigate(bot, aws, text, expected):
    answers = command(bot, text)
    assert expected in answer_text(answers[-1]) and aws.api.lookups() == []


def test_the_command_is_for_triagers(bot, aws):
    [answer] = command(bot, f"investigate {MALLORY}", user=OUTSIDER)
    assert "Only triagers" in answer["text"] and aws.api.lookups() == []
