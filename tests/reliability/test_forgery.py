"""Forged, replayed and edited Slack requests against a real `sesguard serve` process (SPEC §4).

Bad signatures, missing headers, stale or future timestamps, tampered bodies and replays get 401 and
change nothing; signed requests from the wrong people, with edited button values or with garbage in them
are acknowledged, refused, and change nothing. "Nothing" is checked in the store (signals, their
history, suppressions, contacts, the audit log) and on the wire (what the app asked Slack to do).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlmodel import select

from bot.alerts.notifier import post_pending
from bot.config.settings import load_settings
from bot.contact.tables import Contact
from detection.store import AuditEntry, SignalHistory, Store, SuppressionRow
from tests.support.alerts import Alert, alerts
from tests.support.misbehaving_slack import MisbehavingSlack
from tests.support.sesguard_processes import (
    BOT_TOKEN,
    CHANNEL,
    SIGNING_SECRET,
    TRIAGER,
    leaked_secrets,
    sesguard_env,
    start_serve,
    wait_for,
)
from tests.support.slack_harness import PEOPLE, cloudtrail_record, migrated_sqlite, sso_identity, store_signals
from tests.support.slack_signing import post, signature, signed_headers

pytestmark = [pytest.mark.processes, pytest.mark.slow]

ESCALATE, CONTACT, YES = "sesguard.escalate", "sesguard.contact_user", "sesguard.answer_yes"
OUTSIDER, ALICE, EMAIL = "UOUTSIDER", "UALICE001", "alice@example.com"
FORM = "application/x-www-form-urlencoded"


class App:
    """A `sesguard serve` with two posted alerts (an IAM user's and an SSO user's)."""

    def __init__(self, slack: MisbehavingSlack, store: Store, served):
        self.slack, self.store, self.served = slack, store, served
        self.url = served.sender.url

    def signal(self, identity_end: str) -> Alert:
        return next(row for row in alerts(self.store) if row.identity.endswith(identity_end))

    def snapshot(self) -> tuple:
        with self.store.session() as session:
            return (
                sorted((row.signal_id, row.status, row.slack_ts) for row in alerts(self.store)),
                len(session.exec(select(SignalHistory)).all()), len(session.exec(select(SuppressionRow)).all()),
                sorted((c.id, c.answer) for c in session.exec(select(Contact))),
                len(session.exec(select(AuditEntry)).all()),
                [c.method for c in self.slack.calls if c.method != "chat.postEphemeral"],
            )

    def click_body(self, action_id: str, user: str, row: Alert, value: str | None = None,
                   channel: str = CHANNEL, ts: str | None = None) -> bytes:
        ts = ts or row.slack_ts
        payload = {
            "type": "block_actions", "user": {"id": user, "team_id": "T0TEAM"}, "team": {"id": "T0TEAM"},
            "api_app_id": "A0SESGUARD", "trigger_id": self.slack.trigger_id(),
            "container": {"type": "message", "message_ts": ts, "channel_id": channel},
            "channel": {"id": channel}, "message": {"ts": ts},
            "response_url": self.slack.response_url(f"click-{time.monotonic_ns()}"),
            "actions": [{"type": "button", "action_id": action_id, "block_id": "triage", "action_ts": "1.0",
                         "value": row.signal_id if value is None else value}],
        }
        return urlencode({"payload": json.dumps(payload)}).encode()

    def send(self, body: bytes, **kw) -> int:
        return post(self.url, body, signed_headers(SIGNING_SECRET, body, FORM, **kw)).status

    def log(self) -> str:
        return self.served.running.output()

    def ephemerals(self, user: str) -> list[str]:
        return [c["text"] for c in self.slack.calls_to("chat.postEphemeral") if c.get("user") == user]


@contextmanager
def served_app(folder: Path) -> Iterator[App]:
    """A fresh store with two posted alerts, a fresh Slack stand-in, and `sesguard serve` on them."""
    with MisbehavingSlack(token=BOT_TOKEN, channels={CHANNEL: PEOPLE}) as slack:
        slack.users_by_email[EMAIL] = ALICE
        store = migrated_sqlite(folder)
        store_signals(store, cloudtrail_record(user="mallory"))
        store_signals(store, cloudtrail_record(identity=sso_identity(EMAIL)))
        env = sesguard_env({}, slack.api_url, store.url)
        settings = load_settings(_env_file=None, slack_bot_token=BOT_TOKEN, slack_alert_channel=CHANNEL,
                                 slack_api_url=slack.api_url, database_url=store.url)
        assert post_pending(store, settings, interval=0).posted == 2
        served = start_serve(env, folder)
        try:
            yield App(slack, store, served)
        finally:
            served.running.stop()
            assert leaked_secrets(served.running.output()) == {}
            store.engine.dispose()


@pytest.fixture
def app(tmp_path):
    """An app of the test's own, for the tests whose requests reach a listener: its work (and its log lines)
    may outlive the request, so it must not meet the next test."""
    with served_app(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def untouched(tmp_path_factory):
    """One app for the tests whose requests are refused before any listener runs (401): each compares the
    app before and after its own requests, and nothing they start outlives them."""
    with served_app(tmp_path_factory.mktemp("forgery")) as running:
        yield running


def _unsigned(body: bytes) -> dict:
    return {"Content-Type": FORM}


FORGERIES = {
    "wrong signing secret": lambda body: signed_headers("not-the-signing-secret", body, FORM),
    "no signature headers": _unsigned,
    "signature without timestamp": lambda body: {"Content-Type": FORM,
                                                 "X-Slack-Signature": signature(SIGNING_SECRET, "0", body)},
    "timestamp 5 minutes and 1 second old": lambda body: signed_headers(SIGNING_SECRET, body, FORM,
                                                                         int(time.time()) - 301),
    "timestamp 6 minutes ahead": lambda body: signed_headers(SIGNING_SECRET, body, FORM, int(time.time()) + 360),
    "body changed after signing": lambda body: {
        **signed_headers(SIGNING_SECRET, body.replace(b"UTRIAGER1", b"UOUTSIDER"), FORM)},
    "signature of another timestamp": lambda body: {
        **signed_headers(SIGNING_SECRET, body, FORM), "X-Slack-Request-Timestamp": str(int(time.time()) - 1)},
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_and_stale_requests_get_401_and_change_nothing(untouched, forgery):
    row = untouched.signal("mallory")
    body = untouched.click_body(ESCALATE, TRIAGER, row)
    before = untouched.snapshot()
    reply = post(untouched.url, body, FORGERIES[forgery](body))
    assert reply.status == 401
    assert untouched.snapshot() == before


def test_a_replayed_request_gets_401_and_changes_nothing(app):
    row = app.signal("mallory")
    body = urlencode({"command": "/sesguard", "text": "status", "user_id": TRIAGER, "team_id": "T0TEAM",
                      "response_url": app.slack.response_url("replayed")}).encode()
    headers = signed_headers(SIGNING_SECRET, body, FORM)
    assert post(app.url, body, headers).status == 200
    wait_for(lambda: any(name == "replayed" for name, _ in app.slack.responses), "the first answer")
    before = app.snapshot()
    assert post(app.url, body, headers).status == 401
    assert app.snapshot() == before
    assert [name for name, _ in app.slack.responses].count("replayed") == 1
    assert row.status == app.signal("mallory").status


def test_non_triagers_and_edited_button_values_are_refused_and_change_nothing(app):
    mallory, sso = app.signal("mallory"), app.signal(EMAIL)
    before = app.snapshot()
    attempts = [
        app.click_body(ESCALATE, OUTSIDER, mallory),  # not a triager
        app.click_body(ESCALATE, TRIAGER, mallory, value=sso.signal_id),  # the value of another alert
        app.click_body(ESCALATE, TRIAGER, mallory, value="x' OR '1'='1'; DROP TABLE signals; --"),
        app.click_body(ESCALATE, TRIAGER, mallory, value="<!channel>" * 500),
        app.click_body(ESCALATE, TRIAGER, mallory, ts="1234567890.000001"),  # a message that is not the alert
    ]
    assert [app.send(body) for body in attempts] == [200] * len(attempts)
    wait_for(lambda: len(app.ephemerals(OUTSIDER)) == 1 and len(app.ephemerals(TRIAGER)) == 4, "the refusals")
    assert app.snapshot() == before
    assert "Only triagers" in app.ephemerals(OUTSIDER)[0]
    assert all("Nothing was changed" in text for text in app.ephemerals(TRIAGER))
    assert all("<!channel>" not in text for text in app.ephemerals(TRIAGER))


def test_only_the_contacted_person_may_answer_the_dm(app):
    sso = app.signal(EMAIL)
    assert app.send(app.click_body(CONTACT, TRIAGER, sso)) == 200
    wait_for(lambda: any(c.get("thread_ts") == sso.slack_ts for c in app.slack.calls_to("chat.postMessage")),
             "the DM sent and noted in the alert's thread")
    with app.store.session() as session:
        [question] = session.exec(select(Contact)).all()
    dm = next(m for m in app.slack.messages if m.channel == question.dm_channel)
    before = app.snapshot()
    for someone_else in (OUTSIDER, TRIAGER):
        assert app.send(app.click_body(YES, someone_else, sso, value=str(question.id), channel=dm.channel,
                                       ts=dm.ts)) == 200
    wait_for(lambda: app.ephemerals(OUTSIDER) and app.ephemerals(TRIAGER), "the refusals")
    assert app.snapshot() == before
    assert [f"Only <@{ALICE}> can answer" in text for text in app.ephemerals(OUTSIDER)] == [True]
    # Neither is in Alice's DM: Slack shows the refusal to nobody (and nothing failed for it).
    assert app.slack.errors_of("chat.postEphemeral") == ["user_not_in_channel"] * 2
    assert app.send(app.click_body(YES, ALICE, sso, value=str(question.id), channel=dm.channel, ts=dm.ts)) == 200
    wait_for(lambda: any("yes, this was me" in c.get("text", "") and c.get("thread_ts") == sso.slack_ts
                         for c in app.slack.calls_to("chat.postMessage")), "Alice's answer in the alert's thread")
    assert app.signal(EMAIL).status == "confirmed"


DEEP = b"[" * 150_000 + b"]" * 150_000  # within the 1 MB body limit; JSON parsers recurse into each level
DEEP_JSON = b'{"type": "event_callback", "event": ' + DEEP + b"}"  # a JSON body (Bolt reads any "{…" as JSON)


def _payload(payload: dict) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def _click(**changes) -> dict:
    """A click on an alert's Escalate button, with some fields replaced."""
    return {"type": "block_actions", "user": {"id": TRIAGER}, "team": {"id": "T0TEAM"}, "trigger_id": "t-1",
            "channel": {"id": CHANNEL}, "container": {"type": "message", "message_ts": "1.0", "channel_id": CHANNEL},
            "actions": [{"type": "button", "action_id": ESCALATE, "block_id": "triage", "value": "s-1"}], **changes}


def _suppress_modal(**view_changes) -> dict:
    view = {"type": "modal", "callback_id": "sesguard.suppress_modal", "private_metadata": "s-1",
            "state": {"values": {}}, **view_changes}
    return {"type": "view_submission", "user": {"id": TRIAGER}, "team": {"id": "T0TEAM"}, "view": view}


GARBAGE = {  # signed garbage → what it gets (never a 500, never a change)
    "payload not JSON": (b"payload=not-json", 400),
    "payload an empty object": (b"payload=%7B%7D", 404),  # matches no listener
    "payload a list": (b"payload=%5B1%2C2%5D", 400),
    "payload with fields of the wrong types": (urlencode({"payload": json.dumps(
        {"type": "block_actions", "actions": "nope", "user": 7})}).encode(), 400),
    "modal submission without values": (urlencode({"payload": json.dumps(
        {"type": "view_submission", "user": {"id": TRIAGER},
         "view": {"type": "modal", "callback_id": "sesguard.suppress_modal",
                  "state": {"values": {}}}})}).encode(), 200),
    "command with control characters": (urlencode(
        {"command": "/sesguard", "text": "\x00\u202e" * 10, "user_id": OUTSIDER}).encode(), 200),
    "command without a user or a response URL": (urlencode(
        {"command": "/sesguard", "text": "status", "user_id": ""}).encode(), 200),
    "not UTF-8 (so not what was signed once decoded)": (b"\xff\xfe\x00garbage", 401),
    "empty body": (b"", 404),
    "click whose user is a string": (_payload(_click(user=TRIAGER)), 400),
    "click whose actions are a string": (_payload(_click(actions="x")), 400),
    "click without actions": (_payload(_click(actions=[])), 400),
    "click whose action is a string": (_payload(_click(actions=["x"])), 400),
    "modal submission whose state is a string": (_payload(_suppress_modal(state="x")), 400),
    "modal submission whose values are a list": (_payload(_suppress_modal(state={"values": []})), 400),
    "JSON nested 150,000 deep": (DEEP_JSON, 400),
    "payload nested 150,000 deep": (b"payload=" + DEEP, 400),
}


@pytest.mark.parametrize("case", GARBAGE)
def test_signed_garbage_never_crashes_the_app_or_changes_anything(app, case):
    body, expected = GARBAGE[case]
    before, log_before = app.snapshot(), app.log()
    assert app.send(body) == expected
    assert app.snapshot() == before
    added = app.log()[len(log_before):]
    assert "Traceback" not in added and len(added.splitlines()) <= 2, added[:2000]


UNSIGNED_DEEP_REQUESTS = 200
UNSIGNED_DEEP = {
    "JSON, no signature headers": (DEEP_JSON, "application/json", _unsigned),
    "payload=, no signature headers": (b"payload=" + DEEP, FORM, _unsigned),
    "JSON, wrong signing secret": (DEEP_JSON, "application/json", FORGERIES["wrong signing secret"]),
    "payload=, wrong signing secret": (b"payload=" + DEEP, FORM, FORGERIES["wrong signing secret"]),
}
# One short line for each refusal at most: never the body, never a traceback.
LOG_BYTES_PER_REFUSAL = 200


def test_unsigned_bodies_nested_150000_deep_get_401_without_being_parsed(untouched):
    before, log_before = untouched.snapshot(), untouched.log()
    kinds = list(UNSIGNED_DEEP.values())
    statuses = []
    for n in range(UNSIGNED_DEEP_REQUESTS):
        body, content_type, headers = kinds[n % len(kinds)]
        statuses.append(post(untouched.url, body, {**headers(body), "Content-Type": content_type}).status)
    assert statuses == [401] * UNSIGNED_DEEP_REQUESTS
    assert untouched.snapshot() == before
    added = untouched.log()[len(log_before):]
    assert "Traceback" not in added and "[[[" not in added, added[:2000]
    assert len(added.splitlines()) <= UNSIGNED_DEEP_REQUESTS, added[:2000]
    assert len(added) <= UNSIGNED_DEEP_REQUESTS * LOG_BYTES_PER_REFUSAL, len(added)
