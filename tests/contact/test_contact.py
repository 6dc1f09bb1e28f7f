"""Contact user: finding the person, the DM, only that person answering, and the time-out that escalates."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.contact.people import sso_email
from bot.contact.questions import escalate_overdue
from bot.contact.tables import Contact, IdentityMapping
from bot.worker.scheduler import Worker
from detection.sources.lookup import LookupSource
from detection.store import AuditEntry, SignalHistory
from tests.support.local_aws import worker_settings
from tests.support.slack_harness import (
    ACCOUNT,
    CHANNEL,
    OUTSIDER,
    TRIAGER,
    Harness,
    cloudtrail_record,
    migrated_sqlite,
    sso_identity,
    store_signals,
)
from tests.support.waiting import wait_for

CONTACT, ESCALATE = "sesguard.contact_user", "sesguard.escalate"
YES, NO = "sesguard.answer_yes", "sesguard.answer_no"
ALICE = "UALICE001"
EMAIL = "alice@example.com"


@pytest.fixture
def slack_people():
    return {EMAIL: ALICE}


def sso_alert(bot: Harness, email: str = EMAIL) -> tuple[str, str]:
    [signal_id] = store_signals(bot.store, cloudtrail_record(identity=sso_identity(email)))
    bot.post_alerts()
    return signal_id, bot.alert(signal_id).slack_ts


def contacts(bot: Harness) -> list[Contact]:
    with bot.store.session() as session:
        return list(session.exec(select(Contact).order_by(Contact.id)).all())


def thread(bot: Harness, ts: str) -> list[str]:
    return [m.text for m in bot.slack.replies(CHANNEL, ts)]


def ask_alice(bot: Harness) -> tuple[str, str, str, str]:
    """Contact user on an SSO alert; (signal id, alert ts, DM channel, DM ts)."""
    signal_id, ts = sso_alert(bot)
    bot.click(CONTACT, TRIAGER, CHANNEL, ts)
    bot.settle()
    [dm] = [c for c in bot.slack.calls_to("chat.postMessage") if c["channel"].startswith("D")]
    dm_ts = bot.slack.channel_messages(dm["channel"])[0].ts
    return signal_id, ts, dm["channel"], dm_ts


def test_sso_session_names_that_are_emails_name_the_person():
    assert sso_email("arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0a1b/alice@example.com") == EMAIL
    assert sso_email("arn:aws:sts::1:assumed-role/ci-deploy/alice@example.com") is None  # chosen by the caller
    assert sso_email("arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0a1b/i-0abc123") is None
    assert sso_email("arn:aws:iam::1:user/alice@example.com") is None


def test_contact_user_finds_the_sso_user_by_email_and_asks_them_in_a_dm(bot):
    signal_id, ts, dm_channel, dm_ts = ask_alice(bot)
    assert [c["email"] for c in bot.slack.calls_to("users.lookupByEmail")] == [EMAIL]
    assert [c["users"] for c in bot.slack.calls_to("conversations.open")] == [ALICE]
    dm = bot.slack.message(dm_channel, dm_ts)
    buttons = [e for b in dm.blocks if b["type"] == "actions" for e in b["elements"]]
    [question] = contacts(bot)
    assert [(b["action_id"], b["value"]) for b in buttons] == [(YES, str(question.id)), (NO, str(question.id))]
    assert (question.slack_user_id, question.asked_by, question.dm_channel, question.dm_ts) == (
        ALICE, TRIAGER, dm_channel, dm_ts)
    assert question.deadline - question.asked_at == timedelta(minutes=30)
    assert bot.alert(signal_id).status == "contacting"
    assert bot.buttons(CHANNEL, ts) == [ESCALATE, "sesguard.suppress", "sesguard.not_an_issue", "sesguard.investigate"]
    assert f"Asked <@{ALICE}>" in thread(bot, ts)[0] and f"<@{TRIAGER}>" in thread(bot, ts)[0]


def test_a_double_click_on_contact_user_sends_one_dm(bot):
    signal_id, ts = sso_alert(bot)
    button = bot.button(CHANNEL, ts, CONTACT)
    bot.click(CONTACT, TRIAGER, CHANNEL, ts, button=button)
    bot.settle()
    bot.click(CONTACT, TRIAGER, CHANNEL, ts, button=button)
    bot.settle()
    assert len(contacts(bot)) == 1 and len(bot.slack.calls_to("conversations.open")) == 1
    assert "Nothing was changed" in bot.ephemerals(TRIAGER)[0]


def test_the_answer_yes_lands_in_the_thread_and_status(bot):
    signal_id, ts, dm_channel, dm_ts = ask_alice(bot)
    bot.click(YES, ALICE, dm_channel, dm_ts)
    bot.settle()
    assert bot.alert(signal_id).status == "confirmed"
    assert contacts(bot)[0].answer == "yes"
    assert thread(bot, ts)[-1] == f":white_check_mark: <@{ALICE}> answered: *yes, this was me*."
    dm = bot.slack.message(dm_channel, dm_ts)
    assert not any(b["type"] == "actions" for b in dm.blocks) and "yes, this was me" in dm.text


def test_the_answer_no_escalates_with_a_channel_mention(bot):
    signal_id, ts, dm_channel, dm_ts = ask_alice(bot)
    bot.click(NO, ALICE, dm_channel, dm_ts)
    bot.settle()
    assert bot.alert(signal_id).status == "escalated"
    assert thread(bot, ts)[-1].startswith(f"<!channel> :warning: <@{ALICE}> answered: *no, this wasn't me*")
    assert "Escalated, by <@UALICE001>" in str(bot.slack.message(CHANNEL, ts).blocks)


def test_only_the_contacted_person_may_answer(bot):
    signal_id, ts, dm_channel, dm_ts = ask_alice(bot)
    replies_before = len(thread(bot, ts))
    for user in (OUTSIDER, TRIAGER):
        bot.click(NO, user, dm_channel, dm_ts)
    bot.settle()
    assert bot.alert(signal_id).status == "contacting" and contacts(bot)[0].answer is None
    assert len(thread(bot, ts)) == replies_before
    # The refusal is addressed to them, but they are not in Alice's DM: Slack shows it to nobody.
    assert bot.ephemerals(OUTSIDER, delivered=False) == [f"Only <@{ALICE}> can answer this question."]
    assert bot.slack.errors_of("chat.postEphemeral") == ["user_not_in_channel"] * 2 and bot.ephemerals(OUTSIDER) == []


@pytest.mark.parametrize("value", ["\u0661", "\uff11", "\u00b9", " 1", "1_0", "+1"])
def test_an_answer_button_whose_value_is_not_ascii_digits_is_not_a_question(bot, value):
    signal_id, ts, dm_channel, dm_ts = ask_alice(bot)
    [question] = contacts(bot)
    assert question.id == 1  # so that each value above would read as this question's id
    bot.click(YES, ALICE, dm_channel, dm_ts, value=value)
    bot.settle()
    assert bot.alert(signal_id).status == "contacting" and contacts(bot)[0].answer is None
    assert bot.ephemerals(ALICE) == ["This question is not known."]


def test_a_second_answer_changes_nothing(bot):
    signal_id, ts, dm_channel, dm_ts = ask_alice(bot)
    button = bot.button(dm_channel, dm_ts, YES)
    bot.click(YES, ALICE, dm_channel, dm_ts, button=button)
    bot.settle()
    bot.click(NO, ALICE, dm_channel, dm_ts, button=dict(button, action_id=NO))
    bot.settle()
    assert bot.alert(signal_id).status == "confirmed" and contacts(bot)[0].answer == "yes"
    assert "already closed" in bot.ephemerals(ALICE)[0]


def test_no_answer_in_time_escalates_once(bot):
    signal_id, ts, dm_channel, dm_ts = ask_alice(bot)
    deadline = contacts(bot)[0].deadline
    assert escalate_overdue(bot.store, bot.settings, now=deadline - timedelta(seconds=1)) == 0
    assert escalate_overdue(bot.store, bot.settings, now=deadline + timedelta(seconds=1)) == 1
    assert escalate_overdue(bot.store, bot.settings, now=deadline + timedelta(minutes=5)) == 0
    assert bot.alert(signal_id).status == "escalated" and contacts(bot)[0].answer == "timeout"
    assert thread(bot, ts)[-1] == f"<!channel> :hourglass: <@{ALICE}> did not answer within 30 minutes. Escalated."
    assert not any(b["type"] == "actions" for b in bot.slack.message(dm_channel, dm_ts).blocks)
    bot.click(YES, ALICE, dm_channel, dm_ts, button={"action_id": YES, "value": str(contacts(bot)[0].id), "text": {}})
    bot.settle()
    assert "already closed (timeout)" in bot.ephemerals(ALICE)[0] and bot.alert(signal_id).status == "escalated"


def test_the_worker_escalates_an_unanswered_contact_once_at_a_decimal_time_out(tmp_path, aws, monkeypatch):
    """SESGUARD_CONTACT_TIMEOUT_MINUTES=0.05 (3 s) as the worker reads it, and the worker's own job, not a
    chosen `now`. Once the first contact is escalated, a second one asked after it is escalated too: the job
    ran again after the first escalation, which it did not repeat."""
    monkeypatch.setenv("SESGUARD_CONTACT_TIMEOUT_MINUTES", "0.05")
    timeout = worker_settings().contact_timeout_minutes
    assert timeout == 0.05
    with Harness(migrated_sqlite(tmp_path), contact_timeout_minutes=timeout) as bot:
        bot.slack.users_by_email.update({EMAIL: ALICE, "bob@example.com": "UBOB00001"})
        first, first_ts, _, _ = ask_alice(bot)
        assert contacts(bot)[0].deadline - contacts(bot)[0].asked_at == timedelta(seconds=3)
        worker = Worker(bot.settings, bot.store, LookupSource(bot.settings.aws_regions, [], bot.store))
        running = threading.Thread(target=worker.run, name="worker")
        running.start()
        try:
            wait_for(lambda: bot.alert(first).status == "escalated", "the first contact's time-out")
            second, second_ts = sso_alert(bot, "bob@example.com")
            bot.click(CONTACT, TRIAGER, CHANNEL, second_ts)
            bot.settle()
            wait_for(lambda: bot.alert(second).status == "escalated", "the second contact's time-out")
        finally:
            worker.stop.set()
            running.join(timeout=60)
        assert not running.is_alive()
        with bot.store.session() as session:
            timed_out = list(session.exec(select(SignalHistory.signal_id).where(
                SignalHistory.action == "no answer in time")))
        assert sorted(timed_out) == sorted([first, second])
        for ts, person in ((first_ts, ALICE), (second_ts, "UBOB00001")):
            lines = [line for line in thread(bot, ts) if ":hourglass:" in line]
            assert lines == [f"<!channel> :hourglass: <@{person}> did not answer within 0.05 minutes. Escalated."]


def test_a_time_out_after_a_triager_closed_the_alert_does_not_escalate(bot):
    signal_id, ts, dm_channel, dm_ts = ask_alice(bot)
    bot.click("sesguard.not_an_issue", TRIAGER, CHANNEL, ts)
    bot.settle()
    assert escalate_overdue(bot.store, bot.settings, now=contacts(bot)[0].deadline + timedelta(seconds=1)) == 0
    assert bot.alert(signal_id).status == "closed" and "<!channel>" not in thread(bot, ts)[-1]


def test_a_mapping_set_with_sesguard_map_names_the_person(bot):
    [signal_id] = store_signals(bot.store, cloudtrail_record(user="deploy-bot"))
    bot.post_alerts()
    ts = bot.alert(signal_id).slack_ts
    answer = bot.command(f"map {bot.alert(signal_id).identity} <@UBOB00001|bob>")
    assert "Mapped" in answer["text"] and "<@UBOB00001>" in answer["text"]
    bot.click(CONTACT, TRIAGER, CHANNEL, ts)
    bot.settle()
    assert bot.slack.calls_to("users.lookupByEmail") == [] and contacts(bot)[0].slack_user_id == "UBOB00001"


def test_when_nobody_is_known_the_clicker_picks_the_person_in_a_modal(bot):
    [signal_id] = store_signals(bot.store, cloudtrail_record(user="mystery"))
    bot.post_alerts()
    ts = bot.alert(signal_id).slack_ts
    bot.click(CONTACT, TRIAGER, CHANNEL, ts)
    bot.settle()
    [view] = bot.opened_views()
    assert view["callback_id"] == "sesguard.pick_person_modal" and view["private_metadata"] == signal_id
    assert contacts(bot) == []
    reply = bot.submit(view, TRIAGER, {
        "person": {"type": "users_select", "selected_user": "UCAROL001"},
        "remember": {"type": "checkboxes", "selected_options": [{"value": "yes"}]},
    })
    bot.settle()
    assert reply.status == 200
    assert contacts(bot)[0].slack_user_id == "UCAROL001" and bot.alert(signal_id).status == "contacting"
    with bot.store.session() as session:
        mapping = session.get(IdentityMapping, bot.alert(signal_id).identity)
        audit = session.exec(select(AuditEntry)).all()
    assert mapping.slack_user_id == "UCAROL001" and [a.action for a in audit] == ["identity mapped"]


def test_a_dm_that_cannot_be_sent_changes_nothing_and_tells_the_clicker(bot):
    signal_id, ts = sso_alert(bot)
    bot.slack.fail("conversations.open", "invalid_auth")
    bot.click(CONTACT, TRIAGER, CHANNEL, ts)
    bot.settle()
    assert bot.alert(signal_id).status == "new" and contacts(bot)[0].answer == "undelivered"
    assert "Could not send <@UALICE001> a message" in bot.ephemerals(TRIAGER)[0]
    bot.click(CONTACT, TRIAGER, CHANNEL, ts)  # and it can be tried again
    bot.settle()
    assert bot.alert(signal_id).status == "contacting"


def lookalike_role(email: str = EMAIL) -> dict:
    """An ordinary role at path `/` whose name looks like IAM Identity Center's, and whose session name (chosen by
    whoever assumed it) is somebody's e-mail address."""
    role = "AWSReservedSSO_Backup"
    return {
        "type": "AssumedRole", "principalId": f"AROAEXAMPLE:{email}",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{email}", "accountId": ACCOUNT,
        "accessKeyId": "ASIAEXAMPLE",
        "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "accountId": ACCOUNT,
                                             "userName": role, "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}"}},
    }


def test_a_role_named_like_identity_center_at_another_path_is_no_identity_center_session(bot):
    """A name is not a path: Contact user would have DMed whatever e-mail the session name holds."""
    [signal_id] = store_signals(bot.store, cloudtrail_record(identity=lookalike_role()))
    bot.post_alerts()
    bot.click(CONTACT, TRIAGER, CHANNEL, bot.alert(signal_id).slack_ts)
    bot.settle()
    assert bot.slack.calls_to("users.lookupByEmail") == [] and contacts(bot) == []
    [view] = bot.opened_views()  # nobody known: the clicker picks
    assert view["callback_id"] == "sesguard.pick_person_modal"
