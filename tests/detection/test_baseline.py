"""SPEC §1 "New-value detection" and the grouping of "Signal": learning per scope, forget-after, known
identities, bursts, eventTime order. Each story runs through the reading, the rule and the baseline."""

from __future__ import annotations

import random
from datetime import timedelta

from detection.baseline import Baseline, Tuning
from detection.record import to_call
from tests.support import records as r
from tests.support.records import at, detect_records, moment

ALICE, BOB, MALLORY = r.iam_user("alice"), r.iam_user("bob"), r.iam_user("mallory")


def learned(*identities, account=r.ACCOUNT):
    """Baseline calls on day 0, inside the learning period."""
    return [r.record(identity, time=at(hours=n), account=account) for n, identity in enumerate(identities)]


def identities(signals):
    return [s.identity.rsplit("/", 1)[-1] for s in signals]


# ── learning ─────────────────────────────────────────────────────────────────────────────────────────


def test_identities_seen_during_learning_are_learned_silently_and_new_ones_after_it_signal():
    trail = learned(ALICE) + [
        r.record(BOB, time=at(days=6, hours=23)),  # still learning: learned
        r.record(ALICE, time=at(days=9)),  # known
        r.record(BOB, time=at(days=10)),  # known
        r.record(MALLORY, time=at(days=12)),  # new
    ]
    assert identities(detect_records(trail)) == ["mallory"]


def test_learning_starts_at_the_first_matching_record_of_the_scope_not_the_first_record():
    noise = [r.record(ALICE, "SendEmail", time=at(days=-30)), r.record(ALICE, "GetAccount",
                                                                      source="apigateway.amazonaws.com",
                                                                      time=at(days=-30))]
    trail = noise + learned(ALICE) + [r.record(MALLORY, time=at(days=5))]
    assert detect_records(trail) == []  # day 5 of observation: still learning


def test_an_excluded_callers_matching_record_starts_the_observation_too():
    # SPEC §1: observation starts at the first matching record of the scope; Trusted Advisor's call is one
    # (excluded callers never signal and are never learned, but they match)
    noise = [r.record(r.trusted_advisor(), time=at(days=-2))]
    trail = noise + learned(ALICE) + [r.record(MALLORY, time=at(days=5, hours=1))]
    assert identities(detect_records(trail)) == ["mallory"]  # day 7 of observation, 1 hour past learning
    assert detect_records(learned(ALICE) + [r.record(MALLORY, time=at(days=5, hours=1))]) == []


def test_excluded_callers_are_never_learned():
    """SPEC §1: calls an AWS service made on an identity's behalf during learning do not make the identity
    known; its own first call after learning still signals."""
    trail = learned(ALICE) + [
        r.record(r.invoked_by(r.ec2_role(), "cloudformation.amazonaws.com"), time=at(days=1)),
        r.record(r.invoked_by(MALLORY, "config.amazonaws.com"), time=at(days=2)),
        r.record(r.ec2_role(), time=at(days=10)),
        r.record(MALLORY, time=at(days=10)),
    ]
    assert sorted(identities(detect_records(trail))) == ["app-server", "mallory"]


def test_learning_ends_exactly_learning_days_after_the_start():
    tuning = Tuning(learning=timedelta(days=7))
    start = learned(ALICE)  # first matching record at T0
    assert detect_records(start + [r.record(BOB, time=at(days=7, seconds=-1))], tuning) == []
    assert identities(detect_records(start + [r.record(BOB, time=at(days=7))], tuning)) == ["bob"]


def test_each_account_has_its_own_learning_period():
    alice_b, mallory_b = r.iam_user("alice", r.OTHER_ACCOUNT), r.iam_user("mallory", r.OTHER_ACCOUNT)
    trail = learned(ALICE) + [
        r.record(alice_b, time=at(days=20)),  # account B is first observed on day 20: learning until day 27
        r.record(mallory_b, time=at(days=25)),
        r.record(MALLORY, time=at(days=25)),  # account A has been observed for 25 days
    ]
    signals = detect_records(trail)
    assert [(s.account_id, s.identity) for s in signals] == [(r.ACCOUNT, MALLORY["arn"])]


def test_an_identity_known_in_one_account_is_new_in_another():
    role_a = r.ec2_role(account=r.ACCOUNT)
    trail = learned(role_a) + learned(BOB, account=r.OTHER_ACCOUNT) + [
        # the same role, calling into the other account: new there
        r.record(role_a, time=at(days=10), account=r.OTHER_ACCOUNT),
        r.record(role_a, time=at(days=10)),
    ]
    signals = detect_records(trail)
    assert [(s.account_id, s.identity) for s in signals] == [
        (r.OTHER_ACCOUNT, f"arn:aws:iam::{r.ACCOUNT}:role/app-server")]


def test_learning_days_zero_signals_every_first_call():
    signals = detect_records(learned(ALICE, BOB), Tuning(learning=timedelta(0)))
    assert identities(signals) == ["alice", "bob"]


# ── forget-after ─────────────────────────────────────────────────────────────────────────────────────


def test_an_identity_unseen_for_more_than_forget_days_is_new_again():
    trail = learned(ALICE, BOB) + [
        r.record(ALICE, time=at(days=28, seconds=1)),  # 28 days and a second after its last call
        r.record(BOB, time=at(days=28, hours=1)),  # exactly 28 days after its last call: still known
    ]
    assert identities(detect_records(trail, Tuning(forget=timedelta(days=28)))) == ["alice"]


def test_forgetting_counts_from_the_last_call_not_the_first():
    trail = learned(ALICE) + [r.record(ALICE, time=at(days=d)) for d in (20, 40, 60)]
    assert detect_records(trail) == []


def test_forgetting_counts_from_the_last_call_of_a_burst_not_its_first():
    """Calls that joined a signal are seen too: forgetting counts from the burst's last call."""
    burst = [r.record(MALLORY, time=at(days=10, minutes=m)) for m in (0, 60)]
    back = r.record(MALLORY, time=at(days=38, minutes=60))  # exactly 28 days after the burst's last call
    signals = detect_records(learned(ALICE) + burst + [back], Tuning(forget=timedelta(days=28)))
    assert [(s.first_seen, s.event_count) for s in signals] == [(moment(days=10), 2)]


def test_a_forgotten_identity_signals_once_and_is_known_again_after():
    trail = learned(ALICE) + [r.record(ALICE, time=at(days=d)) for d in (40, 45, 50)]
    signals = detect_records(trail)
    assert [(s.first_seen, s.event_count) for s in signals] == [(moment(days=40), 1)]


def test_forget_days_applies_to_identities_learned_silently():
    trail = learned(ALICE) + [r.record(ALICE, time=at(days=3)), r.record(ALICE, time=at(days=8))]
    assert identities(detect_records(trail, Tuning(forget=timedelta(days=4)))) == ["alice"]


# ── a signal makes the identity known ────────────────────────────────────────────────────────────────


def test_a_signal_makes_the_identity_known():
    trail = learned(ALICE) + [r.record(MALLORY, time=at(days=10)), r.record(MALLORY, time=at(days=12)),
                              r.record(MALLORY, time=at(days=30))]
    signals = detect_records(trail)
    assert [(identity, s.first_seen) for identity, s in zip(identities(signals), signals)] == [
        ("mallory", moment(days=10))]


def test_a_known_signalled_identity_is_forgotten_like_any_other():
    trail = learned(ALICE) + [r.record(MALLORY, time=at(days=10)), r.record(MALLORY, time=at(days=50))]
    assert [s.first_seen for s in detect_records(trail)] == [moment(days=10), moment(days=50)]


# ── grouping into one signal ─────────────────────────────────────────────────────────────────────────


def test_calls_within_group_minutes_of_the_first_join_the_signal():
    burst = [r.record(MALLORY, name, time=at(days=10, minutes=m), region=region)
             for m, name, region in [(0, "GetSendQuota", "us-east-1"), (5, "ListIdentities", "eu-west-1"),
                                     (60, "GetAccount", "ap-south-1")]]
    late = r.record(MALLORY, "ListEmailIdentities", time=at(days=10, minutes=61))
    signals = detect_records(learned(ALICE) + burst + [late], Tuning(group=timedelta(minutes=60)))
    assert len(signals) == 1
    assert signals[0].event_count == 3
    assert signals[0].event_names == ["GetAccount", "GetSendQuota", "ListIdentities"]
    assert signals[0].last_seen == moment(days=10, minutes=60)


def test_the_group_window_is_measured_from_the_first_call_not_the_last():
    trickle = [r.record(MALLORY, time=at(days=10, minutes=m)) for m in range(0, 100, 20)]
    signals = detect_records(learned(ALICE) + trickle, Tuning(group=timedelta(minutes=60)))
    assert [s.event_count for s in signals] == [4]  # minutes 0, 20, 40, 60; minute 80 is a known identity


def test_group_minutes_is_tunable():
    burst = [r.record(MALLORY, time=at(days=10, minutes=m)) for m in (0, 10, 20)]
    assert [s.event_count for s in detect_records(learned(ALICE) + burst, Tuning(group=timedelta(minutes=15)))] == [2]


def test_a_role_with_changing_session_names_is_one_signal_not_one_per_session():
    sessions = [r.record(r.ec2_role(f"i-0{n:016x}"), time=at(days=10, minutes=n)) for n in range(5)]
    signals = detect_records(learned(ALICE) + sessions)
    assert len(signals) == 1 and signals[0].event_count == 5
    assert signals[0].arn == sessions[0]["userIdentity"]["arn"]  # the first call's full ARN
    assert detect_records(learned(ALICE) + sessions, mode="arn").__len__() == 5


def test_a_role_keeps_alerting_forever_in_arn_mode_but_once_in_principal_mode():
    daily = [r.record(r.ec2_role(f"i-{day:04d}"), time=at(days=day)) for day in range(0, 30)]
    assert detect_records(daily) == []
    assert len(detect_records(daily, mode="arn")) == 23  # days 7 … 29


def test_different_identities_are_different_signals_even_in_the_same_minute():
    trail = learned(ALICE) + [r.record(MALLORY, time=at(days=10)), r.record(BOB, time=at(days=10))]
    assert sorted(identities(detect_records(trail))) == ["bob", "mallory"]


# ── eventTime order ──────────────────────────────────────────────────────────────────────────────────


def story():
    """Learning, a forgotten identity, a burst, a role, another account: every rule at once."""
    return learned(ALICE, BOB, r.ec2_role("i-1")) + learned(r.iam_user("carol", r.OTHER_ACCOUNT),
                                                           account=r.OTHER_ACCOUNT) + [
        r.record(ALICE, time=at(days=40)),
        *[r.record(MALLORY, n, time=at(days=10, minutes=i), region=reg)
          for i, (n, reg) in enumerate([("GetSendQuota", "us-east-1"), ("ListIdentities", "us-west-2")])],
        r.record(r.ec2_role("i-2"), time=at(days=9)),
        r.record(r.iam_user("mallory", r.OTHER_ACCOUNT), time=at(days=3)),
        r.record(r.iam_user("mallory", r.OTHER_ACCOUNT), time=at(days=11)),
    ]


def test_the_answer_does_not_depend_on_the_order_records_arrive_in():
    trail = story()
    expected = [s.to_dict() for s in detect_records(trail)]
    assert [s["identity"].rsplit("/", 1)[-1] for s in expected] == ["mallory", "alice"]
    rng = random.Random(7)
    for _ in range(5):
        shuffled = list(trail)
        rng.shuffle(shuffled)
        assert [s.to_dict() for s in detect_records(shuffled)] == expected


def test_a_late_delivered_earlier_call_is_evaluated_at_its_eventtime():
    """The call at minute 0 arrives after the one at minute 30: both are one burst starting at minute 0."""
    trail = learned(ALICE) + [r.record(MALLORY, "ListIdentities", time=at(days=10, minutes=30)),
                              r.record(MALLORY, "GetSendQuota", time=at(days=10))]
    (signal,) = detect_records(trail)
    assert signal.first_seen == moment(days=10) and signal.event_count == 2


def test_learn_only_learns_without_signalling():
    baseline = Baseline(Tuning(learning=timedelta(0)))
    calls = [to_call(r.record(MALLORY, time=at(days=10)))]
    assert baseline.observe_all(calls, learn_only=True) == []
    assert baseline.is_known((r.ACCOUNT, MALLORY["arn"]), moment(days=11))
    assert baseline.observe_all([to_call(r.record(MALLORY, time=at(days=12)))]) == []
