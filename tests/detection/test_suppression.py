"""SPEC §1 "Suppressions": by identity, optionally account and source-IP CIDR, with an expiry; a matching
signal is stored as `suppressed`. The matching is pure; the store applies it to new signals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from detection.baseline import Tuning
from detection.record import to_call
from detection.scan import detect
from detection.signals import Signal
from detection.store import SignalHistory, SignalRow, SuppressionRow
from detection.suppression import SuppressionRule, first_covering, validate_cidr
from tests.support import records as r
from tests.support.records import at, moment

MALLORY = r.iam_user("mallory")
NOW = moment(days=30)


def signal(identity=MALLORY, account=None, ips=("203.0.113.10",)) -> Signal:
    calls = [to_call(r.record(identity, account=account, ip=ip, time=at(days=10, minutes=n)))
             for n, ip in enumerate(ips)]
    s = Signal.start(calls[0])
    for call in calls[1:]:
        s.add(call)
    return s


def rule(**kw) -> SuppressionRule:
    return SuppressionRule(id=1, identity=kw.pop("identity", MALLORY["arn"]), **kw)


# ── matching ─────────────────────────────────────────────────────────────────────────────────────────


def test_a_suppression_matches_by_identity():
    assert rule().covers(signal(), NOW)
    assert not rule(identity=r.iam_user("bob")["arn"]).covers(signal(), NOW)


def test_an_identity_suppression_without_account_covers_every_account():
    assert rule().covers(signal(account=r.OTHER_ACCOUNT), NOW)


def test_an_account_suppression_covers_only_that_account():
    assert rule(account_id=r.ACCOUNT).covers(signal(), NOW)
    assert not rule(account_id=r.ACCOUNT).covers(signal(account=r.OTHER_ACCOUNT), NOW)


def test_a_role_suppression_covers_every_session_of_the_role():
    role = f"arn:aws:iam::{r.ACCOUNT}:role/app-server"
    assert rule(identity=role).covers(signal(r.ec2_role("i-0123")), NOW)


@pytest.mark.parametrize("cidr, ips, covered", [
    ("203.0.113.0/24", ["203.0.113.10"], True),
    ("203.0.113.0/24", ["203.0.113.10", "203.0.113.99"], True),
    ("203.0.113.0/24", ["203.0.113.10", "198.51.100.1"], False),  # one call from elsewhere: worth a look
    ("203.0.113.10", ["203.0.113.10"], True),
    ("203.0.113.10/32", ["203.0.113.11"], False),
    ("2001:db8::/32", ["2001:db8::1"], True),
    ("2001:db8::/32", ["203.0.113.10"], False),
    ("203.0.113.0/24", ["trustedadvisor.amazonaws.com"], False),  # not an address
    ("203.0.113.0/24", [""], False),  # no source IP recorded
    ("not-a-cidr", ["203.0.113.10"], False),  # a damaged row suppresses nothing and breaks nothing
])
def test_a_cidr_suppression_covers_a_signal_only_when_every_source_ip_is_inside(cidr, ips, covered):
    assert rule(source_cidr=cidr).covers(signal(ips=ips), NOW) is covered


def test_a_suppression_expires():
    assert rule(expires_at=NOW + timedelta(seconds=1)).covers(signal(), NOW)
    assert not rule(expires_at=NOW).covers(signal(), NOW)
    assert not rule(expires_at=NOW - timedelta(days=1)).covers(signal(), NOW)
    assert rule(expires_at=None).covers(signal(), NOW)


def test_first_covering_picks_a_rule_that_applies():
    rules = [rule(identity="other"), SuppressionRule(7, MALLORY["arn"], r.ACCOUNT)]
    assert first_covering(rules, signal(), NOW).id == 7
    assert first_covering(rules[:1], signal(), NOW) is None


@pytest.mark.parametrize("text, normalised", [("10.0.0.0/8", "10.0.0.0/8"), (" 10.1.2.3/8 ", "10.0.0.0/8"),
                                              ("192.0.2.7", "192.0.2.7/32"), ("2001:db8::/32", "2001:db8::/32")])
def test_validate_cidr_normalises(text, normalised):
    assert validate_cidr(text) == normalised


@pytest.mark.parametrize("text", ["", "10.0.0.0/33", "example.com", "10.0.0.0/8; DROP TABLE"])
def test_validate_cidr_refuses_what_is_not_an_address(text):
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        validate_cidr(text)


# ── in the store ─────────────────────────────────────────────────────────────────────────────────────

NO_LEARNING = Tuning(learning=timedelta(0))


def _suppress(store, **kw) -> int:
    with store.session() as session:
        row = SuppressionRow(identity=kw.pop("identity", MALLORY["arn"]), author="U0TRIAGER",
                             reason="pen test this week", **kw)
        session.add(row)
        session.commit()
        return row.id


def _detect(store, *recs, now=NOW):
    signals, _ = detect([to_call(rec) for rec in recs], NO_LEARNING, store, now=now)
    return signals


def _rows(store):
    with store.session() as session:
        return {row.identity: row for row in session.exec(select(SignalRow))}


def test_a_suppressed_signal_is_stored_as_suppressed_with_its_history(store):
    suppression_id = _suppress(store, account_id=r.ACCOUNT, source_cidr="203.0.113.0/24")
    bob = r.iam_user("bob")
    _detect(store, r.record(MALLORY, time=at(days=10)), r.record(bob, time=at(days=10)))
    rows = _rows(store)
    assert (rows[MALLORY["arn"]].status, rows[MALLORY["arn"]].suppression_id) == ("suppressed", suppression_id)
    assert (rows[bob["arn"]].status, rows[bob["arn"]].suppression_id) == ("new", None)
    with store.session() as session:
        history = session.exec(select(SignalHistory).where(
            SignalHistory.signal_id == rows[MALLORY["arn"]].signal_id)).all()
    assert [(h.action, h.status, h.detail) for h in history] == [
        ("detected", "suppressed", f"suppressed by suppression #{suppression_id}")]


def test_expired_and_lifted_suppressions_do_not_apply(store):
    _suppress(store, expires_at=NOW - timedelta(minutes=1))
    _suppress(store, lifted_at=NOW - timedelta(days=1), lifted_by="U0TRIAGER")
    _detect(store, r.record(MALLORY, time=at(days=10)))
    assert _rows(store)[MALLORY["arn"]].status == "new"


def test_a_suppression_out_of_scope_does_not_apply(store):
    _suppress(store, account_id=r.OTHER_ACCOUNT)
    _suppress(store, source_cidr="198.51.100.0/24")
    _detect(store, r.record(MALLORY, time=at(days=10)))
    assert _rows(store)[MALLORY["arn"]].status == "new"


def test_a_suppressed_signal_keeps_its_status_when_later_calls_join_it(store):
    _suppress(store, expires_at=NOW + timedelta(hours=1))
    _detect(store, r.record(MALLORY, time=at(days=10)))
    # the next batch arrives after the suppression expired: the burst it suppressed stays suppressed
    _detect(store, r.record(MALLORY, "ListIdentities", time=at(days=10, minutes=30)), now=NOW + timedelta(days=1))
    row = _rows(store)[MALLORY["arn"]]
    assert (row.status, row.event_count) == ("suppressed", 2)
