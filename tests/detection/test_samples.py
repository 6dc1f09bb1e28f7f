"""The ten public samples parse and give the right answer (02, Trusted Advisor, never alerts)."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from detection import rule
from detection.baseline import Tuning
from detection.sources.files import scan_bytes
from tests.support.records import SAMPLES, at, detect_records

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
    record = orjson.loads(next(SAMPLES.glob("02_*.json")).read_bytes())
    assert rule.matches(record)
    assert rule.is_excluded_caller(record)


def test_trusted_advisor_never_alerts_under_any_session_name_key_mode_or_learning():
    """Sample 02 as Trusted Advisor really behaves: a new session name on every run, for weeks, also in
    records trimmed of their session issuer."""
    template = orjson.loads(next(SAMPLES.glob("02_*.json")).read_bytes())
    runs = []
    for day in range(60):
        run = orjson.loads(orjson.dumps(template))
        session = f"TrustedAdvisor_187901811700_{day:08x}-2df6-4080-b339-9681aa0a066a"
        run["userIdentity"]["arn"] = run["userIdentity"]["arn"].rsplit("/", 1)[0] + "/" + session
        run["eventID"], run["eventTime"] = f"ta-run-{day}", at(days=day)
        if day % 2:
            del run["userIdentity"]["sessionContext"]
        runs.append(run)
    for mode in ("principal", "arn"):
        assert detect_records(runs, Tuning(learning=timedelta(0)), mode) == []
