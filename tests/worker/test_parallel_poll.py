"""Accounts polled side by side (SPEC §7), against the CloudTrail stand-in: one slow account does not hold
the others up, and however many reads run at once, each account and region keeps its 2 requests a second."""

from __future__ import annotations

import threading

from sqlmodel import select

from bot.worker.ingest.poll import poll_once
from detection.sources.lookup import Backoff, LookupSource, lookup_pacer
from detection.store import SignalRow
from tests.support.local_aws import (
    OWN_ACCOUNT,
    ROLE_ACCOUNT,
    ROLE_ARN,
    ses_calls,
    user,
    worker_settings,
)
from tests.support.waiting import wait_for

FAST = Backoff(base=0.01, cap=0.05)


def settings_for(store, **overrides):
    values = {"database_url": store.url, "backfill_days": 30, "learning_days": 7, "lookback_minutes": 20,
              "aws_regions": ["us-east-1"]}
    values.update(overrides)
    return worker_settings(**values)


def test_an_account_whose_read_hangs_does_not_hold_the_other_accounts_up(aws, store):
    aws.api.limit = 20
    aws.api.add_role(ROLE_ARN)
    aws.api.add_events(*ses_calls(user("bob", ROLE_ACCOUNT), 2, account=ROLE_ACCOUNT, days_ago=9))
    held = aws.api.inject("hold", account=OWN_ACCOUNT)  # the own account (listed first) hangs
    settings = settings_for(store, role_arns=[ROLE_ARN], poll_concurrency=4)
    source = LookupSource(settings.aws_regions, settings.role_arns, store, backoff=FAST,
                          pacer=lookup_pacer(store, limit=20))
    results = []
    running = threading.Thread(target=lambda: results.append(poll_once(settings, store, source, notify=False)))
    running.start()
    try:
        held.reached.wait(60)
        assert held.reached.is_set()
        # Both EventSource queries of the other account are answered while the first account's hangs.
        wait_for(lambda: len([r for r in aws.api.lookups(ROLE_ACCOUNT) if r.status == 200]) == 2,
                 "the second account's reads while the first account's hangs")
    finally:
        held.release.set()
        running.join(60)
    [result] = results
    assert result.ok and sorted(o.place.account_id for o in result.places) == [OWN_ACCOUNT, ROLE_ACCOUNT]


def test_many_reads_at_once_keep_each_places_pace_and_are_never_throttled(aws, store):
    """The stand-in's real limit (2 accepted requests a second per account and region) and the worker's
    real pacer; 3 accounts × 2 regions read by 16 threads, one place with three pages per event source."""
    roles = [f"arn:aws:iam::{account}:role/sesguard-reader" for account in ("222222222222", "333333333333")]
    for role in roles:
        aws.api.add_role(role)
    aws.api.add_events(*ses_calls(user("alice"), 120, days_ago=3),
                       *ses_calls(user("bob", "333333333333"), 3, account="333333333333", region="eu-west-1",
                                  days_ago=3))
    settings = settings_for(store, role_arns=roles, aws_regions=["us-east-1", "eu-west-1"], poll_concurrency=16)
    source = LookupSource(settings.aws_regions, settings.role_arns, store, backoff=FAST)
    first = poll_once(settings, store, source, notify=False)
    aws.api.add_events(*ses_calls(user("mallory", "222222222222"), 1, account="222222222222", region="eu-west-1"))
    second = poll_once(settings, store, source, notify=False)

    assert first.ok and second.ok and len(first.places) == 6
    lookups = aws.api.lookups()
    assert [r for r in lookups if r.error] == [] and aws.api.busiest_window() <= 2
    # the backfill: 3 pages of ses and 1 of servicequotas; the next pass one page of each
    assert len(aws.api.lookups(OWN_ACCOUNT, "us-east-1")) == 4 + 2
    with store.session() as session:
        assert list(session.exec(select(SignalRow.identity))) == ["arn:aws:iam::222222222222:user/mallory"]
