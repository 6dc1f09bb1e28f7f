"""The Slack stand-in keeps Slack's rules: what the real Web API refuses, it refuses too (over real HTTP)."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from tests.fakes.slack_api import FakeSlack, manifest_scopes

CHANNEL, PERSON, STRANGER = "C0ALERTS", "UPERSON01", "USTRANGER"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(slack: FakeSlack) -> WebClient:
    return WebClient(token=slack.token, base_url=slack.api_url, retry_handlers=[])


def refused(call) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value.response["error"]


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(**changes) -> dict:
    return {"type": "actions", "elements": [dict({"type": "button", "action_id": "a", "value": "v",
                                                  "text": {"type": "plain_text", "text": "Go"}}, **changes)]}


TOO_MUCH = {  # one limit each, broken by one character or one item
    "51 blocks": [section("x")] * 51,
    "section text of 3001": [section("x" * 3001)],
    "11 fields": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
    "a field of 2001": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
    "header of 151": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    "11 context elements": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
    "button text of 76": [button(text={"type": "plain_text", "text": "b" * 76})],
    "button value of 2001": [button(value="v" * 2001)],
    "action_id of 256": [button(action_id="a" * 256)],
    "an empty section": [{"type": "section"}],
    "mrkdwn in a header": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}],
}


@pytest.mark.parametrize("case", TOO_MUCH)
def test_a_message_beyond_a_block_kit_limit_is_refused_and_fails_the_test_that_sent_it(case):
    slack = FakeSlack(channels={CHANNEL: ()})
    with pytest.raises(AssertionError, match="Block Kit limits"):
        with slack:
            assert refused(lambda: client(slack).chat_postMessage(channel=CHANNEL, text="t", blocks=TOO_MUCH[case])) \
                == "invalid_blocks"
            assert slack.channel_messages(CHANNEL) == []


def test_text_over_40000_characters_is_msg_too_long():
    with FakeSlack(channels={CHANNEL: ()}, expect_block_kit_refusals=True) as slack:
        assert refused(lambda: client(slack).chat_postMessage(channel=CHANNEL, text="x" * 40_001)) == "msg_too_long"
        client(slack).chat_postMessage(channel=CHANNEL, text="x" * 40_000)


def test_a_modal_title_over_24_characters_is_refused():
    with FakeSlack(expect_block_kit_refusals=True) as slack:
        view = {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "blocks": [section("x")]}
        error = refused(lambda: client(slack).views_open(trigger_id=slack.trigger_id(), view=view))
        assert error == "invalid_arguments"
        assert slack.refused == [("views.open", ["title: 25 characters > 24"])]


def test_a_response_url_refuses_what_breaks_a_limit():
    with FakeSlack(expect_block_kit_refusals=True) as slack:
        answer = WebhookClient(slack.response_url("r")).send(text="t", blocks=[section("x" * 3001)])
        assert (answer.status_code, answer.body) == (400, "invalid_blocks") and slack.responses == []


def test_the_token_has_the_manifests_scopes_and_no_others():
    assert {"chat:write", "channels:history"} <= manifest_scopes()
    with FakeSlack(channels={CHANNEL: ()}, scopes=manifest_scopes() - {"channels:history"}) as slack:
        with pytest.raises(SlackApiError) as caught:
            client(slack).conversations_history(channel=CHANNEL)
        answer = caught.value.response
        assert answer["error"] == "missing_scope" and answer["needed"] == "channels:history"
    with FakeSlack(channels={CHANNEL: ()}) as slack:
        slack.add_channel("C0PRIVATE", private=True)
        client(slack).conversations_history(channel="C0PRIVATE")  # groups:history is in the manifest
        assert refused(lambda: client(slack).conversations_history(channel="D0SOMEONE")) == "channel_not_found"


def test_the_bot_posts_and_reads_only_where_it_was_invited():
    with FakeSlack() as slack:
        slack.add_channel(CHANNEL, PERSON, bot=False)
        assert refused(lambda: client(slack).chat_postMessage(channel=CHANNEL, text="t")) == "not_in_channel"
        assert refused(lambda: client(slack).conversations_history(channel=CHANNEL)) == "not_in_channel"
        assert refused(lambda: client(slack).chat_postMessage(channel="C0NOWHERE", text="t")) == "channel_not_found"
        slack.invite_bot(CHANNEL)
        client(slack).chat_postMessage(channel=CHANNEL, text="t")


def test_an_ephemeral_message_goes_only_to_a_member_of_the_channel():
    with FakeSlack(channels={CHANNEL: (PERSON,)}) as slack:
        client(slack).chat_postEphemeral(channel=CHANNEL, user=PERSON, text="t")
        assert refused(lambda: client(slack).chat_postEphemeral(channel=CHANNEL, user=STRANGER, text="t")) \
            == "user_not_in_channel"
        dm = client(slack).conversations_open(users=PERSON)["channel"]["id"]
        assert refused(lambda: client(slack).chat_postEphemeral(channel=dm, user=STRANGER, text="t")) \
            == "user_not_in_channel"


def test_only_the_bots_own_messages_can_be_updated():
    with FakeSlack(channels={CHANNEL: (PERSON,)}) as slack:
        ts = client(slack).chat_postMessage(channel=CHANNEL, text="mine")["ts"]
        client(slack).chat_update(channel=CHANNEL, ts=ts, text="still mine")
        slack.message(CHANNEL, ts).user = PERSON
        assert refused(lambda: client(slack).chat_update(channel=CHANNEL, ts=ts, text="x")) == "cant_update_message"


def test_a_trigger_id_lives_three_seconds_and_opens_one_view():
    clock = Clock()
    view = {"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": [section("x")]}
    with FakeSlack(clock=clock) as slack:
        fresh, late = slack.trigger_id(), slack.trigger_id()
        client(slack).views_open(trigger_id=fresh, view=view)
        assert refused(lambda: client(slack).views_open(trigger_id=fresh, view=view)) == "exchanged_trigger_id"
        clock.now += 3.01
        assert refused(lambda: client(slack).views_open(trigger_id=late, view=view)) == "expired_trigger_id"
        assert refused(lambda: client(slack).views_open(trigger_id="made-up", view=view)) == "invalid_trigger_id"


def test_history_bounds_are_exclusive_unless_inclusive_and_limit_is_1_to_999():
    with FakeSlack(channels={CHANNEL: ()}) as slack:
        web = client(slack)
        first, middle, last = (web.chat_postMessage(channel=CHANNEL, text=str(n))["ts"] for n in range(3))

        def shown(**kw) -> list[str]:
            return [m["ts"] for m in web.conversations_history(channel=CHANNEL, **kw)["messages"]]

        assert shown(oldest=first, latest=last) == [middle]
        assert shown(oldest=first, latest=last, inclusive=True) == [last, middle, first]
        assert shown() == [last, middle, first]
        for limit in (0, 1000):
            error = refused(lambda limit=limit: web.conversations_history(channel=CHANNEL, limit=limit))
            assert error == "invalid_arguments"
        page = web.conversations_history(channel=CHANNEL, limit=2)
        assert len(page["messages"]) == 2 and page["has_more"] and page["response_metadata"]["next_cursor"]


def test_history_answers_pages_of_at_most_100_whatever_the_limit():
    with FakeSlack(channels={CHANNEL: ()}) as slack:
        for n in range(120):
            slack.handle("chat.postMessage", {"channel": CHANNEL, "text": str(n)})
        page = client(slack).conversations_history(channel=CHANNEL, limit=999)
        assert len(page["messages"]) == 100 and page["has_more"]


# ── views.publish (the App Home) ─────────────────────────────────────────────────────────────────────


def test_views_publish_shows_a_home_view_to_a_user_of_the_workspace():
    with FakeSlack(channels={CHANNEL: [PERSON]}) as slack:
        first = client(slack).views_publish(user_id=PERSON, view={"type": "home", "blocks": [section("hi")]})
        again = client(slack).views_publish(user_id=PERSON, view={"type": "home", "blocks": [section("again")]})
        assert first["view"]["id"] == again["view"]["id"]  # one Home tab per user, replaced
        assert slack.home_views[PERSON]["blocks"] == [section("again")]


def test_views_publish_refuses_a_user_slack_does_not_know_and_a_view_that_is_not_home():
    with FakeSlack(channels={CHANNEL: [PERSON]}) as slack:
        assert refused(lambda: client(slack).views_publish(user_id=STRANGER, view={"type": "home", "blocks": []})) \
            == "invalid_arguments"
        assert refused(lambda: client(slack).views_publish(user_id=PERSON, view={
            "type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []})) == "invalid_arguments"
        assert slack.home_views == {}


def test_views_publish_refuses_more_than_100_blocks_and_repeated_block_ids():
    with FakeSlack(channels={CHANNEL: [PERSON]}, expect_block_kit_refusals=True) as slack:
        many = {"type": "home", "blocks": [section(str(n)) for n in range(101)]}
        assert refused(lambda: client(slack).views_publish(user_id=PERSON, view=many)) == "invalid_arguments"
        twice = {"type": "home", "blocks": [dict(section("a"), block_id="x"), dict(section("b"), block_id="x")]}
        assert refused(lambda: client(slack).views_publish(user_id=PERSON, view=twice)) == "invalid_arguments"
        assert client(slack).views_publish(user_id=PERSON, view={
            "type": "home", "blocks": [section(str(n)) for n in range(100)]})["ok"]


def test_views_publish_needs_no_scope_but_the_home_tab_enabled():
    with FakeSlack(channels={CHANNEL: [PERSON]}, scopes=[]) as slack:
        assert client(slack).views_publish(user_id=PERSON, view={"type": "home", "blocks": []})["ok"]
        slack.home_tab_enabled = False
        assert refused(lambda: client(slack).views_publish(user_id=PERSON, view={"type": "home", "blocks": []})) \
            == "not_enabled"
