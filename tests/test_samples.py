"""The ten public samples parse and give the right answer (02, Trusted Advisor, never alerts)."""

from __future__ import annotations

import pytest

from detection import rule
from detection.sources.files import scan_bytes

from tests.conftest import SAMPLES

EXPECTED_CALLS = {
    "01": ["GetSendQuota"],
    "02": [],  # Trusted Advisor's service-linked role: excluded
    "03": ["ListIdentities"],
    "04": ["GetAccountSendingEnabled"],
    "05": ["GetIdentityVerificationAttributes"],
    "06": ["GetIdentityVerificationAttributes", "GetSendQuota", "ListIdentities"],
    "07": [],  # Service Quotas, but RequestServiceQuotaIncrease for ec2
    "08": [],  # SES, but GetIdentityMailFromDomainAttributes is not enumeration in the rule
    "09": [],  # IAM
    "10": [],  # CloudTrail
}


@pytest.mark.parametrize("prefix", sorted(EXPECTED_CALLS))
def test_each_public_sample_parses_and_matches_as_expected(prefix):
    path = next(SAMPLES.glob(f"{prefix}_*.json"))
    scanned = scan_bytes(path.name, path.read_bytes())
    assert scanned.error is None and scanned.bad == []
    assert scanned.records >= 1
    assert sorted(call.event_name for call in scanned.calls) == EXPECTED_CALLS[prefix]


def test_trusted_advisor_sample_matches_the_rule_but_is_an_excluded_caller():
    import orjson

    record = orjson.loads(next(SAMPLES.glob("02_*.json")).read_bytes())
    assert rule.matches(record)
    assert rule.is_excluded_caller(record)
