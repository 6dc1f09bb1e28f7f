"""Containment from the alert, end to end: signed clicks to the Slack app, IAM on moto's server over real HTTP."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import moto.settings
import pytest
from sqlmodel import select

from bot.contain.role_sessions import POLICY_NAME, revoked_before
from bot.slack.ids import Action
from detection.store import SignalHistory, utcnow
from tests.support.iam_admin import OWN, IamAdmin, role_record, user_record
from tests.support.local_aws import use_moto
from tests.support.slack_harness import (
    CHANNEL,
    OUTSIDER,
    TRIAGER,
    Harness,
    cloudtrail_record,
    migrated_sqlite,
    sso_identity,
    store_signals,
)

OTHER = "222233334444"  # reached through a role in SESGUARD_ROLE_ARNS
UNREACHABLE = "333344445555"  # no role for it
RESPONDER_ROLE = f"arn:aws:iam::{OTHER}:role/sesguard-responder"
DEACTIVATE, REVOKE = Action.DEACTIVATE_ACCESS_KEY.value, Action.REVOKE_ROLE_SESSIONS.value


class Aws(IamAdmin):
    """IAM on moto with what containment changes: a key's status, a role's revocation policy."""

    def key_status(self, name: str, key: str, account: str = OWN) -> str:
        keys = self.iam_in(account).list_access_keys(UserName=name)["AccessKeyMetadata"]
        return next(k["Status"] for k in keys if k["AccessKeyId"] == key)

    def revocation(self, role: str) -> dict | None:
        try:
            return self.iam.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)["PolicyDocument"]
        except self.iam.exceptions.NoSuchEntityException:
            return None


@pytest.fixture
def iam(iam_endpoint, monkeypatch, tmp_path):
    use_moto(monkeypatch, tmp_path, iam_endpoint, ("IAM", "STS"))
    return Aws()


@pytest.fixture
def harness_options(iam):
    return {"response_actions": True, "role_arns": [RESPONDER_ROLE]}


def posted(bot: Harness, record: dict) -> tuple[str, str]:
    [signal_id] = store_signals(bot.store, record)
    assert bot.post_alerts().posted == 1
    return signal_id, bot.alert(signal_id).slack_ts


def thread(bot: Harness, ts: str) -> list[str]:
    return [m.text for m in bot.slack.replies(CHANNEL, ts)]


def history(bot: Harness, signal_id: str) -> list[tuple[str, str]]:
    with bot.store.session() as session:
        steps = select(SignalHistory).where(SignalHistory.signal_id == signal_id).order_by(SignalHistory.id)
        rows = session.exec(steps)
        return [(r.actor, r.action) for r in rows if r.action not in ("detected", "posted")]


def click(bot: Harness, action: str, ts: str, user: str = TRIAGER, button: dict | None = None) -> None:
    assert bot.click(action, user, CHANNEL, ts, button=button).status == 200
    bot.settle()


def forged_button(bot: Harness, signal_id: str, action: str) -> dict:
    """A click for a button the alert does not show (a stale message or a forged payload)."""
    return {"text": {"type": "plain_text", "text": "forged"}, "value": signal_id, "action_id": action}


# ── the buttons ──────────────────────────────────────────────────────────────────────────────────────


def test_an_iam_users_alert_offers_deactivation_with_a_dialog_naming_the_key_user_and_account(bot, iam):
    name, key = iam.user()
    signal_id, ts = posted(bot, user_record(name, key))
    assert REVOKE not in bot.buttons(CHANNEL, ts)
    button = bot.button(CHANNEL, ts, DEACTIVATE)
    assert button["value"] == signal_id and button["style"] == "danger"
    confirm = button["confirm"]
    assert confirm["text"]["type"] == "plain_text"
    assert f"Sets access key {key} of IAM user {name} in account {OWN} to Inactive (iam:UpdateAccessKey)" \
        in confirm["text"]["text"]
    assert (confirm["title"]["text"], confirm["confirm"]["text"], confirm["deny"]["text"]) == \
        ("Deactivate access key?", "Deactivate", "Cancel")


def test_an_assumed_roles_alert_offers_revocation_with_a_dialog_naming_the_role_and_account(bot, iam):
    role = iam.role()
    _, ts = posted(bot, role_record(role))
    assert DEACTIVATE not in bot.buttons(CHANNEL, ts)
    text = bot.button(CHANNEL, ts, REVOKE)["confirm"]["text"]["text"]
    assert f"Adds the inline policy AWSRevokeOlderSessions to role {role} in account {OWN} (iam:PutRolePolicy)" in text
    assert "issued before now is denied every action" in text


def test_an_identity_center_session_gets_no_revocation_but_a_note_why(bot):
    _, ts = posted(bot, cloudtrail_record(identity=sso_identity("alice@example.com", account=OWN), account=OWN))
    assert REVOKE not in bot.buttons(CHANNEL, ts) and DEACTIVATE not in bot.buttons(CHANNEL, ts)
    assert "IAM Identity Center" in json.dumps(bot.slack.message(CHANNEL, ts).blocks)


def test_a_role_named_like_identity_center_at_path_slash_gets_the_revoke_button_and_no_note(bot, iam):
    """A name is not a path: detection keys an ordinary role by its issuer ARN's path, and so does containment."""
    role = f"AWSReservedSSO_Backup{uuid.uuid4().hex[:8]}"
    iam.iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17",
                                                                           "Statement": []}))
    _, ts = posted(bot, role_record(role, session="carol@example.com"))
    assert REVOKE in bot.buttons(CHANNEL, ts)
    assert "IAM Identity Center" not in json.dumps(bot.slack.message(CHANNEL, ts).blocks)
    click(bot, REVOKE, ts)
    assert revoked_before(iam.revocation(role)) is not None


def test_without_the_setting_there_are_no_containment_buttons_and_a_click_changes_nothing(tmp_path, iam):
    name, key = iam.user()
    with Harness(migrated_sqlite(tmp_path)) as bot:
        signal_id, ts = posted(bot, user_record(name, key))
        assert DEACTIVATE not in bot.buttons(CHANNEL, ts)
        click(bot, DEACTIVATE, ts, button=forged_button(bot, signal_id, DEACTIVATE))
        assert "SESGUARD_RESPONSE_ACTIONS" in bot.ephemerals(TRIAGER)[-1]
        assert iam.key_status(name, key) == "Active" and thread(bot, ts) == [] and history(bot, signal_id) == []


# ── Deactivate access key ────────────────────────────────────────────────────────────────────────────


def test_deactivate_sets_the_key_inactive_says_so_in_the_thread_and_history_and_a_second_click_is_already_done(
        bot, iam):
    name, key = iam.user()
    signal_id, ts = posted(bot, user_record(name, key))
    click(bot, DEACTIVATE, ts)
    assert iam.key_status(name, key) == "Inactive"
    assert thread(bot, ts) == [f":lock: Access key deactivated by <@{TRIAGER}>. {key} of IAM user {name} in "
                               f"account {OWN} is now Inactive."]
    assert history(bot, signal_id) == [(TRIAGER, "access key deactivated")]
    assert bot.alert(signal_id).status == "new"  # containment changes IAM, not the triage status
    alert = json.dumps(bot.slack.message(CHANNEL, ts).blocks)
    assert f"Access key deactivated by <@{TRIAGER}> at " in alert
    assert '"text": "*Status:* New: waiting for triage"' in alert  # the status line is not the containment's

    click(bot, DEACTIVATE, ts)
    assert thread(bot, ts)[-1] == (f":information_source: Access key already inactive by <@{TRIAGER}>. {key} of IAM "
                                   f"user {name} was already inactive; nothing was changed there.")
    assert [action for _, action in history(bot, signal_id)] == [
        "access key deactivated", "access key already inactive"]
    assert iam.key_status(name, key) == "Inactive"


def test_a_double_click_deactivates_once(bot, iam):
    name, key = iam.user()
    signal_id, ts = posted(bot, user_record(name, key))
    payload = bot.click_payload(DEACTIVATE, TRIAGER, CHANNEL, ts)
    barrier = threading.Barrier(2)

    def send() -> None:
        barrier.wait()
        bot.sender.interaction(payload)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    bot.settle()
    assert [action for _, action in history(bot, signal_id)].count("access key deactivated") == 1
    assert sum("Access key deactivated" in line for line in thread(bot, ts)) == 1
    assert iam.key_status(name, key) == "Inactive"


def test_a_non_triager_changes_nothing(bot, iam):
    name, key = iam.user()
    signal_id, ts = posted(bot, user_record(name, key))
    click(bot, DEACTIVATE, ts, user=OUTSIDER)
    assert "Only triagers" in bot.ephemerals(OUTSIDER)[-1]
    assert iam.key_status(name, key) == "Active" and thread(bot, ts) == [] and history(bot, signal_id) == []


def test_a_key_in_an_account_reached_through_its_role_is_deactivated_there(bot, iam):
    name, key = iam.user(account=OTHER)
    signal_id, ts = posted(bot, user_record(name, key, account=OTHER))
    click(bot, DEACTIVATE, ts)
    assert iam.key_status(name, key, OTHER) == "Inactive"
    assert f"in account {OTHER} is now Inactive" in thread(bot, ts)[-1]


def test_an_account_without_access_is_said_so_in_the_thread(bot, iam):
    signal_id, ts = posted(bot, user_record("bob", "AKIAIOSFODNN7EXAMPLE", account=UNREACHABLE))
    click(bot, DEACTIVATE, ts)
    [line] = thread(bot, ts)
    assert line.startswith(f":x: Access key deactivation failed by <@{TRIAGER}>. "
                           f"Could not reach account {UNREACHABLE}: "
                           f"sesguard has no access to account {UNREACHABLE}")
    assert history(bot, signal_id) == [(TRIAGER, "access key deactivation failed")]


# ── Revoke role sessions ─────────────────────────────────────────────────────────────────────────────


def test_revoke_puts_the_consoles_deny_policy_on_the_role_and_a_second_click_is_already_done(bot, iam):
    role = iam.role()
    signal_id, ts = posted(bot, role_record(role))
    before = utcnow()
    click(bot, REVOKE, ts)
    document = iam.revocation(role)
    [statement] = document["Statement"]
    cutoff = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert document["Version"] == "2012-10-17" and list(statement["Condition"]) == ["DateLessThan"]
    assert before - timedelta(seconds=1) <= revoked_before(document) <= utcnow()
    assert revoked_before(document) >= bot.alert(signal_id).last_seen
    assert cutoff.endswith("Z") and len(cutoff) == len("2024-10-10T09:43:48.085Z")
    assert thread(bot, ts)[-1].startswith(f":lock: Role sessions revoked by <@{TRIAGER}>. Role {role} in account {OWN} "
                                          f"now denies every session issued before ")

    click(bot, REVOKE, ts)
    assert thread(bot, ts)[-1].startswith(
        f":information_source: Role sessions already revoked by <@{TRIAGER}>. Role {role}")
    assert iam.revocation(role) == document  # not redone
    assert [action for _, action in history(bot, signal_id)] == [
        "role sessions revoked", "role sessions already revoked"]


def test_a_revocation_older_than_the_last_call_is_replaced(bot, iam):
    role = iam.role()
    signal_id, ts = posted(bot, role_record(role))
    issued_before = {"DateLessThan": {"aws:TokenIssueTime": "2014-05-07T23:47:00Z"}}
    old = {"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "*", "Resource": "*",
                                                  "Condition": issued_before}}
    iam.iam.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(old))
    click(bot, REVOKE, ts)
    assert revoked_before(iam.revocation(role)) >= bot.alert(signal_id).last_seen
    assert ("It replaces the earlier AWSRevokeOlderSessions, "
            "which covered sessions issued before 2014-05-07 23:47:00 UTC") in thread(bot, ts)[-1]


@pytest.mark.parametrize("decoy", [
    # a 2099 cut-off under a second condition that never holds
    {"DateLessThan": {"aws:TokenIssueTime": "2099-01-01T00:00:00Z"}, "StringEquals": {"aws:username": "nobody"}},
    # another operator than the console's
    {"DateLessThanIfExists": {"aws:TokenIssueTime": "2099-01-01T00:00:00Z"}},
])
def test_a_decoy_with_a_late_date_is_no_revocation_and_is_overwritten(bot, iam, decoy):
    """An attacker who may put inline policies on their role plants AWSRevokeOlderSessions with a 2099 cut-off
    that never applies: reading only the date said "already revoked, nothing changed" and the sessions kept
    working. Anything but the exact deny-all-before-time shape is overwritten, as the console does."""
    role = iam.role()
    signal_id, ts = posted(bot, role_record(role))
    planted = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                                                        "Condition": decoy}]}
    iam.iam.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(planted))
    click(bot, REVOKE, ts)
    document = iam.revocation(role)
    assert document != planted
    [statement] = document["Statement"]
    assert statement["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": statement["Condition"]["DateLessThan"][
        "aws:TokenIssueTime"]}}
    assert bot.alert(signal_id).last_seen <= revoked_before(document) <= utcnow()
    assert thread(bot, ts)[-1].startswith(f":lock: Role sessions revoked by <@{TRIAGER}>.")
    assert "It replaces an earlier AWSRevokeOlderSessions that was not a revocation" in thread(bot, ts)[-1]
    assert [action for _, action in history(bot, signal_id)] == ["role sessions revoked"]


# ── IAM refusing, and forged names ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("action", [DEACTIVATE, REVOKE])
def test_access_denied_by_iam_is_shown_in_the_thread_and_nothing_changes(bot, iam, monkeypatch, action):
    name, key = iam.user()
    role = iam.role()
    responder, credentials = iam.user_allowed(["sts:GetCallerIdentity", "iam:ListAccessKeys", "iam:GetRolePolicy"])
    signal_id, ts = posted(bot, user_record(name, key) if action == DEACTIVATE else role_record(role))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto evaluates IAM policies now
    click(bot, action, ts)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    [line] = thread(bot, ts)
    denied = "iam:UpdateAccessKey" if action == DEACTIVATE else "iam:PutRolePolicy"
    assert line.startswith(":x: ") and f"AccessDenied: User: arn:aws:iam::{OWN}:user/{responder} is not authorized " \
        f"to perform: {denied}" in line
    assert history(bot, signal_id)[-1][1] in ("access key deactivation failed", "role session revocation failed")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert iam.key_status(name, key) == "Active" and iam.revocation(role) is None


@pytest.mark.parametrize("record, why", [
    (user_record("alice?Action=DeleteUser", "AKIAIOSFODNN7EXAMPLE"), "is not an IAM user ARN with a valid user name"),
    (user_record("al\u0130ce", "AKIAIOSFODNN7EXAMPLE"), "is not an IAM user ARN with a valid user name"),
    (user_record("alice", "AKIA<!channel>EXAMPLE"), "is not an AWS access key ID"),
    (dict(user_record("alice", "AKIAIOSFODNN7EXAMPLE"), recipientAccountId="999988887777"),
     f"the user belongs to account {OWN}, not to the alert's account 999988887777"),
    (role_record("ci/../admin"), "is not an assumed-role ARN with a valid role name"),
])
def test_a_forged_name_gets_no_button_and_a_forged_click_is_refused_before_any_iam_call(bot, monkeypatch, record, why):
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", "http://127.0.0.1:9")  # any IAM or STS call would fail to connect
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    action = REVOKE if record["userIdentity"]["type"] == "AssumedRole" else DEACTIVATE
    signal_id, ts = posted(bot, record)
    assert action not in bot.buttons(CHANNEL, ts)
    assert "is not offered" in json.dumps(bot.slack.message(CHANNEL, ts).blocks)
    click(bot, action, ts, button=forged_button(bot, signal_id, action))
    [line] = thread(bot, ts)
    assert "Refused: " in line and why in line
    assert "Nothing was sent to IAM." in line and "<!channel>" not in line
    assert history(bot, signal_id)[-1][1].endswith("failed")


def test_a_click_for_an_action_that_does_not_apply_to_the_identity_changes_nothing(bot, iam):
    role = iam.role()
    signal_id, ts = posted(bot, role_record(role))
    click(bot, DEACTIVATE, ts, button=forged_button(bot, signal_id, DEACTIVATE))
    assert "does not apply to this alert" in bot.ephemerals(TRIAGER)[-1]
    assert thread(bot, ts) == [] and history(bot, signal_id) == []


def test_a_closed_alert_offers_no_containment(bot, iam):
    name, key = iam.user()
    signal_id, ts = posted(bot, user_record(name, key))
    click(bot, "sesguard.not_an_issue", ts)
    assert DEACTIVATE not in bot.buttons(CHANNEL, ts)
    click(bot, DEACTIVATE, ts, button=forged_button(bot, signal_id, DEACTIVATE))
    assert "Nothing was changed" in bot.ephemerals(TRIAGER)[-1] and iam.key_status(name, key) == "Active"
