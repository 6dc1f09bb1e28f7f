"""The containment actions on their own: the revocation policy as the console writes it, what counts as
already revoked, and confirmations that always fit Slack's dialog and say what will change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.contain import access_key, names, role_sessions
from bot.contain.action import TEXT_LIMIT

ACCOUNT = "111122223333"
NOW = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)


def test_the_policy_is_the_consoles_deny_all_before_now():
    assert role_sessions.revocation_policy(NOW) == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                       "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-03-04T05:06:07.891Z"}}}],
    }
    assert role_sessions.revoked_before(role_sessions.revocation_policy(NOW)) == NOW.replace(microsecond=891000)


@pytest.mark.parametrize("document, cutoff", [
    # the older documentation's form: one statement object, whole seconds
    ({"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "DateLessThan": {"aws:TokenIssueTime": "2014-05-07T23:47:00Z"}}}}, datetime(2014, 5, 7, 23, 47, tzinfo=UTC)),
    ({"Statement": [{"Effect": "Deny", "Action": ["*"], "Resource": ["*"], "Condition": {
        "DateLessThan": {"AWS:TokenIssueTime": ["2020-01-01T00:00:00Z"]}}}]}, datetime(2020, 1, 1, tzinfo=UTC)),
    ("%7B%22Statement%22%3A%7B%22Effect%22%3A%22Deny%22%2C%22Action%22%3A%22%2A%22%2C%22Resource%22%3A%22%2A%22%2C"
     "%22Condition%22%3A%7B%22DateLessThan%22%3A%7B%22aws%3ATokenIssueTime%22%3A%222021-02-03T04%3A05%3A06Z%22%7D%7D%7D%7D",
     datetime(2021, 2, 3, 4, 5, 6, tzinfo=UTC)),  # URL-encoded, as the API returns it
    ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {
        "DateLessThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}}}]}, None),  # not a deny
    ({"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {
        "DateLessThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}}}]}, None),  # not everything
    ({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}, None),  # no time
    ("not json", None),
    # the exact shape only: anything more or other may never hold, and is no revocation
    ({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "DateLessThan": {"aws:TokenIssueTime": "2099-01-01T00:00:00Z"},
        "StringEquals": {"aws:username": "nobody"}}}]}, None),
    ({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "DateLessThan": {"aws:TokenIssueTime": "2099-01-01T00:00:00Z", "aws:CurrentTime": "2000-01-01T00:00:00Z"}}}]},
     None),
    ({"Statement": [{"Effect": "Deny", "Action": "*", "NotResource": "*", "Resource": "*", "Condition": {
        "DateLessThan": {"aws:TokenIssueTime": "2099-01-01T00:00:00Z"}}}]}, None),
    ({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Principal": {"AWS": "arn:aws:iam::1:root"},
                     "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2099-01-01T00:00:00Z"}}}]}, None),
    ({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "DateLessThanIfExists": {"aws:TokenIssueTime": "2099-01-01T00:00:00Z"}}}]}, None),
    ({"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "DateLessThan": {"aws:TokenIssueTime": ["2099-01-01T00:00:00Z", "2000-01-01T00:00:00Z"]}}}]}, None),
    ({"Statement": [
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}}},
        {"Effect": "Deny", "Action": "*", "Resource": "*",
         "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2099-01-01T00:00:00Z"},
                       "Bool": {"aws:SecureTransport": "maybe"}}}]}, None),
    ({"Statement": [{"Sid": "", "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "DateLessThan": {"aws:TokenIssueTime": "2020-01-01T00:00:00Z"}}}]}, datetime(2020, 1, 1, tzinfo=UTC)),  # a Sid
    ({"Version": "2012-10-17", "Statement": [], "Other": 1}, None),
])
def test_what_counts_as_a_revocation(document, cutoff):
    assert role_sessions.revoked_before(document) == cutoff


def _user_signal(user: str, keys: list[str]):
    class Signal:
        identity_type, account_id, access_key_ids = "IAMUser", ACCOUNT, keys
        arn = identity = f"arn:aws:iam::{ACCOUNT}:user/{user}"

    return Signal()


@pytest.mark.parametrize("count", [1, 2, 3, 12])
def test_a_key_confirmation_fits_slack_and_names_user_account_and_keys(count):
    keys = [f"AKIA{n:016d}" for n in range(count)]
    user = "u" * 64
    confirmation = access_key.confirmation(access_key.target(_user_signal(user, keys)))
    assert len(confirmation.text) <= TEXT_LIMIT and user in confirmation.text and ACCOUNT in confirmation.text
    if count <= 3:
        assert all(key in confirmation.text for key in keys)
    else:
        assert f"all {count} access keys in the alert's Access keys field" in confirmation.text


def test_a_role_confirmation_fits_slack_with_the_longest_role_name():
    role = "r" * 64
    sessions = role_sessions.Sessions(names.IamRole("aws", ACCOUNT, role), NOW)
    confirmation = role_sessions.confirmation(sessions)
    assert len(confirmation.text) <= TEXT_LIMIT and role in confirmation.text and ACCOUNT in confirmation.text
