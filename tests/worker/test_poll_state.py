"""poll_state's records of a pass, on both databases: an account's regions recorded together never move a
watermark back, keep the first backfill's time, clear the failures, and make the row of a place never listed."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.worker.ingest import poll_state
from bot.worker.tables import PollState
from detection.sources.pulled import AccountRegion
from detection.store import utcnow
from tests.support.local_aws import OWN_ACCOUNT

EAST, WEST = AccountRegion(OWN_ACCOUNT, "us-east-1"), AccountRegion(OWN_ACCOUNT, "us-west-2")


def rows(store) -> dict[str, PollState]:
    with store.session() as session:
        return {row.region: row for row in session.exec(select(PollState).where(PollState.source == "lookup"))}


def test_an_account_s_successes_keep_the_latest_watermark_and_the_first_backfill(store):
    poll_state.record_listing(store, "lookup", [EAST])  # WEST is never listed: its row is made by its success
    late, early = utcnow(), utcnow() - timedelta(hours=1)
    poll_state.record_successes(store, "lookup", {EAST: late, WEST: early}, backfill=True)
    backfilled = rows(store)
    poll_state.record_failure(store, "lookup", EAST, "ThrottlingException")
    assert rows(store)["us-east-1"].consecutive_failures == 1

    # a pass whose window ended earlier (a slow host's clock) and a later one: the watermark only moves on
    poll_state.record_successes(store, "lookup", {EAST: early, WEST: late}, backfill=False)

    after = rows(store)
    assert (after["us-east-1"].watermark, after["us-west-2"].watermark) == (late, late)
    assert [after[region].backfilled_at for region in after] == [backfilled[region].backfilled_at for region in after]
    assert all(after[region].backfilled_at is not None for region in ("us-east-1", "us-west-2"))
    assert [row.consecutive_failures for row in after.values()] == [0, 0, 0]  # and the source's own row
    assert after["us-east-1"].last_error == "ThrottlingException"  # kept for status; the failures are cleared
    assert after["us-west-2"].last_success_at > backfilled["us-west-2"].last_success_at
    assert after["us-west-2"].waiting_since is not None


def test_a_place_first_read_in_a_steady_pass_is_not_marked_backfilled(store):
    poll_state.record_successes(store, "lookup", {EAST: utcnow()}, backfill=False)
    assert rows(store)["us-east-1"].backfilled_at is None
