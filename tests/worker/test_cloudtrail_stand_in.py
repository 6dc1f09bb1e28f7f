"""The CloudTrail/STS stand-in keeps AWS's rules: what AWS refuses, it refuses too (boto3 over real HTTP)."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support import records
from tests.support.local_aws import OWN_KEY, ROLE_ARN, now, ses_calls, user

NO_RETRIES = Config(retries={"total_max_attempts": 1})
# botocore checks some bounds itself; without that check the request reaches the stand-in, as from any client.
UNCHECKED = Config(retries={"total_max_attempts": 1}, parameter_validation=False)
SES = {"AttributeKey": "EventSource", "AttributeValue": "ses.amazonaws.com"}


def client(service: str, config: Config = NO_RETRIES, **credentials):
    """A client of a session of its own: it reads this test's environment (boto3's default session keeps
    whatever credentials the first test to use it had)."""
    return boto3.Session().client(service, region_name="us-east-1", config=config, **credentials)


def cloudtrail(**credentials):
    return client("cloudtrail", **credentials)


def error_of(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def lookup(client=None, **params) -> list[dict]:
    return (client or cloudtrail()).lookup_events(LookupAttributes=[SES], **params)["Events"]


def test_a_request_signed_with_the_wrong_secret_is_refused(aws):
    assert lookup() == []
    wrong = cloudtrail(aws_access_key_id=OWN_KEY, aws_secret_access_key="not-the-secret")
    assert error_of(lambda: lookup(wrong)) == "InvalidSignatureException"
    sts = client("sts", aws_access_key_id=OWN_KEY, aws_secret_access_key="not-the-secret")
    assert error_of(sts.get_caller_identity) == "SignatureDoesNotMatch"
    assert [r.error for r in aws.api.requests] == [None, "InvalidSignatureException", "SignatureDoesNotMatch"]


def test_a_body_changed_after_signing_is_refused(aws):
    client = cloudtrail()
    client.meta.events.register("before-send.cloudtrail",
                                lambda request, **_: setattr(request, "body", request.body.replace(b"ses", b"sqs")))
    assert error_of(lambda: lookup(client)) == "InvalidSignatureException"


def test_assumed_role_credentials_are_checked_with_the_secret_sts_issued(aws):
    aws.api.add_role(ROLE_ARN)
    answer = client("sts").assume_role(RoleArn=ROLE_ARN, RoleSessionName="sesguard")
    issued = answer["Credentials"]
    good = cloudtrail(aws_access_key_id=issued["AccessKeyId"], aws_secret_access_key=issued["SecretAccessKey"],
                      aws_session_token=issued["SessionToken"])
    assert lookup(good) == []
    forged = cloudtrail(aws_access_key_id=issued["AccessKeyId"], aws_secret_access_key="guessed",
                        aws_session_token=issued["SessionToken"])
    assert error_of(lambda: lookup(forged)) == "InvalidSignatureException"


@pytest.mark.parametrize("seconds, allowed", [(899, False), (900, True), (3600, True), (3601, False)])
def test_assume_role_duration_is_900_seconds_to_the_roles_maximum(aws, seconds, allowed):
    aws.api.add_role(ROLE_ARN)
    sts = client("sts", config=UNCHECKED)
    assume = lambda: sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="sesguard", DurationSeconds=seconds)  # noqa: E731
    if allowed:
        assume()
    else:
        assert error_of(assume) == "ValidationError"


def test_a_role_allowing_twelve_hours_issues_twelve_hour_sessions(aws):
    aws.api.add_role(ROLE_ARN, max_session_seconds=43200)
    sts = client("sts")
    expires = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="sesguard", DurationSeconds=43200)
    assert error_of(lambda: sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="sesguard", DurationSeconds=43201)) \
        == "ValidationError"
    left = expires["Credentials"]["Expiration"] - now()
    assert timedelta(hours=11, minutes=59) < left <= timedelta(hours=12)
    with pytest.raises(AssertionError):
        aws.api.add_role(ROLE_ARN, max_session_seconds=43201)


def test_lookup_events_reaches_back_90_days_only(aws):
    recent, old = ses_calls(user("alice"), 1, days_ago=89.9), ses_calls(user("bob"), 1, days_ago=90.1)
    aws.api.add_events(*recent, *old)
    found = lookup(StartTime=now() - timedelta(days=365), EndTime=now())
    assert [event["EventId"] for event in found] == [recent[0]["eventID"]]


def test_read_only_is_true_for_reads_only(aws):
    identity = user("alice")
    calls = [records.record(identity, name) for name in ("GetSendQuota", "ListIdentities", "SendEmail",
                                                        "UpdateAccountSendingEnabled")]
    for call in calls:
        call["eventTime"] = ses_calls(identity, 1)[0]["eventTime"]
    aws.api.add_events(*calls)
    shown = {event["EventName"]: event["ReadOnly"] for event in lookup(StartTime=now() - timedelta(hours=1))}
    assert shown == {"GetSendQuota": "true", "ListIdentities": "true", "SendEmail": "false",
                     "UpdateAccountSendingEnabled": "false"}
