"""SPEC §1 "Matching calls" and "Excluded callers": which records are SES enumeration, and who never counts."""

from __future__ import annotations

import pytest

from detection import rule
from detection.sources.files import scan_bytes
from tests.support import records as r
from tests.support.records import FIXTURES

SES_CALLS = ["GetAccount", "GetAccountSendingEnabled", "ListIdentities", "ListEmailIdentities", "GetSendQuota",
             "GetIdentityVerificationAttributes"]


# ── matching calls ───────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("event_name", SES_CALLS)
def test_each_ses_enumeration_call_matches(event_name):
    assert rule.matches(r.record(r.iam_user(), event_name))


def test_the_api_set_is_exactly_the_six_ses_calls():
    assert rule.SES_ENUMERATION_CALLS == frozenset(SES_CALLS)


@pytest.mark.parametrize("event_name", [
    "SendEmail", "SendRawEmail", "GetIdentityMailFromDomainAttributes", "GetIdentityDkimAttributes",
    "ListConfigurationSets", "CreateEmailIdentity", "PutAccountDetails", "getsendquota", "GetSendQuota ", "",
])
def test_other_ses_calls_do_not_match(event_name):
    assert not rule.matches(r.record(r.iam_user(), event_name))


@pytest.mark.parametrize("source, event_name", [
    ("apigateway.amazonaws.com", "GetAccount"),  # API Gateway's account settings
    ("cognito-identity.amazonaws.com", "ListIdentities"),  # Cognito identity pools
    ("organizations.amazonaws.com", "ListAccounts"),
    ("sesv2.amazonaws.com", "GetAccount"),  # no such event source: SES v2 logs ses.amazonaws.com
    ("email.amazonaws.com", "GetSendQuota"),
    ("ses.amazonaws.com.evil.example", "GetSendQuota"),
    ("SES.AMAZONAWS.COM", "GetSendQuota"),
])
def test_look_alike_calls_from_other_event_sources_do_not_match(source, event_name):
    assert not rule.matches(r.record(r.iam_user(), event_name, source=source))


def test_list_service_quotas_matches_only_for_ses():
    user = r.iam_user()
    assert rule.matches(r.service_quotas(user, "ses"))
    assert not rule.matches(r.service_quotas(user, "ec2"))
    assert not rule.matches(r.service_quotas(user, "SES"))
    assert not rule.matches(r.service_quotas(user, "ses", event_name="ListAWSDefaultServiceQuotas"))
    assert not rule.matches(r.service_quotas(user, "ses", event_name="GetServiceQuota"))
    # the same call name under another event source is not Service Quotas
    assert not rule.matches(r.record(user, "ListServiceQuotas", request={"serviceCode": "ses"}))


@pytest.mark.parametrize("request_parameters", [None, {}, "serviceCode=ses", ["ses"], {"serviceCode": ["ses"]},
                                                {"ServiceCode": "ses"}])
def test_list_service_quotas_without_a_ses_service_code_does_not_match(request_parameters):
    rec = r.service_quotas(r.iam_user())
    rec["requestParameters"] = request_parameters
    assert not rule.matches(rec)


@pytest.mark.parametrize("error", ["AccessDenied", "AccessDeniedException", "ThrottlingException"])
def test_failed_calls_match_failed_enumeration_is_still_enumeration(error):
    assert rule.matches(r.record(r.iam_user(), "ListIdentities", error=error))
    assert rule.matches(r.service_quotas(r.iam_user(), error=error))


@pytest.mark.parametrize("broken", [
    {},
    {"eventSource": None, "eventName": "GetSendQuota"},
    {"eventSource": "ses.amazonaws.com"},
    {"eventSource": "ses.amazonaws.com", "eventName": ["GetSendQuota"]},
    {"eventSource": ["ses.amazonaws.com"], "eventName": "GetSendQuota"},
    {"eventSource": "ses.amazonaws.com", "eventName": {"GetSendQuota": 1}},
])
def test_records_of_the_wrong_shape_never_match_and_never_raise(broken):
    assert not rule.matches(broken)


# ── excluded callers ─────────────────────────────────────────────────────────────────────────────────


def test_aws_service_callers_are_excluded():
    assert rule.is_excluded_caller(r.record(r.aws_service("trustedadvisor.amazonaws.com")))
    assert rule.is_excluded_caller(r.record({"type": "AWSService"}))


@pytest.mark.parametrize("principal", ["cloudformation.amazonaws.com", "config.amazonaws.com",
                                       "securityhub.amazonaws.com"])
def test_calls_invoked_by_an_aws_service_principal_are_excluded(principal):
    assert rule.is_excluded_caller(r.record(r.invoked_by(r.iam_user(), principal)))
    assert rule.is_excluded_caller(r.record(r.invoked_by(r.ec2_role(), principal)))


@pytest.mark.parametrize("principal", ["signin.amazonaws.com", "console.amazonaws.com", "AWS Internal",
                                       "amazonaws.com.attacker.example", "", None, 42])
def test_console_and_non_service_invoked_by_values_are_not_excluded(principal):
    """The console acts for a person; anything that is not a `*.amazonaws.com` principal is not AWS."""
    assert not rule.is_excluded_caller(r.record(r.invoked_by(r.iam_user(), principal)))


def test_service_linked_roles_are_excluded_by_their_role_path():
    assert rule.is_excluded_caller(r.record(r.trusted_advisor()))
    other = r.assumed_role("AWSServiceRoleForSupport", "support-run-1",
                           path="/aws-service-role/support.amazonaws.com/")
    assert rule.is_excluded_caller(r.record(other))


def test_service_linked_roles_are_excluded_by_name_when_the_session_issuer_is_missing():
    """Trimmed records lack sessionContext; AWSServiceRoleFor… names are reserved to AWS."""
    assert rule.is_excluded_caller(r.record(r.trusted_advisor(issuer=False)))


@pytest.mark.parametrize("identity", [
    r.lambda_role(),  # /service-role/ is where Lambda puts customer roles: not service-linked
    r.assumed_role("deployer", "ci-4711", path="/aws-service-roles/"),
    r.assumed_role("deployer", "ci-4711", path="/teams/aws-service-role/"),
    r.assumed_role("MyAWSServiceRoleForReports", "x", path="/"),
    r.ec2_role(),
    r.sso_session(),
    r.iam_user("AWSServiceRoleForTrustedAdvisor"),  # a user may be named anything; only roles are excluded
    r.root(),
    r.federated_user(),
])
def test_customer_identities_are_not_excluded(identity):
    assert not rule.is_excluded_caller(r.record(identity))


@pytest.mark.parametrize("user_identity", [None, "AWSService", [], {"type": None}, {"sessionContext": "x"},
                                           {"type": "AssumedRole", "sessionContext": {"sessionIssuer": "x"}}])
def test_exclusion_of_malformed_identities_never_raises(user_identity):
    rec = r.record(r.iam_user())
    rec["userIdentity"] = user_identity
    assert rule.is_excluded_caller(rec) is False


def test_role_path_reads_the_iam_role_path():
    assert rule.role_path("arn:aws:iam::1:role/aws-service-role/trustedadvisor.amazonaws.com/X") == \
        "/aws-service-role/trustedadvisor.amazonaws.com/"
    assert rule.role_path("arn:aws:iam::1:role/Plain") == "/"
    assert rule.role_path("arn:aws:iam::1:user/alice") is None
    assert rule.role_path(None) is None


def test_metadata_names_the_tactic_technique_and_known_false_positives():
    assert "TA0007" in rule.METADATA["mitre"]["tactic"]
    assert "T1526" in rule.METADATA["mitre"]["technique"]
    assert any("Trusted Advisor" in text for text in rule.METADATA["false_positives"])
    assert all(ref.startswith("https://") for ref in rule.METADATA["references"])


# ── the synthetic fixtures (tests/fixtures/README.md) ────────────────────────────────────────────────

FIXTURE_CALLS = {
    "01": ["ListServiceQuotas"], "02": [], "03": ["GetAccount"], "04": ["ListEmailIdentities"],
    "05": ["ListIdentities"], "06": [], "07": [], "08": [], "09": [], "10": ["GetSendQuota"], "11": ["GetAccount"],
    "12": [], "13": ["GetSendQuota", "GetSendQuota", "ListIdentities"], "14": ["GetSendQuota"] * 3,
}


@pytest.mark.parametrize("prefix", sorted(FIXTURE_CALLS))
def test_each_synthetic_fixture_matches_as_its_readme_says(prefix):
    (path,) = FIXTURES.glob(f"synthetic_{prefix}_*")
    records = scan_bytes(path.name, path.read_bytes())
    assert records.error is None and records.bad == []
    assert sorted(call.event_name for call in records.calls) == FIXTURE_CALLS[prefix]
