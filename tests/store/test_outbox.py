"""The outbox claim every outbox shares (bot/store/outbox.py), on SQLite and PostgreSQL: one holder at a time,
attempts counted, a lapsed claim taken over, a release or renewal only by the holder, the renewal thread."""

from __future__ import annotations

import time
from datetime import date, timedelta

from bot.desk.digest.daily import DIGESTS, Digest
from bot.desk.home.tables import HomeTab
from bot.store.outbox import Renewal, holder_name, take_turn
from detection.store import utcnow

DAY = date(2026, 3, 2)


def _add_digest(store) -> None:
    with store.session() as session:
        session.add(Digest(day=DAY, period_end=utcnow(), attempts=0))
        session.commit()


def _stored(store) -> Digest:
    with store.session() as session:
        row = session.get(Digest, DAY)
        assert row is not None
        return row


def test_one_holder_at_a_time_and_each_claim_counts_an_attempt(store):
    _add_digest(store)
    now = utcnow()
    first = DIGESTS.claim(store, DAY, "a", now)
    assert first is not None and (first.claimed_by, first.attempts) == ("a", 1)
    assert DIGESTS.claim(store, DAY, "b", now) is None  # a's claim is live
    assert _stored(store).attempts == 1


def test_a_lapsed_claim_is_taken_over_and_its_old_holder_changes_nothing(store):
    _add_digest(store)
    now = utcnow()
    DIGESTS.claim(store, DAY, "a", now, timedelta(seconds=5))
    later = now + timedelta(seconds=6)  # a stopped renewing: it died
    taken = DIGESTS.claim(store, DAY, "b", later)
    assert taken is not None and (taken.claimed_by, taken.attempts) == ("b", 2)
    assert DIGESTS.renew(store, "a", later, key=DAY) == 0
    assert not DIGESTS.release(store, DAY, "a", slack_ts="1.0")
    assert (_stored(store).claimed_by, _stored(store).slack_ts) == ("b", None)
    assert DIGESTS.release(store, DAY, "b", posted_at=later, slack_ts="2.0")
    done = _stored(store)
    assert (done.claimed_by, done.claimed_until, done.slack_ts) == (None, None, "2.0")


def test_a_row_no_longer_pending_cannot_be_claimed(store):
    _add_digest(store)
    now = utcnow()
    DIGESTS.claim(store, DAY, "a", now)
    DIGESTS.release(store, DAY, "a", posted_at=now)
    assert DIGESTS.claim(store, DAY, "b", now + timedelta(hours=1)) is None


def test_the_renewal_keeps_a_claim_past_its_length_while_the_work_runs(store):
    _add_digest(store)
    holder, length = holder_name(), timedelta(seconds=0.6)
    DIGESTS.claim(store, DAY, holder, utcnow(), length)
    with DIGESTS.renewal(store, holder, length):
        time.sleep(1.5)
        assert DIGESTS.claim(store, DAY, "other", utcnow()) is None
    time.sleep(0.7)  # no longer renewed: it lapses
    assert DIGESTS.claim(store, DAY, "other", utcnow()) is not None


def test_a_failed_renewal_is_tried_again_a_third_later():
    calls: list[float] = []

    def renew() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ConnectionError("the database is away")

    with Renewal(renew, timedelta(seconds=0.3), "a test claim"):
        time.sleep(0.45)
    assert len(calls) >= 2


def test_a_turn_is_taken_at_most_once_per_interval(store):
    with store.session() as session:
        session.add(HomeTab(user_id="U1", opened_at=utcnow()))
        session.commit()
    now, second = utcnow(), timedelta(seconds=1)
    assert take_turn(store, HomeTab.user_id, "U1", HomeTab.published_at, now, second)
    assert not take_turn(store, HomeTab.user_id, "U1", HomeTab.published_at, now + second / 2, second)
    assert take_turn(store, HomeTab.user_id, "U1", HomeTab.published_at, now + second, second)
