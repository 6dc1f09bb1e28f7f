"""The store (SQLite and PostgreSQL): each event once, detection state that
carries from one batch to the next exactly as if the batches had been one."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import func, select

from detection.baseline import Tuning
from detection.record import to_call
from detection.scan import detect
from detection.store import EventRow, KnownIdentity, Scope, SignalHistory, SignalRow
from tests.support import records as r
from tests.support.records import at, moment

ALICE, MALLORY = r.iam_user("alice"), r.iam_user("mallory")
TUNING = Tuning()


def run(store, recs, tuning=TUNING, learn_only=False):
    signals, taken = detect([to_call(rec) for rec in recs], tuning, store, learn_only=learn_only)
    return signals, taken


def count(store, model) -> int:
    with store.session() as session:
        return session.exec(select(func.count()).select_from(model)).one()


def stored_signals(store) -> list[SignalRow]:
    with store.session() as session:
        return list(session.exec(select(SignalRow).order_by(SignalRow.first_seen)))


# ── each event once ──────────────────────────────────────────────────────────────────────────────────


def test_each_event_is_stored_once_and_processed_once(store):
    recs = [r.record(ALICE, time=at(minutes=n)) for n in range(3)]
    _, taken = run(store, recs + recs[:1])
    assert len(taken) == 3 and count(store, EventRow) == 3
    assert store.new_calls([to_call(rec) for rec in recs]) == []
    _, taken = run(store, recs)
    assert taken == [] and count(store, EventRow) == 3


def test_a_second_run_over_the_same_calls_adds_nothing(store):
    recs = [r.record(ALICE), r.record(MALLORY, time=at(days=10)), r.record(MALLORY, time=at(days=10, minutes=5))]
    signals, _ = run(store, recs)
    assert [s.identity for s in signals] == [MALLORY["arn"]]
    before = [(row.signal_id, row.event_count, row.updated_at) for row in stored_signals(store)]
    again, taken = run(store, recs)
    assert again == [] and taken == []
    assert [(row.signal_id, row.event_count, row.updated_at) for row in stored_signals(store)] == before
    assert count(store, SignalHistory) == 1


def test_stored_events_name_their_signal(store):
    run(store, [r.record(ALICE), r.record(MALLORY, time=at(days=10), event_id="m1")])
    with store.session() as session:
        events = {row.event_id: row for row in session.exec(select(EventRow))}
    (signal,) = stored_signals(store)
    assert events["m1"].signal_id == signal.signal_id
    assert [row.signal_id for key, row in events.items() if key != "m1"] == [None]


def test_two_records_under_one_event_id_are_both_stored_each_named_to_its_signal(store):
    """Whichever batch brings which, both count; a third batch with either adds nothing."""
    alice_then, mallory_then = (r.record(who, time=at(days=10), event_id="shared") for who in (ALICE, MALLORY))
    run(store, [r.record(ALICE), alice_then])
    signals, taken = run(store, [mallory_then, alice_then])
    assert [s.identity for s in signals] == [MALLORY["arn"]] and [c.identity for c in taken] == [MALLORY["arn"]]
    with store.session() as session:
        rows = session.exec(select(EventRow).where(EventRow.event_id == "shared")).all()
    assert sorted((row.identity, row.signal_id) for row in rows) == [(ALICE["arn"], None),
                                                                    (MALLORY["arn"], signals[0].signal_id)]
    assert run(store, [mallory_then, alice_then]) == ([], [])


# ── state carries over between batches ───────────────────────────────────────────────────────────────


def test_the_learning_period_carries_over_from_the_stored_start_of_observation(store):
    run(store, [r.record(ALICE)])
    assert run(store, [r.record(r.iam_user("bob"), time=at(days=6))])[0] == []  # still learning
    signals, _ = run(store, [r.record(MALLORY, time=at(days=8))])
    assert [s.identity for s in signals] == [MALLORY["arn"]]
    with store.session() as session:
        assert session.get(Scope, r.ACCOUNT).observed_since == moment()


def test_known_identities_carry_over_and_are_forgotten_after_forget_days(store):
    run(store, [r.record(ALICE)])
    assert run(store, [r.record(ALICE, time=at(days=20))])[0] == []
    with store.session() as session:
        known = session.get(KnownIdentity, (r.ACCOUNT, ALICE["arn"]))
    assert (known.first_seen, known.last_seen) == (moment(), moment(days=20))
    signals, _ = run(store, [r.record(ALICE, time=at(days=48, seconds=1))])
    assert [s.first_seen for s in signals] == [moment(days=48, seconds=1)]
    with store.session() as session:
        known = session.get(KnownIdentity, (r.ACCOUNT, ALICE["arn"]))
    assert (known.first_seen, known.last_seen) == (moment(days=48, seconds=1), moment(days=48, seconds=1))


def test_a_burst_split_across_batches_grows_one_signal(store):
    run(store, [r.record(ALICE)])
    first, _ = run(store, [r.record(MALLORY, "GetSendQuota", time=at(days=10))])
    grown, _ = run(store, [r.record(MALLORY, "ListIdentities", time=at(days=10, minutes=30), region="eu-west-1")])
    assert [s.signal_id for s in grown] == [s.signal_id for s in first]
    (row,) = stored_signals(store)
    assert (row.event_count, row.event_names, row.regions) == (2, ["GetSendQuota", "ListIdentities"],
                                                               ["eu-west-1", "us-east-1"])
    assert (row.severity, row.last_seen) == ("high", moment(days=10, minutes=30))  # two regions now
    assert count(store, SignalHistory) == 1  # detected once


def test_a_later_batch_joins_the_identitys_latest_signal_not_its_first(store):
    run(store, [r.record(ALICE)])
    run(store, [r.record(MALLORY, time=at(days=10))])
    run(store, [r.record(MALLORY, time=at(days=50))])  # forgotten since day 10: a second occurrence
    run(store, [r.record(MALLORY, "ListIdentities", time=at(days=50, minutes=30))])  # joins the second
    assert [(row.first_seen, row.event_count) for row in stored_signals(store)] == [
        (moment(days=10), 1), (moment(days=50), 2)]


def test_two_detections_at_once_never_move_an_identitys_last_call_back(store):
    """Two workers load the same identity; the one holding the older call saves last. The store keeps
    the later last call, or the identity would be forgotten early and alert again."""
    run(store, [r.record(ALICE), r.record(ALICE, time=at(days=20))])
    slower = [to_call(r.record(ALICE, time=at(days=21)))]
    slower_baseline = store.load_baseline(slower, TUNING)  # reads last seen = day 20
    run(store, [r.record(ALICE, time=at(days=30))])  # the other worker stores day 30 meanwhile
    store.save_detection(slower_baseline, slower, slower_baseline.observe_all(slower))
    with store.session() as session:
        assert session.get(KnownIdentity, (r.ACCOUNT, ALICE["arn"])).last_seen == moment(days=30)
    assert run(store, [r.record(ALICE, time=at(days=55))])[0] == []  # 25 days after day 30: still known


def test_an_earlier_call_delivered_in_a_later_batch_becomes_the_signals_first_call(store):
    run(store, [r.record(ALICE)])
    later, earlier = r.ec2_role("i-later"), r.ec2_role("i-earlier")
    (first,) = run(store, [r.record(later, time=at(days=10, minutes=30))])[0]
    (grown,) = run(store, [r.record(earlier, time=at(days=10, minutes=5))])[0]
    assert grown.signal_id == first.signal_id  # the occurrence keeps its name
    (row,) = stored_signals(store)
    assert (row.first_seen, row.last_seen, row.arn) == (moment(days=10, minutes=5), moment(days=10, minutes=30),
                                                        earlier["arn"])


def test_batches_give_the_same_signals_as_one_run(store):
    trail = [r.record(ALICE), r.record(r.ec2_role("i-1"), time=at(days=2))] + [
        r.record(MALLORY, n, time=at(days=10, minutes=m), region=reg)
        for m, n, reg in [(0, "GetSendQuota", "us-east-1"), (20, "GetAccount", "us-west-2"),
                          (50, "ListIdentities", "us-east-1")]
    ] + [r.record(r.ec2_role("i-2"), time=at(days=12)), r.record(ALICE, time=at(days=40)),
         r.record(r.sso_session(), time=at(days=41), console=True)]
    in_memory = {s.signal_id: s.to_dict() for s in detect([to_call(x) for x in trail], TUNING)[0]}
    for start in range(0, len(trail), 2):  # batches in eventTime order, as the worker sees them
        run(store, trail[start:start + 2])
    stored = {row.signal_id: row for row in stored_signals(store)}
    assert set(stored) == set(in_memory)
    for signal_id, expected in in_memory.items():
        row = stored[signal_id]
        assert (row.event_count, row.event_names, row.regions, row.severity, row.reasons, row.arn) == (
            expected["event_count"], expected["event_names"], expected["regions"], expected["severity"],
            expected["reasons"], expected["arn"])


def test_learn_only_stores_the_baseline_without_signals(store):
    run(store, [r.record(MALLORY, time=at(days=10))], Tuning(learning=timedelta(0)), learn_only=True)
    assert count(store, SignalRow) == 0 and count(store, KnownIdentity) == 1
    assert run(store, [r.record(MALLORY, time=at(days=11))], Tuning(learning=timedelta(0)))[0] == []


def test_the_workers_start_of_observation_wins_over_the_first_call(store):
    store.set_observed_since(r.ACCOUNT, moment(days=-90))
    store.set_observed_since(r.ACCOUNT, moment(days=-10))  # kept: the first one set is the start
    signals, _ = run(store, [r.record(MALLORY, time=at(days=1))])
    assert [s.identity for s in signals] == [MALLORY["arn"]]  # 91 days of history: not learning


def test_a_signal_reads_back_from_the_store_as_it_was_saved(store):
    run(store, [r.record(ALICE), r.record(r.root(), time=at(days=9), region="us-west-2"),
                r.record(r.root(), time=at(days=9, minutes=1), region="eu-west-1", error="AccessDenied")])
    (row,) = stored_signals(store)
    assert row.severity == "high" and row.status == "new"
    assert row.reasons == ["the caller is the account's root user",
                           f"long-term access key {r.LONG_TERM_KEY} used outside a console session",
                           "calls in 2 regions: eu-west-1, us-west-2"]
    assert row.error_codes == ["AccessDenied"] and row.first_seen == moment(days=9)


def test_an_exercise_tool_seen_in_one_batch_stays_a_reason_when_later_calls_join(store):
    stratus = "stratus-red-team_4fcf7a5b-fa9b-4ab5-a2ea-2f1dc5cd6bda"
    run(store, [r.record(ALICE), r.record(MALLORY, time=at(days=9), agent=stratus)])
    run(store, [r.record(MALLORY, "ListIdentities", time=at(days=9, minutes=5))])
    (row,) = stored_signals(store)
    assert row.event_count == 2 and row.exercise_tool
    assert row.reasons == [f"long-term access key {r.LONG_TERM_KEY} used outside a console session",
                           "red-team exercise tool"]
