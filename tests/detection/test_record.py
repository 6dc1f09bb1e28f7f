"""Tolerant record reading and SPEC §1 "Identity key", for each identity type, in both key modes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from detection.record import BadRecord, format_time, identity_key, is_console_call, parse_time, to_call
from tests.support import records as r

UTC = UTC


# ── timestamps ───────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("text, expected", [
    ("2025-01-20T16:52:14Z", datetime(2025, 1, 20, 16, 52, 14, tzinfo=UTC)),
    ("2025-01-20 16:52:14.000000000", datetime(2025, 1, 20, 16, 52, 14, tzinfo=UTC)),  # Panther
    ("2025-01-20T16:52:14.123456789Z", datetime(2025, 1, 20, 16, 52, 14, 123456, tzinfo=UTC)),
    ("2025-01-20T16:52:14.5Z", datetime(2025, 1, 20, 16, 52, 14, 500000, tzinfo=UTC)),
    ("2025-01-20T18:52:14+02:00", datetime(2025, 1, 20, 16, 52, 14, tzinfo=UTC)),
    ("2025-01-20T11:52:14-0500", datetime(2025, 1, 20, 16, 52, 14, tzinfo=UTC)),
    ("2025-01-20T16:52:14", datetime(2025, 1, 20, 16, 52, 14, tzinfo=UTC)),  # no zone: CloudTrail is UTC
    (" 2025-01-20T16:52:14z ", datetime(2025, 1, 20, 16, 52, 14, tzinfo=UTC)),
])
def test_parse_time_reads_cloudtrail_and_panther_forms_into_utc(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("value", [None, "", "yesterday", "2025-13-01T00:00:00Z", "2025-02-30T00:00:00Z",
                                   "2025-01-20T25:00:00Z", "2025-01-20", 1737391934, 1737391934.0, ["2025"],
                                   {"t": 1}, "2025-01-20T16:52:14Z" + "0" * 100, "2025-01-20T16:52:14Zjunk",
                                   "2025-01-20T16:52:14+24:00"])
def test_parse_time_rejects_what_is_not_a_timestamp(value):
    with pytest.raises(BadRecord):
        parse_time(value)


@pytest.mark.parametrize("text", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "9999-12-31T00:00:00Z",
                                  "0001-01-01T00:00:00Z", "2005-12-31T23:59:59.999Z", "2006-01-01T00:59:59+01:00",
                                  "2100-01-01T00:00:00Z", "2099-12-31T23:00:00-01:00"])
def test_parse_time_refuses_times_outside_2006_to_2099_utc(text):
    with pytest.raises(BadRecord, match=r"^eventTime outside 2006–2099 \(forged or damaged\)"):
        parse_time(text)


@pytest.mark.parametrize("text, expected", [
    ("2006-01-01T00:00:00Z", datetime(2006, 1, 1, tzinfo=UTC)),
    ("2005-12-31T23:30:00-01:00", datetime(2006, 1, 1, 0, 30, tzinfo=UTC)),
    ("2099-12-31T23:59:59.999999Z", datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ("2100-01-01T00:30:00+01:00", datetime(2099, 12, 31, 23, 30, tzinfo=UTC)),
])
def test_parse_time_accepts_the_ends_of_the_range_in_utc(text, expected):
    assert parse_time(text) == expected


def test_format_time_writes_the_cloudtrail_form():
    assert format_time(datetime(2025, 1, 20, 16, 52, 14, tzinfo=UTC)) == "2025-01-20T16:52:14Z"
    assert format_time(parse_time("2025-01-20T18:52:14+02:00")) == "2025-01-20T16:52:14Z"


# ── identity keys ────────────────────────────────────────────────────────────────────────────────────

ACCOUNT = r.ACCOUNT


@pytest.mark.parametrize("identity, principal_key", [
    (r.iam_user("alice"), f"arn:aws:iam::{ACCOUNT}:user/alice"),
    (r.root(), f"arn:aws:iam::{ACCOUNT}:root"),
    (r.federated_user("partner"), f"arn:aws:sts::{ACCOUNT}:federated-user/partner"),
    # SSO: the session name is the person, so the full session ARN
    (r.sso_session("dana@example.com"),
     f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/dana@example.com"),
    (r.sso_session("dana@example.com", issuer=False),
     f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/dana@example.com"),
    # any other role: the role, whatever the session
    (r.ec2_role("i-0abc"), f"arn:aws:iam::{ACCOUNT}:role/app-server"),
    (r.lambda_role("mailer-fn"), f"arn:aws:iam::{ACCOUNT}:role/service-role/mailer-fn-role-x1y2"),
    (r.assumed_role("ci-deploy", "GitHubActions-91823", issuer=False), f"arn:aws:iam::{ACCOUNT}:role/ci-deploy"),
])
def test_identity_key_per_identity_type(identity, principal_key):
    assert identity_key(identity, "principal") == principal_key
    assert identity_key(identity, "arn") == identity["arn"]


def test_principal_key_folds_changing_session_names_of_a_role_into_one_identity():
    sessions = [r.ec2_role(f"i-0{n:016x}") for n in range(3)] + [r.lambda_role(f"run-{n}") for n in range(3)]
    keys = {identity_key(identity) for identity in sessions}
    assert keys == {f"arn:aws:iam::{ACCOUNT}:role/app-server",
                    f"arn:aws:iam::{ACCOUNT}:role/service-role/mailer-fn-role-x1y2"}
    assert len({identity_key(identity, "arn") for identity in sessions}) == 6


def test_principal_key_keeps_sso_people_apart_within_one_permission_set():
    people = [r.sso_session(person) for person in ("dana@example.com", "eli@example.com")]
    assert len({identity_key(identity) for identity in people}) == 2


def test_identity_key_per_role_in_other_partitions():
    identity = r.assumed_role("app", "s1", issuer=False)
    identity["arn"] = "arn:aws-us-gov:sts::123456789012:assumed-role/app/s1"
    assert identity_key(identity) == "arn:aws-us-gov:iam::123456789012:role/app"


@pytest.mark.parametrize("identity", [{}, {"type": "IAMUser"}, {"type": "IAMUser", "arn": ""},
                                      {"type": "Root", "arn": "   "}, {"type": "AWSAccount", "principalId": "X"},
                                      {"type": "IAMUser", "arn": ["arn:aws:iam::1:user/a"]},
                                      {"type": "AssumedRole", "arn": None}])
def test_identity_key_is_none_when_the_record_names_nobody(identity):
    assert identity_key(identity, "principal") is None
    assert identity_key(identity, "arn") is None


# ── one record into a Call ───────────────────────────────────────────────────────────────────────────


def test_to_call_normalises_every_field_the_signal_needs():
    rec = r.record(r.iam_user("alice"), "ListIdentities", time="2025-03-03T10:00:00Z", region="eu-west-1",
                   ip="198.51.100.4", error="AccessDenied", event_id="ev-1")
    call = to_call(rec)
    assert (call.event_id, call.account_id, call.identity, call.identity_type, call.arn) == (
        "ev-1", ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/alice", "IAMUser", f"arn:aws:iam::{ACCOUNT}:user/alice")
    assert call.event_time == datetime(2025, 3, 3, 10, tzinfo=UTC)
    assert (call.event_source, call.event_name, call.region) == ("ses.amazonaws.com", "ListIdentities", "eu-west-1")
    assert (call.source_ip, call.user_agent, call.access_key_id) == ("198.51.100.4", r.CLI_AGENT, r.LONG_TERM_KEY)
    assert call.error_code == "AccessDenied"
    assert call.long_term_key and not call.from_console


def test_scope_is_the_recipient_account_not_the_callers():
    """A role of account A enumerating SES in account B is B's business."""
    rec = r.record(r.ec2_role(account=r.OTHER_ACCOUNT), account=ACCOUNT)
    assert to_call(rec).account_id == ACCOUNT
    del rec["recipientAccountId"]
    assert to_call(rec).account_id == r.OTHER_ACCOUNT  # older records: the caller's account


def test_an_old_eventversion_1_02_record_with_few_fields_is_read():
    rec = {"eventVersion": "1.02", "eventTime": "2015-02-04T00:57:16Z", "eventSource": "ses.amazonaws.com",
           "eventName": "GetSendQuota", "userIdentity": r.root(), "recipientAccountId": ACCOUNT}
    call = to_call(rec)
    assert call.region == call.source_ip == call.user_agent == call.error_code == ""
    assert call.event_id.startswith("synthetic-")
    assert to_call(dict(rec)).event_id == call.event_id  # the same record always gets the same key


@pytest.mark.parametrize("field, value, read_as", [
    ("awsRegion", 7, lambda call: call.region == ""),
    ("sourceIPAddress", {"ip": 1}, lambda call: call.source_ip == ""),
    ("userAgent", None, lambda call: call.user_agent == ""),
    ("errorCode", ["AccessDenied"], lambda call: call.error_code == ""),
    ("readOnly", "true", lambda call: call.error_code == "" and call.region == "us-east-1"),  # not read at all
    ("eventID", 12345, lambda call: call.event_id.startswith("synthetic-")),
    ("recipientAccountId", 111122223333, lambda call: call.account_id == ACCOUNT),  # from userIdentity.accountId
])
def test_optional_fields_of_the_wrong_type_read_as_empty(field, value, read_as):
    rec = r.record(r.iam_user())
    rec[field] = value
    call = to_call(rec)
    assert call.identity == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert read_as(call), call


@pytest.mark.parametrize("change, message", [
    ({"userIdentity": None}, "no userIdentity"),
    ({"userIdentity": "alice"}, "no userIdentity"),
    ({"userIdentity": {"type": "IAMUser"}}, "no usable identity"),
    ({"eventTime": "not a time"}, "eventTime"),
    ({"eventTime": None}, "eventTime"),
    ({"recipientAccountId": None, "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/a"}}, "account"),
])
def test_to_call_rejects_records_it_cannot_evaluate(change, message):
    rec = {**r.record(r.iam_user()), **change}
    with pytest.raises(BadRecord, match=message):
        to_call(rec)


# ── console sessions ─────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("rec", [
    r.record(r.sso_session(), console=True),
    {**r.record(r.sso_session()), "sessionCredentialFromConsole": True},
    r.record(r.iam_user(key=r.SESSION_KEY), agent=r.CONSOLE_AGENT),
    r.record(r.iam_user(key=r.SESSION_KEY), agent="console.amazonaws.com"),
    r.record(r.iam_user(key=r.SESSION_KEY), agent="signin.amazonaws.com"),
    r.console_record(r.iam_user(key=r.SESSION_KEY)),
])
def test_console_sessions_are_recognised(rec):
    assert is_console_call(rec)


@pytest.mark.parametrize("rec", [
    r.record(r.sso_session()),
    r.record(r.sso_session(), console=False),
    r.record(r.iam_user(), agent="Boto3/1.34.0 aws-internal/3"),  # the marker must start the user agent
    r.record(r.iam_user(), agent="console.amazonaws.com.attacker.example"),
    {**r.record(r.iam_user()), "userAgent": None},
])
def test_programmatic_calls_are_not_console_sessions(rec):
    assert not is_console_call(rec)
