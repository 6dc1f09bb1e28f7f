"""The LookupEvents source against the local CloudTrail/STS endpoint (real HTTP, boto3 as in production)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from botocore.exceptions import NoCredentialsError

from detection.pacing import RequestPacer
from detection.record import parse_time
from detection.sources.lookup import (
    REQUESTS_PER_WINDOW,
    SAFETY_MARGIN_SECONDS,
    WINDOW_SECONDS,
    Backoff,
    LookupSource,
    lookup_pacer,
)
from detection.sources.pulled import AccountRegion, SourceError
from tests.support import records
from tests.support.clocks import SteppingClock
from tests.support.local_aws import OWN_ACCOUNT, ROLE_ACCOUNT, ROLE_ARN, now, ses_calls, user
from tests.support.waiting import wait_for

FAST = Backoff(base=0.01, cap=0.05)
HERE = AccountRegion(OWN_ACCOUNT, "us-east-1")


# Where the pace is not the subject, the endpoint and the client both allow 20 requests a second so
# that the suite stays fast; the tests about pacing, throttling and credential lifetimes keep AWS's 2.
RELAXED_LIMIT = 20


@pytest.fixture
def relaxed(aws):
    aws.api.limit = RELAXED_LIMIT
    return RELAXED_LIMIT


def source(store, regions=("us-east-1",), roles=(), backoff=FAST, limit=REQUESTS_PER_WINDOW) -> LookupSource:
    return LookupSource(list(regions), list(roles), store, backoff=backoff, pacer=lookup_pacer(store, limit=limit))


def pull(src: LookupSource, place=HERE, start_minutes=60):
    src.places()
    end = now()
    return src.pull(place, end - timedelta(minutes=start_minutes), end, lambda: None)


def ids(pulled) -> set[str]:
    return {call.event_id for call in pulled.calls}


def test_pages_of_fifty_one_attribute_each_in_the_window(aws, sqlite_store, relaxed):
    inside = ses_calls(user("alice"), 120, minutes_ago=5)
    quotas = [records.service_quotas(user("bob"), time=call["eventTime"]) for call in inside[:3]]
    other_service = [records.service_quotas(user("carol"), service_code="ec2", time=inside[0]["eventTime"])]
    too_old = ses_calls(user("dave"), 2, minutes_ago=90)
    other_region = ses_calls(user("erin"), 2, region="eu-west-1")
    aws.api.add_events(*inside, *quotas, *other_service, *too_old, *other_region)

    pulled = pull(source(sqlite_store, limit=relaxed))

    assert ids(pulled) == {r["eventID"] for r in inside + quotas}
    lookups = aws.api.lookups()
    assert all(len(r.params["LookupAttributes"]) == 1 and r.params["MaxResults"] == 50 for r in lookups)
    # each event source's pages in turn (the two sources are read side by side)
    pages = {source: [bool(r.params.get("NextToken")) for r in lookups if r.event_source == source]
             for source in ("ses.amazonaws.com", "servicequotas.amazonaws.com")}
    assert pages == {"ses.amazonaws.com": [False, True, True], "servicequotas.amazonaws.com": [False]}
    assert all(r.status == 200 and r.region == "us-east-1" and r.account == OWN_ACCOUNT for r in lookups)
    assert pulled.reads == 4 and pulled.records == len(inside) + len(quotas) + len(other_service)


def test_a_place_s_two_event_sources_are_read_side_by_side(aws, sqlite_store, relaxed):
    """While SES's first page is held in the stand-in, Service Quotas' is asked for and answered: a steady read
    of a place waits for one round trip, not two. What the read brings is the same."""
    calls = ses_calls(user("alice"), 2)
    quotas = [records.service_quotas(user("bob"), time=calls[0]["eventTime"])]
    aws.api.add_events(*calls, *quotas)
    held = aws.api.inject("hold", event_source="ses.amazonaws.com", first_page=True)
    pulled: list = []
    reading = threading.Thread(target=lambda: pulled.append(pull(source(sqlite_store, limit=relaxed))))
    reading.start()

    def answered() -> dict[str, bool]:  # event source → its latest request answered
        return {r.event_source: r.status == 200 for r in aws.api.lookups()}

    try:
        wait_for(lambda: answered() == {"ses.amazonaws.com": False, "servicequotas.amazonaws.com": True},
                 "Service Quotas' page answered while SES's first one is held")
    finally:
        held.release.set()
        reading.join(timeout=30)
    assert ids(pulled[0]) == {r["eventID"] for r in calls + quotas}


def test_pages_come_newest_first_and_the_result_does_not_depend_on_it(aws, sqlite_store, relaxed):
    calls = ses_calls(user("alice"), 60, minutes_ago=2)
    aws.api.add_events(*reversed(calls))
    pulled = pull(source(sqlite_store, limit=relaxed))
    times = [call.event_time for call in pulled.calls]
    assert times == sorted(times, reverse=True)  # as the endpoint sent them, across both pages
    assert ids(pulled) == {r["eventID"] for r in calls}


def test_the_window_bounds_are_inclusive_and_sent_as_given(aws, sqlite_store, relaxed):
    calls = ses_calls(user("alice"), 3, minutes_ago=30)
    aws.api.add_events(*calls)
    src = source(sqlite_store, limit=relaxed)
    src.places()
    start, end = parse_time(calls[-1]["eventTime"]), parse_time(calls[0]["eventTime"])
    pulled = src.pull(HERE, start, end, lambda: None)
    assert ids(pulled) == {r["eventID"] for r in calls}
    narrower = src.pull(HERE, start + timedelta(seconds=1), end - timedelta(seconds=1), lambda: None)
    assert ids(narrower) == {calls[1]["eventID"]}
    first = aws.api.lookups()[0].params
    assert (first["StartTime"], first["EndTime"]) == (start.timestamp(), end.timestamp())


def test_two_processes_together_never_exceed_two_requests_a_second(aws, sqlite_store):
    """Two sources with their own pacers (as two processes would have) share the budget through the store."""
    aws.api.add_events(*ses_calls(user("alice"), 200, minutes_ago=3))
    results = []
    threads = [threading.Thread(target=lambda: results.append(pull(source(sqlite_store)))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [len(r.calls) for r in results] == [200, 200]
    lookups = aws.api.lookups()
    assert len(lookups) == 2 * 5
    assert not [r for r in lookups if r.error]
    assert aws.api.busiest_window() <= 2
    times = sorted(r.at for r in lookups)
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[2:]))


def test_every_account_and_region_keeps_its_own_two_requests_a_second(aws, sqlite_store):
    """Two accounts × two regions, each read with two requests (one page per event source), on a clock the
    test moves: the eight requests go out at one moment, none waits, and the stand-in (limit 2 per account
    and region, on the same clock) accepts every one. One budget for all would hold back the third. A pair
    that reads again does wait for its own budget, its window from its own first two requests."""
    clock = SteppingClock()
    aws.api.clock = clock.time
    aws.api.add_role(ROLE_ARN)
    regions = ("us-east-1", "eu-west-1")
    for account in (OWN_ACCOUNT, ROLE_ACCOUNT):
        for region in regions:
            aws.api.add_events(*ses_calls(user("alice", account), 3, account=account, region=region))
    pacer = RequestPacer(sqlite_store, REQUESTS_PER_WINDOW, WINDOW_SECONDS, SAFETY_MARGIN_SECONDS,
                         sleep=clock.sleep, clock=clock.time)
    src = LookupSource(list(regions), [ROLE_ARN], sqlite_store, backoff=FAST, pacer=pacer)
    places = src.places()
    assert len(places) == 4
    started, end = clock.time(), now()

    for place in places:
        assert len(src.pull(place, end - timedelta(hours=1), end, lambda: None).calls) == 3

    assert clock.slept == []
    for place in places:
        lookups = aws.api.lookups(account=place.account_id, region=place.region)
        assert [(r.at, r.error) for r in lookups] == [(started, None)] * 2, place
    first = places[0]
    again = src.pull(first, end - timedelta(hours=1), end, lambda: None)
    assert len(again.calls) == 3
    later = aws.api.lookups(account=first.account_id, region=first.region)[2:]
    assert [r.at - started for r in later] == [pytest.approx(WINDOW_SECONDS + SAFETY_MARGIN_SECONDS)] * 2
    assert not [r for r in aws.api.lookups() if r.error] and aws.api.busiest_window() == REQUESTS_PER_WINDOW


def test_throttling_answers_are_backed_off_and_retried(aws, sqlite_store):
    aws.api.add_events(*ses_calls(user("alice"), 70))
    aws.api.inject("throttle", times=3)
    pulled = pull(source(sqlite_store))
    assert len(pulled.calls) == 70
    answers = [r.error for r in aws.api.lookups()]
    assert answers == ["throttle"] * 3 + [None] * 3


def test_persistent_throttling_fails_the_read(aws, sqlite_store, relaxed):
    aws.api.inject("throttle", times=10)
    with pytest.raises(SourceError, match="ThrottlingException.*gave up after 2 retries"):
        pull(source(sqlite_store, backoff=Backoff(base=0.01, cap=0.02, throttled_retries=2), limit=relaxed))
    # three attempts for the source that gave up, and no more for the other, read side by side
    attempts = Counter(r.event_source for r in aws.api.lookups())
    assert max(attempts.values()) == 3 and sum(attempts.values()) <= 6


def test_server_errors_and_malformed_answers_are_retried(aws, sqlite_store, relaxed):
    calls = ses_calls(user("alice"), 5)
    aws.api.add_events(*calls)
    aws.api.inject("error500")
    aws.api.inject("malformed")
    pulled = pull(source(sqlite_store, limit=relaxed))
    assert ids(pulled) == {r["eventID"] for r in calls}
    assert [r.error for r in aws.api.lookups()] == ["error500", "malformed", None, None]


def test_a_malformed_answer_that_persists_is_an_error_never_an_empty_page(aws, sqlite_store, relaxed):
    aws.api.add_events(*ses_calls(user("alice"), 5))
    aws.api.inject("malformed", times=10)
    with pytest.raises(SourceError, match="no Events list|ResponseParserError"):
        pull(source(sqlite_store, limit=relaxed))


def test_hostile_entries_are_counted_as_bad_records(aws, sqlite_store, relaxed):
    good = ses_calls(user("alice"), 2)
    broken = records.record(user("mallory"), time=good[0]["eventTime"])
    broken["userIdentity"] = "not an object"
    aws.api.add_events(*good, broken)
    pulled = pull(source(sqlite_store, limit=relaxed))
    assert ids(pulled) == {r["eventID"] for r in good}
    assert len(pulled.bad) == 1 and "userIdentity" in pulled.bad[0]


def test_a_second_account_through_assume_role(aws, sqlite_store, relaxed):
    aws.api.add_role(ROLE_ARN)
    own = ses_calls(user("alice"), 2)
    theirs = ses_calls(user("bob", ROLE_ACCOUNT), 3, account=ROLE_ACCOUNT, region="eu-west-1")
    aws.api.add_events(*own, *theirs)
    src = source(sqlite_store, regions=("us-east-1", "eu-west-1"), roles=(ROLE_ARN,), limit=relaxed)

    places = src.places()
    assert places == [AccountRegion(a, r) for a in (OWN_ACCOUNT, ROLE_ACCOUNT) for r in ("us-east-1", "eu-west-1")]
    end = now()
    pulled = {p: src.pull(p, end - timedelta(hours=1), end, lambda: None) for p in places}

    assert ids(pulled[AccountRegion(OWN_ACCOUNT, "us-east-1")]) == {r["eventID"] for r in own}
    assert ids(pulled[AccountRegion(ROLE_ACCOUNT, "eu-west-1")]) == {r["eventID"] for r in theirs}
    assume = [r for r in aws.api.requests if r.action == "AssumeRole"]
    assert len(assume) == 1
    assert assume[0].params["RoleArn"] == ROLE_ARN and assume[0].access_key == "AKIAFAKEOWNACCOUNT01"
    role_lookups = aws.api.lookups(account=ROLE_ACCOUNT)
    assert len(role_lookups) == 4 and all(r.access_key.startswith("ASIA") and r.status == 200 for r in role_lookups)


def test_expired_role_credentials_are_renewed_and_the_page_retried(aws, sqlite_store, relaxed):
    aws.api.add_role(ROLE_ARN)
    theirs = ses_calls(user("bob", ROLE_ACCOUNT), 3, account=ROLE_ACCOUNT)
    aws.api.add_events(*theirs)
    src = source(sqlite_store, roles=(ROLE_ARN,), limit=relaxed)
    place = AccountRegion(ROLE_ACCOUNT, "us-east-1")
    assert len(pull(src, place).calls) == 3
    aws.api.expire_sessions()
    assert ids(pull(src, place)) == {r["eventID"] for r in theirs}
    answers = [(r.action, r.error) for r in aws.api.requests if r.account == ROLE_ACCOUNT or r.action == "AssumeRole"]
    expired = answers.index(("LookupEvents", "ExpiredTokenException"))
    assert ("AssumeRole", None) in answers[expired:]
    # The two event sources, read side by side, may both be answered "expired": one renewal for both.
    assert len([a for a in answers if a[0] == "AssumeRole"]) == 2


def test_role_credentials_are_renewed_before_they_expire(aws, sqlite_store):
    """Sessions of 3 s; a read of 7 pages (about 3.3 s at the API's pace) outlasts one. Not one request
    goes out with expired credentials."""
    aws.api.session_seconds = 3
    aws.api.add_role(ROLE_ARN)
    theirs = ses_calls(user("bob", ROLE_ACCOUNT), 260, account=ROLE_ACCOUNT)
    aws.api.add_events(*theirs)
    src = source(sqlite_store, roles=(ROLE_ARN,))
    pulled = pull(src, AccountRegion(ROLE_ACCOUNT, "us-east-1"))
    assert len(pulled.calls) == 260
    lookups = aws.api.lookups(account=ROLE_ACCOUNT)
    assert len(lookups) == 7 and not [r for r in lookups if r.error], [(r.at, r.error, r.access_key) for r in lookups]
    assert len([r for r in aws.api.requests if r.action == "AssumeRole"]) >= 2
    assert len({r.access_key for r in lookups}) >= 2


def test_a_role_that_cannot_be_assumed_fails_its_account_only(aws, sqlite_store, relaxed):
    denied = f"arn:aws:iam::{ROLE_ACCOUNT}:role/not-trusted"
    aws.api.add_events(*ses_calls(user("alice"), 1))
    src = source(sqlite_store, roles=(denied,), limit=relaxed)
    assert len(pull(src).calls) == 1
    with pytest.raises(SourceError, match="cannot assume .*AccessDenied"):
        pull(src, AccountRegion(ROLE_ACCOUNT, "us-east-1"))


def test_unknown_credentials_fail_the_whole_source(aws, sqlite_store, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTKNOWNANYWHERE")
    with pytest.raises(SourceError, match="GetCallerIdentity"):
        source(sqlite_store).places()


def test_a_client_for_any_service_in_an_account_is_signed_as_that_account_and_paced(aws, sqlite_store):
    """`LookupSource.client(service, account, region)` (what the triage context and investigations call AWS
    with): STS answers as the role's account for the role's client and as the own account for the own one;
    a CloudTrail paginator's every page is signed with the role's session and paced like the poll's own."""
    aws.api.add_role(ROLE_ARN)
    aws.api.add_events(*ses_calls(user("bob", ROLE_ACCOUNT), 60, account=ROLE_ACCOUNT))
    src = source(sqlite_store, roles=(ROLE_ARN,))
    src.places()

    assert src.client("sts", ROLE_ACCOUNT, "us-east-1").get_caller_identity()["Account"] == ROLE_ACCOUNT
    assert src.client("sts", OWN_ACCOUNT, "us-east-1").get_caller_identity()["Account"] == OWN_ACCOUNT
    pages = src.client("cloudtrail", ROLE_ACCOUNT, "us-east-1").get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": "ses.amazonaws.com"}],
        StartTime=now() - timedelta(hours=1), EndTime=now(), PaginationConfig={"PageSize": 50})
    assert sum(len(page["Events"]) for page in pages) == 60
    lookups = aws.api.lookups(account=ROLE_ACCOUNT)
    assert len(lookups) == 2 and all(r.access_key.startswith("ASIA") and r.error is None for r in lookups)
    assert aws.api.busiest_window() <= REQUESTS_PER_WINDOW
    with pytest.raises(SourceError, match="neither the credentials' own"):
        src.client("sts", "999999999999", "us-east-1")
    with pytest.raises(NoCredentialsError):  # the shared client itself, called for no account: never signed
        src.clients.client("sts", "us-east-1").get_caller_identity()
