"""SPEC §1 "Signal" and "Severity": the fields a signal carries, high / medium / low and the reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest

from detection.baseline import Tuning
from detection.record import to_call
from detection.signals import Signal, signal_id_for
from tests.support import records as r
from tests.support.records import at, detect_records, moment

SIGNAL_FIELDS = {"signal_id", "account_id", "identity", "identity_type", "arn", "first_seen", "last_seen",
                 "event_names", "event_count", "regions", "source_ips", "user_agents", "access_key_ids",
                 "error_codes", "severity", "reasons", "event_ids"}
NO_LEARNING = Tuning(learning=timedelta(0))


def signal_of(*recs) -> Signal:
    (signal,) = detect_records(list(recs), NO_LEARNING)
    return signal


# ── the fields ───────────────────────────────────────────────────────────────────────────────────────


def test_a_signal_carries_every_field_of_the_spec_from_its_calls():
    person = r.sso_session("dana@example.com")
    calls = [
        r.record(person, "ListIdentities", time=at(minutes=3), region="us-west-2", ip="198.51.100.9",
                 agent="Boto3/1.34", error="AccessDenied", event_id="e3"),
        r.record(person, "GetSendQuota", time=at(minutes=0), region="us-east-1", ip="203.0.113.5", event_id="e1"),
        r.record(person, "GetSendQuota", time=at(minutes=1), region="us-east-1", ip="203.0.113.5", event_id="e2"),
        r.service_quotas(person, time=at(minutes=2), region="us-east-1", ip="203.0.113.5", event_id="e4",
                         error="AccessDeniedException"),
    ]
    signal = signal_of(*calls).to_dict()
    assert SIGNAL_FIELDS <= set(signal)
    assert signal["account_id"] == r.ACCOUNT
    assert signal["identity"] == signal["arn"] == person["arn"]
    assert signal["identity_type"] == "AssumedRole"
    assert (signal["first_seen"], signal["last_seen"]) == (at(minutes=0), at(minutes=3))
    assert signal["event_names"] == ["GetSendQuota", "ListIdentities", "ListServiceQuotas"]  # sorted, unique
    assert signal["event_count"] == 4
    assert signal["regions"] == ["us-east-1", "us-west-2"]
    assert signal["source_ips"] == ["198.51.100.9", "203.0.113.5"]
    assert signal["user_agents"] == sorted(["Boto3/1.34", r.CLI_AGENT])
    assert signal["access_key_ids"] == [r.SESSION_KEY]
    assert signal["error_codes"] == ["AccessDenied", "AccessDeniedException"]
    assert signal["event_ids"] == ["e1", "e2", "e4", "e3"]  # in eventTime order
    assert signal["signal_id"] == signal_id_for(r.ACCOUNT, person["arn"], moment())


def test_arn_is_the_first_calls_full_arn_while_identity_is_the_role():
    first, second = r.ec2_role("i-first"), r.ec2_role("i-second")
    signal = signal_of(r.record(second, time=at(minutes=5)), r.record(first, time=at(minutes=1)))
    assert signal.identity == f"arn:aws:iam::{r.ACCOUNT}:role/app-server"
    assert signal.arn == first["arn"]


def test_missing_values_are_not_listed_as_facts():
    rec = r.record(r.iam_user(), ip="", agent="", region="")
    del rec["userIdentity"]["accessKeyId"]
    signal = signal_of(rec)
    assert signal.regions == signal.source_ips == signal.user_agents == signal.access_key_ids == []
    assert signal.error_codes == []


def test_two_records_under_one_event_id_are_two_calls_of_the_signal():
    """Damaged or forged input: each record counts (detection hands each record over once)."""
    first = to_call(r.record(r.iam_user(), event_id="twice"))
    other = to_call(r.record(r.iam_user(), event_id="twice", region="eu-west-1"))
    signal = Signal.start(first)
    signal.add(other)
    assert (signal.event_count, signal.event_ids, signal.regions) == (2, ["twice", "twice"], ["eu-west-1", "us-east-1"])


def test_signal_id_is_deterministic_and_distinguishes_occurrences():
    assert signal_id_for("1", "a", moment()) == signal_id_for("1", "a", moment())
    ids = {signal_id_for("1", "a", moment()), signal_id_for("2", "a", moment()),
           signal_id_for("1", "b", moment()), signal_id_for("1", "a", moment(days=40))}
    assert len(ids) == 4


# ── severity ─────────────────────────────────────────────────────────────────────────────────────────


def test_root_is_high():
    signal = signal_of(r.record(r.root(key=r.SESSION_KEY), agent="console.amazonaws.com", console=True))
    assert signal.severity == "high"
    assert signal.reasons == ["the caller is the account's root user"]


def test_a_long_term_key_outside_the_console_is_high():
    signal = signal_of(r.record(r.iam_user(key=r.LONG_TERM_KEY)))
    assert signal.severity == "high"
    assert signal.reasons == [f"long-term access key {r.LONG_TERM_KEY} used outside a console session"]


def test_a_long_term_key_seen_in_a_console_session_is_not_high():
    signal = signal_of(r.record(r.iam_user(key=r.LONG_TERM_KEY), agent=r.CONSOLE_AGENT))
    assert signal.severity == "low"


def test_two_regions_are_high():
    person = r.sso_session()
    signal = signal_of(r.record(person, region="us-east-1"), r.record(person, time=at(minutes=59), region="eu-west-1"))
    assert signal.severity == "high"
    assert signal.reasons == ["calls in 2 regions: eu-west-1, us-east-1"]


def test_two_regions_in_a_console_session_are_still_high():
    person = r.sso_session()
    signal = signal_of(r.console_record(person, region="us-east-1"),
                       r.console_record(person, time=at(minutes=1), region="eu-west-1"))
    assert signal.severity == "high"


def test_every_high_reason_that_holds_is_listed():
    root = r.root(key=r.LONG_TERM_KEY)
    signal = signal_of(r.record(root, region="us-east-1"), r.record(root, time=at(minutes=2), region="us-west-2"))
    assert signal.severity == "high"
    assert signal.reasons == [
        "the caller is the account's root user",
        f"long-term access key {r.LONG_TERM_KEY} used outside a console session",
        "calls in 2 regions: us-east-1, us-west-2",
    ]


@pytest.mark.parametrize("make", [
    lambda who, **kw: r.record(who, console=True, **kw),
    lambda who, **kw: r.record(who, agent=r.CONSOLE_AGENT, **kw),
    lambda who, **kw: r.record(who, agent="console.amazonaws.com", **kw),
    lambda who, **kw: r.record(who, agent="signin.amazonaws.com", **kw),
    lambda who, **kw: r.console_record(who, **kw),
])
def test_every_call_from_a_console_session_is_low(make):
    person = r.sso_session()
    signal = signal_of(make(person), make(person, time=at(minutes=10), event_id="second"))
    assert signal.severity == "low"
    assert signal.reasons == ["every call came from an AWS console session"]


@pytest.mark.parametrize("programmatic_minute", [10, 0, 5])  # after, before and between the console calls
def test_one_programmatic_call_in_a_console_burst_makes_it_medium(programmatic_minute):
    person = r.sso_session()
    signal = signal_of(r.console_record(person, time=at(minutes=1)), r.console_record(person, time=at(minutes=9)),
                       r.record(person, time=at(minutes=programmatic_minute)))
    assert signal.severity == "medium"
    assert signal.reasons == ["calls made with programmatic credentials, outside the console"]


@pytest.mark.parametrize("identity", [r.sso_session(), r.ec2_role(), r.lambda_role(), r.federated_user(),
                                      r.iam_user(key=r.SESSION_KEY)])
def test_programmatic_calls_by_temporary_credentials_in_one_region_are_medium(identity):
    signal = signal_of(r.record(identity, error="AccessDenied"))
    assert signal.severity == "medium"


def test_severity_is_scored_again_when_later_calls_join_the_signal():
    person = r.sso_session()
    signal = Signal.start(to_call(r.console_record(person)))
    assert signal.severity == "low"
    signal.add(to_call(r.record(person, time=at(minutes=3))))
    assert signal.severity == "medium"
    signal.add(to_call(r.record(person, time=at(minutes=4), region="ap-southeast-2")))
    assert signal.severity == "high"
    assert signal.to_dict()["severity"] == "high"


# ── red-team exercise tools ──────────────────────────────────────────────────────────────────────────

# The user agent a Stratus Red Team detonation sends (aws.discovery.ses-enumerate).
STRATUS_AGENT = "stratus-red-team_4fcf7a5b-fa9b-4ab5-a2ea-2f1dc5cd6bda"
EXERCISE = "red-team exercise tool"


def test_a_red_team_tool_adds_its_reason_and_still_alerts_at_the_severity_its_calls_earned():
    signal = signal_of(r.record(r.ec2_role(), agent=STRATUS_AGENT))
    assert signal.severity == "medium"
    assert signal.reasons == ["calls made with programmatic credentials, outside the console", EXERCISE]


def test_one_exercise_call_in_a_burst_joins_every_high_reason_that_held():
    root = r.root(key=r.LONG_TERM_KEY)
    signal = signal_of(r.record(root, region="us-east-1"),
                       r.record(root, time=at(minutes=2), region="us-west-2", agent=STRATUS_AGENT))
    assert signal.severity == "high"
    assert signal.reasons == [
        "the caller is the account's root user",
        f"long-term access key {r.LONG_TERM_KEY} used outside a console session",
        "calls in 2 regions: us-east-1, us-west-2",
        EXERCISE,
    ]
    assert signal.to_dict()["reasons"] == signal.reasons


@pytest.mark.parametrize("agent", [
    f"aws-cli/2.15.30 {STRATUS_AGENT}",  # the prefix must start the user agent
    STRATUS_AGENT.upper(),
    "stratus-red-team",
    r.CLI_AGENT,
])
def test_only_a_user_agent_starting_with_an_exercise_prefix_is_an_exercise_tool(agent):
    assert EXERCISE not in signal_of(r.record(r.ec2_role(), agent=agent)).reasons


def test_the_exercise_prefixes_are_tunable_and_may_be_none():
    calls = [r.record(r.iam_user("pentester", key=r.SESSION_KEY), agent="pacu/1.5.3 boto3"),
             r.record(r.ec2_role(), agent=STRATUS_AGENT)]

    def reasons(prefixes: tuple[str, ...]) -> list[list[str]]:
        tuning = Tuning(learning=timedelta(0), exercise_user_agents=prefixes)
        return [[reason for reason in s.reasons if reason == EXERCISE]
                for s in sorted(detect_records(calls, tuning), key=lambda s: s.identity)]

    assert reasons(("pacu/", "stratus-red-team_")) == [[EXERCISE], [EXERCISE]]  # the role, then the user
    assert reasons(("pacu/",)) == [[], [EXERCISE]]
    assert reasons(()) == [[], []]
