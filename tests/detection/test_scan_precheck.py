"""The pre-check never changes an answer: with it and without it (every record parsed and run through the
rule), every file gives the same record count, calls, bad records and error. Proved on every fixture (the
public samples, tests/fixtures, examples/), on their records in every layout, and on generated JSON
written to trip a pre-check up: escaped event sources and keys, duplicate keys, the sources named in
other fields, non-objects, numbers orjson refuses, pretty printing, gzip and truncation, random bytes.
And it does its job: a file without a candidate is never split, only candidates are parsed."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detection.sources import files
from detection.sources.files import scan_bytes
from tests.support import records as r
from tests.support.records import FIXTURES, SAMPLES
from tests.support.trail_strategies import ELEMENTS, write_file

DEMO_TRAIL = Path(__file__).resolve().parents[2] / "bot" / "cli" / "demo" / "trail"
FIXTURE_FILES = sorted(
    [*SAMPLES.glob("[0-9]*.json"), *FIXTURES.glob("*.json*"),
     *(path for path in DEMO_TRAIL.rglob("*") if path.is_file() and path.name.endswith((".json", ".json.gz")))]
)


def both_ways(data: bytes, mode: str = "principal") -> files.FileScan:
    """The file read with the pre-check, after asserting that reading it without gives the same."""
    checked = scan_bytes("file", data, mode)
    assert checked == scan_bytes("file", data, mode, precheck=False)
    return checked


def test_there_are_fixtures_of_every_kind():
    assert {path.parent for path in FIXTURE_FILES} >= {SAMPLES, FIXTURES}
    assert any(path.is_relative_to(DEMO_TRAIL) for path in FIXTURE_FILES)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.name)
def test_every_fixture_reads_the_same_with_and_without_the_precheck(path):
    data = path.read_bytes()
    plain = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    for variant in {data, plain, gzip.compress(plain, mtime=0)}:
        for mode in ("principal", "arn"):
            scanned = both_ways(variant, mode)
            assert scanned.error is None and scanned.records >= 1


def fixture_records() -> list:
    found = []
    for path in FIXTURE_FILES:
        scanned_text = files.decompress(path.read_bytes())[0]
        try:
            document = orjson.loads(scanned_text)
        except orjson.JSONDecodeError:  # JSON Lines
            found += [orjson.loads(line) for line in scanned_text.splitlines() if line.strip()]
            continue
        if isinstance(document, list):
            found += document
        elif "Records" in document:
            found += document["Records"]
        elif "Events" in document:
            found += [orjson.loads(event["CloudTrailEvent"]) for event in document["Events"]]
        else:
            found.append(document)
    return found


@pytest.mark.parametrize("layout", r.FORMATS)
def test_all_fixture_records_in_every_layout_read_the_same_and_find_the_calls(layout):
    records = fixture_records()
    compact = r.encode(records, layout)
    scanned = both_ways(compact)
    assert scanned.records == len(records) and scanned.calls
    assert both_ways(gzip.compress(compact, mtime=0)) == scanned
    if layout != "lines":  # pretty-printed: the same records with other bytes around them
        assert both_ways(orjson.dumps(orjson.loads(compact), option=orjson.OPT_INDENT_2)).calls == scanned.calls


# ── the pre-check reads decoded values, as the rule does ─────────────────────────────────────────────

MATCHING = r.record(r.iam_user("mallory"), "GetSendQuota", time=r.at(days=1), event_id="precheck-1")


def as_text(record: dict) -> str:
    return orjson.dumps(record).decode()


@pytest.mark.parametrize("layout", ["log", "array", "lines", "lookup"])
@pytest.mark.parametrize("spelling", [
    ('"ses.amazonaws.com"', '"ses\\u002eamazonaws.com"'),
    ('"ses.amazonaws.com"', '"\\u0073\\u0065\\u0073.amazonaws.com"'),
    ('"eventSource"', '"event\\u0053ource"'),
])
def test_an_escaped_event_source_or_key_is_still_found(layout, spelling):
    text = as_text(MATCHING).replace(*spelling)
    assert spelling[1] in text and orjson.loads(text) == MATCHING
    if layout == "lookup":  # the escape inside the CloudTrailEvent string
        data = orjson.dumps({"Events": [{"EventId": "x", "CloudTrailEvent": text}]})
    else:
        data = r.encode([MATCHING], layout).replace(as_text(MATCHING).encode(), text.encode())
        assert spelling[1].encode() in data
    assert [call.event_id for call in both_ways(data).calls] == ["precheck-1"]


@pytest.mark.parametrize("first, last, found", [
    ("s3.amazonaws.com", "ses.amazonaws.com", True),
    ("ses.amazonaws.com", "s3.amazonaws.com", False),
])
def test_a_duplicate_event_source_key_is_read_as_the_rule_reads_it_the_last_one(first, last, found):
    text = as_text({**MATCHING, "eventSource": first})
    text = text[:-1] + f',"eventSource":"{last}"}}'
    data = b'{"Records":[' + text.encode() + b"]}"
    assert bool(both_ways(data).calls) is found


def parses(monkeypatch) -> list[bytes]:
    """The records the reader parses in full, from now on."""
    parsed: list[bytes] = []
    real = files._parse

    def counting(raw):
        parsed.append(bytes(memoryview(raw)))
        return real(raw)

    monkeypatch.setattr(files, "_parse", counting)
    return parsed


def test_records_that_only_mention_a_source_elsewhere_are_never_parsed(monkeypatch):
    decoy = r.record(r.iam_user("ses-admin"), "PutObject", source="s3.amazonaws.com",
                     agent="ses.amazonaws.com", request={"note": "servicequotas.amazonaws.com"})
    data = r.encode([decoy] * 5, "log")
    assert both_ways(data).calls == []
    parsed = parses(monkeypatch)
    scanned = scan_bytes("decoys", data)
    assert scanned.records == 5 and scanned.calls == [] and scanned.bad == []
    assert parsed == []


# ── it does its job ──────────────────────────────────────────────────────────────────────────────────

def noise(count: int) -> list[dict]:
    return [r.record(r.assumed_role("app", f"s-{n}"), "GetObject", source="s3.amazonaws.com") for n in range(count)]


def test_only_candidates_are_parsed_and_a_file_without_one_is_never_split(monkeypatch):
    quiet = r.encode(noise(1000), "log")
    calls = [r.record(r.iam_user("eve"), "ListIdentities", event_id="c-1"),
             r.service_quotas(r.iam_user("eve"), "ec2", event_id="c-2")]
    busy = noise(1000)
    busy[10:10] = calls[:1]
    busy[600:600] = calls[1:]
    busy = r.encode(busy, "log")
    assert both_ways(quiet).records == 1000 and len(both_ways(busy).calls) == 1

    parsed = parses(monkeypatch)
    splits = []
    real_envelope = files._envelope

    class CountingEnvelope:
        def decode(self, data):
            splits.append(len(data))
            return real_envelope.decode(data)

    monkeypatch.setattr(files, "_envelope", CountingEnvelope())
    assert scan_bytes("quiet", quiet).records == 1000
    assert parsed == [] and splits == []

    scanned = scan_bytes("busy", busy)
    assert scanned.records == 1002 and [call.event_id for call in scanned.calls] == ["c-1"]
    assert sorted(orjson.loads(raw)["eventID"] for raw in parsed) == ["c-1", "c-2"]
    assert splits == [len(busy)]


# ── generated JSON written to trip a pre-check up ────────────────────────────────────────────────────

@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(values=st.lists(ELEMENTS, min_size=1, max_size=8), layout=st.sampled_from(r.FORMATS),
       seed=st.integers(0, 2**32), indent=st.booleans(), gzipped=st.booleans(),
       cut=st.none() | st.floats(0.3, 0.99))
def test_generated_files_read_the_same_with_and_without_the_precheck(values, layout, seed, indent, gzipped, cut):
    data = write_file(values, layout, random.Random(seed), indent)  # the seed picks escapes and duplicates
    if gzipped:
        data = gzip.compress(data, mtime=0)
    if cut is not None:
        data = data[: max(1, int(len(data) * cut))]
    both_ways(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), gzipped=st.booleans())
def test_arbitrary_bytes_read_the_same_with_and_without_the_precheck(data, gzipped):
    both_ways(gzip.compress(data, mtime=0) if gzipped else data)
