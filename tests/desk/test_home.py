"""The App Home (SPEC §8) through the HTTP endpoint: `app_home_opened` signed as Slack signs it, the Home
tab published to the Slack stand-in (which keeps views.publish's rules), its buttons clicked as Slack sends them."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import pytest
from slack_sdk import WebClient
from sqlmodel import select

from bot.contact.questions import ask
from bot.desk.home.tables import HomeTab
from detection.store import Scope, SuppressionRow, utcnow
from tests.support.slack_harness import (
    ACCOUNT,
    CHANNEL,
    OUTSIDER,
    TOKEN,
    TRIAGER,
    Harness,
    cloudtrail_record,
    store_signals,
)
from tests.support.waiting import wait_for

ESCALATE, SUPPRESS, CLOSE = "sesguard.escalate", "sesguard.suppress", "sesguard.not_an_issue"
YES = "sesguard.answer_yes"


def open_home(bot: Harness, user: str, tab: str = "home"):
    reply = bot.sender.event({
        "token": "unused", "team_id": "T0TEAM", "api_app_id": "A0SESGUARD", "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}", "event_time": 1700000000,
        "event": {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": tab,
                  "event_ts": "1700000000.000100"},
    })
    bot.settle()
    return reply


def published(bot: Harness, user: str) -> list[dict]:
    return [call["view"] for call in bot.slack.calls_to("views.publish", ok_only=True) if call["user_id"] == user]


def shown(view: dict) -> str:
    return str(view["blocks"])


def home_buttons(view: dict) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]


def home_click(bot: Harness, user: str, action_id: str, value: str):
    view = bot.slack.home_views[user]
    [button] = [e for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == action_id and e["value"] == value]
    payload = {
        "type": "block_actions", "team": {"id": "T0TEAM", "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"}, "api_app_id": "A0SESGUARD",
        "container": {"type": "view", "view_id": view["id"]}, "trigger_id": bot.slack.trigger_id(),
        "view": {"id": view["id"], "type": "home", "callback_id": "", "private_metadata": "", "blocks": view["blocks"],
                 "state": {"values": {}}, "hash": "1700000000.abc"},
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "text": button["text"],
                     "value": button["value"], "action_ts": "1700000999.000001"}],
    }
    reply = bot.sender.interaction(payload)
    bot.settle()
    return reply


def alerts(bot: Harness, *users: str) -> list[str]:
    ids = store_signals(bot.store, *(cloudtrail_record(user=u, when=utcnow() - timedelta(hours=3 - n))
                                     for n, u in enumerate(users)))
    bot.post_alerts()
    return ids


def test_a_triager_sees_the_open_alerts_newest_first_with_their_buttons(bot):
    older, newer, closed = alerts(bot, "alice", "bob", "carol")
    bot.click(CLOSE, TRIAGER, CHANNEL, bot.alert(closed).slack_ts)
    bot.settle()
    with bot.store.session() as session:
        session.add(Scope(account_id="444455556666", observed_since=utcnow() - timedelta(days=2)))
        session.add(SuppressionRow(identity="arn:aws:iam::111122223333:user/ci", author=TRIAGER, reason="the CI job",
                                   expires_at=utcnow() + timedelta(days=3)))
        session.add(SuppressionRow(identity="arn:aws:iam::111122223333:user/later", author=TRIAGER, reason="x",
                                   expires_at=utcnow() + timedelta(days=20)))
        session.add(SuppressionRow(identity="arn:aws:iam::111122223333:user/forever", author=TRIAGER, reason="y"))
        session.commit()
    assert open_home(bot, TRIAGER).status == 200
    [view] = published(bot, TRIAGER)
    text = shown(view)
    assert view["type"] == "home"
    assert text.index("user/bob") < text.index("user/alice") and "user/carol" not in text
    assert (ESCALATE, newer) in home_buttons(view) and (CLOSE, older) in home_buttons(view)
    assert "Open alerts (2)" in text
    assert "444455556666: learning silently until" in text
    assert "user/ci" in text and "covered 0 signals" in text
    assert "user/later" not in text and "user/forever" not in text  # not within 7 days; no expiry
    assert "Worker health" in text


def test_a_person_who_may_not_triage_sees_only_the_questions_asked_of_them(bot):
    [signal_id] = alerts(bot, "alice")
    open_home(bot, OUTSIDER)
    [empty] = published(bot, OUTSIDER)
    assert "user/alice" not in shown(empty) and signal_id not in shown(empty) and home_buttons(empty) == []
    assert "Nothing is waiting for you" in shown(empty)
    ask(bot.store, bot.settings, WebClient(token=TOKEN, base_url=bot.slack.api_url), signal_id, OUTSIDER, TRIAGER)
    bot.settle()
    wait_for(lambda: len(published(bot, OUTSIDER)) == 2, "the person's Home tab to show the question")
    view = published(bot, OUTSIDER)[-1]
    assert "were they yours?" in shown(view) and "user/alice" in shown(view)
    assert [a for a, _ in home_buttons(view)] == [YES, "sesguard.answer_no"]
    assert ESCALATE not in str(view) and "Worker health" not in shown(view)
    # and they answer from the Home tab: the same check as in the DM (only they may answer)
    home_click(bot, OUTSIDER, YES, home_buttons(view)[0][1])
    assert bot.alert(signal_id).status == "confirmed"


def test_a_button_on_the_home_tab_acts_on_the_alert_and_updates_its_message(bot):
    [signal_id] = alerts(bot, "alice")
    ts = bot.alert(signal_id).slack_ts
    open_home(bot, TRIAGER)
    assert home_click(bot, TRIAGER, ESCALATE, signal_id).status == 200
    assert bot.alert(signal_id).status == "escalated"
    updated = [c for c in bot.slack.calls_to("chat.update", ok_only=True) if c["ts"] == ts]
    assert updated and "Escalated" in str(bot.slack.message(CHANNEL, ts).blocks)
    assert any("Escalated by" in m.text for m in bot.slack.replies(CHANNEL, ts))
    # the tab itself follows, within a second of the last publish
    wait_for(lambda: "*Escalated*" in shown(bot.slack.home_views[TRIAGER]), "the Home tab to show the escalation")
    assert (ESCALATE, signal_id) not in home_buttons(bot.slack.home_views[TRIAGER])


def test_the_suppress_modal_opens_from_the_home_tab(bot):
    [signal_id] = alerts(bot, "alice")
    open_home(bot, TRIAGER)
    home_click(bot, TRIAGER, SUPPRESS, signal_id)
    [view] = bot.opened_views()
    assert view["private_metadata"] == signal_id and bot.slack.errors_of("views.open") == [None]


def test_a_home_tab_is_published_at_most_once_a_second(bot):
    ids = alerts(bot, "alice", "bob", "carol")
    open_home(bot, TRIAGER)
    for signal_id in ids:
        home_click(bot, TRIAGER, CLOSE, signal_id)
    wait_for(lambda: "No open alerts" in shown(bot.slack.home_views[TRIAGER]), "the last change on the Home tab")
    times = [c.at for c in bot.slack.calls if c.method == "views.publish" and c.params["user_id"] == TRIAGER]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times


def test_a_home_tab_opened_by_a_user_slack_does_not_know_is_refused_quietly(bot):
    alerts(bot, "alice")
    reply = open_home(bot, "UNOBODY00")
    assert reply.status == 200
    assert bot.slack.errors_of("views.publish") == ["invalid_arguments"]
    with bot.store.session() as session:
        assert session.exec(select(HomeTab)).all() == []  # forgotten: never refreshed
    [signal_id] = alerts(bot, "bob")
    bot.click(CLOSE, TRIAGER, CHANNEL, bot.alert(signal_id).slack_ts)
    bot.settle()
    assert bot.slack.errors_of("views.publish") == ["invalid_arguments"]


@pytest.mark.parametrize("event", [{"user": 42}, {"user": "<!channel>"}, {"user": "UTRIAGER1", "tab": "messages"}])
def test_odd_home_events_publish_nothing(bot, event):
    reply = bot.sender.event({"type": "event_callback", "team_id": "T0TEAM", "api_app_id": "A0SESGUARD",
                              "event": {"type": "app_home_opened", "tab": "home", **event}})
    bot.settle()
    assert reply.status in (200, 400) and bot.slack.calls_to("views.publish") == []  # 400: not a Slack payload


def test_hundreds_of_open_alerts_keep_the_view_within_block_kit_limits(bot):
    records = [cloudtrail_record(user=f"user{n:03d}", when=utcnow() - timedelta(minutes=600 - n)) for n in range(300)]
    store_signals(bot.store, *records)
    open_home(bot, TRIAGER)
    [view] = published(bot, TRIAGER)  # the stand-in refuses more than 100 blocks
    assert len(view["blocks"]) <= 100
    text = shown(view)
    assert "Open alerts (300)" in text and "more open alerts" in text
    assert "user/user299" in text and "user/user000" not in text  # newest first
    assert ACCOUNT in text


GROUP = "S0TRIAGERS"
MEMBER = "UMEMBER01"


@pytest.mark.parametrize("harness_options", [{"slack_triage_usergroup": GROUP}])
def test_someone_removed_from_the_triage_usergroup_stops_receiving_the_desk_at_the_next_publish(
        bot, monkeypatch, harness_options):
    """Whether someone may triage was stored when they opened the tab and never checked again: removed from
    the user group, they kept receiving the whole desk, new alerts included, for 24 hours."""
    from bot.desk.home.refresh import refresh_open
    from bot.slack import middleware

    monkeypatch.setattr(middleware, "USERGROUP_CACHE_SECONDS", 0.0)  # Slack's answer, not the cache's, decides
    bot.slack.usergroups[GROUP] = [MEMBER]
    alerts(bot, "alice")
    open_home(bot, MEMBER)
    assert "user/alice" in shown(published(bot, MEMBER)[-1])
    bot.slack.usergroups[GROUP] = []  # removed from the user group
    alerts(bot, "bob")  # a new alert, published to the open tabs by the worker's look
    client = WebClient(token=TOKEN, base_url=bot.slack.api_url)
    wait_for(lambda: refresh_open(bot.store, bot.settings, client).published
             or "Nothing is waiting for you" in shown(published(bot, MEMBER)[-1]), "the Home tab to be published")
    view = published(bot, MEMBER)[-1]
    assert "user/bob" not in shown(view) and "user/alice" not in shown(view) and home_buttons(view) == []
    assert "Nothing is waiting for you" in shown(view)


@pytest.mark.parametrize("harness_options", [{"slack_triagers": [TRIAGER, MEMBER]}])
def test_someone_taken_off_slack_triagers_gets_no_desk_from_a_worker_started_after(bot, harness_options):
    from bot.desk.home.refresh import refresh_open

    alerts(bot, "alice")
    open_home(bot, MEMBER)
    assert "user/alice" in shown(published(bot, MEMBER)[-1])
    restarted = bot.settings.model_copy(update={"slack_triagers": [TRIAGER]})  # SLACK_TRIAGERS without them
    alerts(bot, "bob")
    client = WebClient(token=TOKEN, base_url=bot.slack.api_url)
    wait_for(lambda: refresh_open(bot.store, restarted, client).published
             or "Nothing is waiting for you" in shown(published(bot, MEMBER)[-1]), "the Home tab to be published")
    assert "user/bob" not in shown(published(bot, MEMBER)[-1])
    assert "Nothing is waiting for you" in shown(published(bot, MEMBER)[-1])
