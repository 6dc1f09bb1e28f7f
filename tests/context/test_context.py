"""Triage context (SPEC §10), end to end: CloudTrail records through the real detection into the store, the
alert posted to the Slack stand-in, the worker's job reading IAM, IAM Identity Center and the Identity Store on
moto's server and Slack's users.lookupByEmail, the alert updated in place, Contact user reaching the owner."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import moto.settings
import pytest
from sqlmodel import select

from bot.context.jobs import gather_pending
from bot.context.tables import DONE, TriageContext
from bot.slack.client import slack_client
from bot.slack.ids import Action
from detection.pacing import RequestSlots
from tests.context.conftest import OTHER, READER_ROLE
from tests.support.iam_admin import OWN, role_record, user_record
from tests.support.slack_harness import CHANNEL, TRIAGER, Harness, store_signals

ALICE, ALICE_EMAIL = "UALICE001", "alice@example.com"
JDOE, JDOE_EMAIL = "UJDOE0001", "jdoe@example.com"
BOB = "UBOB00001"
OFFICE = "198.51.100.0/24=Berlin office"
CONTACT = Action.CONTACT_USER.value


@pytest.fixture
def slack_people():
    return {ALICE_EMAIL: ALICE, JDOE_EMAIL: JDOE}


@pytest.fixture
def harness_options(aws):
    return {"known_networks": [OFFICE, "10.0.0.0/8"], "role_arns": [READER_ROLE]}


def posted(bot: Harness, *records: dict) -> tuple[str, str]:
    [signal_id] = store_signals(bot.store, *records)
    assert bot.post_alerts().posted == 1
    return signal_id, bot.alert(signal_id).slack_ts


def gather(bot: Harness):
    return gather_pending(bot.store, bot.settings, slack_client(bot.settings))


def shown(bot: Harness, ts: str) -> str:
    """The alert as Slack holds it now: every text of its blocks."""
    return json.dumps(bot.slack.message(CHANNEL, ts).blocks)


def context_line(bot: Harness, ts: str) -> str:
    [section] = [b for b in bot.slack.message(CHANNEL, ts).blocks
                 if b.get("text", {}).get("text", "").startswith("*Triage context*")]
    return section["text"]["text"]


def stored(bot: Harness, signal_id: str) -> TriageContext:
    with bot.store.session() as session:
        row = session.get(TriageContext, signal_id)
        assert row is not None
        return row


def contacted(bot: Harness, ts: str) -> list[str]:
    assert bot.click(CONTACT, TRIAGER, CHANNEL, ts).status == 200
    bot.settle()
    return [call["users"] for call in bot.slack.calls_to("conversations.open")]


# ── the independent check: a tagged IAM user's key from the office network ───────────────────────────


def test_the_alert_is_posted_first_then_shows_the_keys_creation_the_owner_and_the_office(bot, aws):
    name, key = aws.user({"owner": ALICE_EMAIL, "team": "payments"})
    created = aws.iam.list_access_keys(UserName=name)["AccessKeyMetadata"][0]["CreateDate"]
    signal_id, ts = posted(bot, user_record(name, key, ip="198.51.100.7"))
    assert "Triage context" not in shown(bot, ts)  # posted without waiting for any lookup

    result = gather(bot)

    assert (result.gathered, result.unknown, result.updated) == (1, 0, 1)
    [update] = bot.slack.calls_to("chat.update")
    assert update["ts"] == ts  # in place
    line = context_line(bot, ts)
    assert f"*Key* {key}: created {created:%Y-%m-%d} (less than an hour before these calls)" in line
    assert "never used before, says IAM" in line and "never seen before in this account's stored SES calls" in line
    assert f"*Owner*: <@{ALICE}> — IAM user tag owner: {ALICE_EMAIL}" in line
    assert "*Address* 198.51.100.7: Berlin office (198.51.100.0/24, SESGUARD_KNOWN_NETWORKS)" in line
    assert "not in AWS's ranges of 2025-01-01, the shipped excerpt" in line
    row = stored(bot, signal_id)
    assert (row.state, row.owner_slack_id, row.unknown) == (DONE, ALICE, 0)
    # Contact user asks the owner directly: no picker
    assert contacted(bot, ts) == [ALICE]
    assert bot.slack.calls_to("views.open") == []
    # the IAM reads were paced through the store, per account
    with bot.store.session() as session:
        assert session.get(RequestSlots, f"iam:{OWN}") is not None


def test_a_second_pass_gathers_nothing_again(bot, aws):
    name, key = aws.user({"owner": ALICE_EMAIL})
    posted(bot, user_record(name, key))
    assert gather(bot).gathered == 1
    assert gather(bot).gathered == 0
    assert len(bot.slack.calls_to("chat.update")) == 1


# ── the owner ────────────────────────────────────────────────────────────────────────────────────────


def test_an_untagged_user_has_no_owner_and_contact_user_keeps_the_picker(bot, aws):
    name, key = aws.user({"team": "payments"})
    signal_id, ts = posted(bot, user_record(name, key))
    gather(bot)
    assert f"*Owner*: none found (no tag owner, email, contact on IAM user {name})" in context_line(bot, ts)
    assert stored(bot, signal_id).owner_slack_id is None
    assert contacted(bot, ts) == []
    assert [view["callback_id"] for view in bot.opened_views()] == ["sesguard.pick_person_modal"]


def test_a_role_with_an_owner_tag_in_another_account_is_read_through_its_role(bot, aws):
    role = aws.role({"Contact": BOB}, account=OTHER)  # tag keys match whatever their case
    signal_id, ts = posted(bot, role_record(role, account=OTHER))
    gather(bot)
    line = context_line(bot, ts)
    assert f"*Owner*: <@{BOB}> — IAM role tag contact: {BOB}" in line
    assert "*Key*: not an IAM user: no long-term access key to look up" in line
    assert contacted(bot, ts) == [BOB]


def test_mapping_wins_over_the_owner_tag(bot, aws):
    name, key = aws.user({"owner": ALICE_EMAIL})
    signal_id, ts = posted(bot, user_record(name, key))
    gather(bot)
    bot.command(f"map arn:aws:iam::{OWN}:user/{name} <@UMAPPED01|someone>")
    assert contacted(bot, ts) == ["UMAPPED01"]


def test_an_sso_session_whose_name_is_not_an_email_is_found_in_the_identity_store(bot, aws):
    user_name = f"jdoe{uuid.uuid4().hex[:6]}"
    aws.identity_store_user(user_name, JDOE_EMAIL, "john.doe@example.org")
    role = "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
    signal_id, ts = posted(bot, role_record(role, session=user_name, path="/aws-reserved/sso.amazonaws.com/"))
    gather(bot)
    assert f"*Owner*: <@{JDOE}> — Identity Store user {user_name}: {JDOE_EMAIL}" in context_line(bot, ts)
    assert contacted(bot, ts) == [JDOE]


def test_an_sso_session_unknown_to_the_identity_store_names_nobody(bot, aws):
    role = "AWSReservedSSO_ReadOnly_0123456789abcdef"
    signal_id, ts = posted(bot, role_record(role, session="ghost-user", path="/aws-reserved/sso.amazonaws.com/"))
    gather(bot)
    assert f"*Owner*: none found (no Identity Store user named ghost-user (read from account {OWN}))" \
        in context_line(bot, ts)
    assert stored(bot, signal_id).unknown == 0


def test_hostile_tag_values_are_escaped_and_cut(bot, aws):
    hostile = "<!channel> <@UTRIAGER1> <https://evil.example|click>\u202e\n\x85" + "x" * 200
    name, key = aws.user({"owner": hostile})
    signal_id, ts = posted(bot, user_record(name, key))
    gather(bot)
    line = context_line(bot, ts)
    assert "<!channel>" not in shown(bot, ts) and "<https://evil" not in shown(bot, ts)
    assert "&lt;!channel&gt; &lt;@UTRIAGER1&gt; &lt;https://evil.example|click&gt;???xxx" in line
    owner = next(part for part in line.split("\n") if part.startswith("• *Owner*"))
    assert "…" in owner and len(owner) < 400
    assert "neither an e-mail nor a Slack user ID: nobody to DM" in owner
    assert stored(bot, signal_id).owner_slack_id is None


# ── the address ──────────────────────────────────────────────────────────────────────────────────────


def test_addresses_inside_and_outside_aws_ranges_and_the_known_networks(bot, aws):
    name, key = aws.user()
    now = datetime.now(UTC)
    records = [user_record(name, key, ip=ip, when=now - timedelta(minutes=n))
               for n, ip in enumerate(["3.80.1.2", "203.0.113.9", "2600:1f18::1", "10.1.2.3", "ses.amazonaws.com"])]
    signal_id, ts = posted(bot, *records)
    gather(bot)
    line = context_line(bot, ts)
    assert ("*Address* 3.80.1.2: in none of SESGUARD_KNOWN_NETWORKS · AWS EC2 in us-east-1 (3.80.0.0/12; AWS's "
            "ranges of 2025-01-01, the shipped excerpt: run `sesguard ip-ranges`)") in line
    assert "*Address* 203.0.113.9: in none of SESGUARD_KNOWN_NETWORKS · not in AWS's ranges" in line
    assert "*Address* 2600:1f18::1: in none of SESGUARD_KNOWN_NETWORKS · AWS EC2 in us-east-1 (2600:1f18::/33" in line
    assert "*Address* 10.1.2.3: a known network (10.0.0.0/8, SESGUARD_KNOWN_NETWORKS)" in line
    assert "*Address* ses.amazonaws.com: not an IP address (an AWS service calling on the caller's behalf)" in line


def test_calls_stored_before_from_the_address_and_with_the_key(bot, aws):
    name, key = aws.user()
    earlier = datetime.now(UTC) - timedelta(days=40)  # past SESGUARD_FORGET_DAYS: the identity is new again
    store_signals(bot.store, user_record(name, key, ip="198.51.100.7", when=earlier),
                  user_record("bob", "AKIAIOSFODNN7BOBBOBB", ip="198.51.100.7", when=earlier + timedelta(days=1)))
    bot.post_alerts()
    signal_id, ts = posted(bot, user_record(name, key, ip="198.51.100.7"))
    gather(bot)
    line = context_line(bot, ts)
    assert f"seen before in this account: 1 calls, {earlier:%Y-%m-%d}" in line
    assert (f"this identity called from it before: 1 calls, {earlier:%Y-%m-%d} · this account called from it "
            f"before: 2 calls, {earlier:%Y-%m-%d} to {earlier + timedelta(days=1):%Y-%m-%d}") in line


# ── lookups that fail ────────────────────────────────────────────────────────────────────────────────


def test_a_denied_get_access_key_last_used_shows_unknown_and_is_counted(bot, aws, monkeypatch):
    name, key = aws.user({"owner": ALICE_EMAIL})
    reader, credentials = aws.user_allowed(["sts:GetCallerIdentity", "iam:ListUserTags", "iam:ListAccessKeys"])
    signal_id, ts = posted(bot, user_record(name, key))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto evaluates IAM policies now
    try:
        result = gather(bot)
    finally:
        monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    assert (result.gathered, result.unknown) == (1, 1)
    line = context_line(bot, ts)
    assert (f"last used unknown (iam:GetAccessKeyLastUsed denied: AccessDenied: User: arn:aws:iam::{OWN}:user/"
            f"{reader} is not authorized to perform: iam:GetAccessKeyLastUsed") in line
    assert f"*Owner*: <@{ALICE}>" in line and "created 20" in line  # the other lookups stand
    assert stored(bot, signal_id).unknown == 1


def test_an_account_sesguard_cannot_reach_shows_unknown_and_the_alert_stands(bot, aws):
    name, key = "carol", "AKIAIOSFODNN7CAROL01"
    signal_id, ts = posted(bot, user_record(name, key, account="999988887777"))
    result = gather(bot)
    line = context_line(bot, ts)
    assert "created unknown (no access to account 999988887777" in line
    assert "*Owner*: unknown (no access to account 999988887777" in line
    assert result.unknown == stored(bot, signal_id).unknown == 3  # creation, last use, owner
    assert bot.alert(signal_id).slack_ts == ts


def test_slack_refusing_the_update_leaves_it_to_the_notifier(bot, aws):
    name, key = aws.user({"owner": ALICE_EMAIL})
    signal_id, ts = posted(bot, user_record(name, key))
    bot.slack.fail("chat.update", "invalid_blocks")  # refused once; the context is stored all the same
    result = gather(bot)
    assert (result.gathered, result.updated) == (1, 0)
    assert "Triage context" not in shown(bot, ts)
    assert bot.post_alerts().updated == 1  # the alert counts as changed since it was posted
    assert f"<@{ALICE}>" in context_line(bot, ts)


def test_alerts_posted_before_the_last_day_are_left_alone(bot, aws):
    name, key = aws.user()
    signal_id, _ = posted(bot, user_record(name, key))
    with bot.store.session() as session:
        from detection.store import SignalRow

        row = session.get(SignalRow, signal_id)
        row.created_at = datetime.now(UTC) - timedelta(days=2)
        session.add(row)
        session.commit()
    assert gather(bot).gathered == 0
    with bot.store.session() as session:
        assert session.exec(select(TriageContext)).all() == []
