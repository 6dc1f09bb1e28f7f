"""SPEC §1: "Results must not depend on the order in which records or files arrive." Shuffling records,
splitting them across files in any of the four layouts, gzipped or not, and delivering some twice never
changes the signals or the summary."""

from __future__ import annotations

import random
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detection.baseline import Tuning
from detection.record import to_call
from detection.scan import detect, scan
from detection.sources.inputs import expand
from tests.support import records as r
from tests.support.records import at

TRAIL = r.realistic_trail()


def run(folder: Path):
    signals, summary = scan(expand([str(folder)]), Tuning())
    return [s.to_dict() for s in signals], (summary.records, summary.matched, summary.signals,
                                            summary.bad_count)


def write_split(folder: Path, records: list[dict], owners: list[int], layouts: list[str], zipped: list[bool]):
    for index, (layout, gz) in enumerate(zip(layouts, zipped)):
        part = [rec for rec, owner in zip(records, owners) if owner == index]
        if part:
            r.write(folder / f"part-{index:02d}.json", part, layout, gz)


def _expected():
    with tempfile.TemporaryDirectory() as folder:
        r.write(Path(folder) / "all.json", TRAIL)
        return run(Path(folder))


EXPECTED_SIGNALS, EXPECTED_SUMMARY = _expected()


def test_the_trail_tells_its_stories():
    """The reference answer, from one file in eventTime order, is the one the stories call for."""
    got = [(s["identity"], s["severity"], s["event_count"]) for s in EXPECTED_SIGNALS]
    assert got == [(r.sso_session("eli@example.com")["arn"], "low", 2),
                   (r.iam_user("svc-mailer")["arn"], "high", 6),
                   (r.federated_user("partner", r.OTHER_ACCOUNT)["arn"], "medium", 1),
                   (r.iam_user("alice")["arn"], "high", 1)]
    assert EXPECTED_SIGNALS[1]["regions"] == ["ap-south-1", "eu-west-1", "sa-east-1", "us-east-1"]
    assert EXPECTED_SIGNALS[1]["error_codes"] == ["AccessDenied"]
    assert EXPECTED_SUMMARY == (len(TRAIL), 47, 4, 2)  # 19 of the matched by excluded callers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_shuffling_splitting_and_redelivering_never_changes_the_answer(data):
    order = data.draw(st.permutations(range(len(TRAIL))), label="order")
    files = data.draw(st.integers(1, 6), label="files")
    owners = data.draw(st.lists(st.integers(0, files - 1), min_size=len(TRAIL), max_size=len(TRAIL)), label="owners")
    layouts = data.draw(st.lists(st.sampled_from(r.FORMATS), min_size=files, max_size=files), label="layouts")
    zipped = data.draw(st.lists(st.booleans(), min_size=files, max_size=files), label="gzip")
    again = data.draw(st.lists(st.sampled_from(range(len(TRAIL))), max_size=5, unique=True), label="delivered twice")
    records = [TRAIL[i] for i in order]
    with tempfile.TemporaryDirectory() as folder:
        write_split(Path(folder), records, owners, layouts, zipped)
        if again:
            r.write(Path(folder) / "late" / "again.json", [TRAIL[i] for i in again], "lines", gzipped=True)
        signals, (records_read, matched, signal_count, bad) = run(Path(folder))
    assert signals == EXPECTED_SIGNALS
    assert (matched, signal_count) == EXPECTED_SUMMARY[1:3]
    assert records_read == EXPECTED_SUMMARY[0] + len(again)
    assert bad == EXPECTED_SUMMARY[3] + sum(1 for i in again if TRAIL[i] in TRAIL[-2:])


# ── the baseline alone, on generated trails ──────────────────────────────────────────────────────────

PEOPLE = [r.iam_user("alice"), r.iam_user("bob", key=r.SESSION_KEY), r.sso_session(), r.ec2_role("i-1"),
          r.ec2_role("i-2"), r.root(), r.iam_user("carol", r.OTHER_ACCOUNT)]

calls = st.builds(
    lambda who, day, minute, name, region, n: r.record(
        PEOPLE[who], name, time=at(days=day, minutes=minute), region=region, event_id=f"ev-{n}"),
    who=st.integers(0, len(PEOPLE) - 1), day=st.sampled_from([0, 1, 6, 7, 8, 20, 36, 37, 70]),
    minute=st.sampled_from([0, 0, 30, 61]), name=st.sampled_from(["GetSendQuota", "ListIdentities", "GetAccount"]),
    region=st.sampled_from(["us-east-1", "eu-west-1"]), n=st.integers(0, 40),
)


@settings(max_examples=200, deadline=None)
@given(trail=st.lists(calls, max_size=30), seed=st.integers(0, 2**32 - 1))
def test_detection_is_a_function_of_the_set_of_calls_not_their_order(trail, seed):
    """Ties in eventTime and even two different records under one eventID give one answer."""
    tuning = Tuning(learning=timedelta(days=7), forget=timedelta(days=28), group=timedelta(minutes=60))
    shuffled = list(trail)
    random.Random(seed).shuffle(shuffled)

    def answer(records):
        signals, taken = detect([to_call(rec) for rec in records], tuning)
        return sorted((s.to_dict() for s in signals), key=lambda s: s["signal_id"]), len(taken)

    assert answer(shuffled) == answer(trail)
