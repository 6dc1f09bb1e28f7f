"""Fuzzing record parsing and every `scan` input format: no exception escapes, every bad record is counted.

The oracle classifies each record from its decoded value with the rule alone (no byte pre-check, no
splitting), so the reader must agree with it record by record, whatever the layout or compression.
"""

from __future__ import annotations

import copy
import gzip
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detection import rule
from detection.record import BadRecord, to_call
from detection.sources.files import scan_bytes

TEMPLATE = {
    "eventVersion": "1.09",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE",
        "arn": "arn:aws:iam::123456789012:user/mallory",
        "accountId": "123456789012",
        "accessKeyId": "AKIAEXAMPLE",
        "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::123456789012:role/x"}},
    },
    "eventTime": "2026-03-01T10:00:00Z",
    "eventSource": "ses.amazonaws.com",
    "eventName": "GetSendQuota",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "198.51.100.1",
    "userAgent": "aws-cli/2",
    "requestParameters": {"serviceCode": "ses"},
    "eventID": "00000000-0000-0000-0000-000000000000",
    "recipientAccountId": "123456789012",
}
PATHS = [
    ("eventTime",), ("eventSource",), ("eventName",), ("userIdentity",), ("userIdentity", "arn"),
    ("userIdentity", "type"), ("userIdentity", "invokedBy"), ("userIdentity", "accessKeyId"),
    ("userIdentity", "sessionContext"), ("recipientAccountId",), ("requestParameters",), ("userAgent",),
    ("eventID",), ("awsRegion",), ("sessionCredentialFromConsole",),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30) | st.sampled_from(["ses.amazonaws.com", "servicequotas.amazonaws.com", "AssumedRole",
                                              "Root", "AWSService", "ListServiceQuotas", "2026-13-45T99:00:00Z",
                                              "2025-01-20 16:52:14.000000000", "arn:aws:iam::1:root", ""]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated_records(draw):
    """A matching SES record with some fields deleted or replaced by arbitrary JSON."""
    record = copy.deepcopy(TEMPLATE)
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=4, unique=True)):
        parent = record
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if draw(st.booleans()):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(json_values)
    return record


records = st.one_of(mutated_records(), json_values, st.just(TEMPLATE))


def expected(value) -> str:
    """'bad', 'call' or 'skip' for one decoded record, straight from the rule."""
    if not isinstance(value, dict):
        return "bad"
    if not rule.matches(value) or rule.is_excluded_caller(value):
        return "skip"
    try:
        to_call(value)
    except BadRecord:
        return "bad"
    return "call"


def encode(values: list, layout: str) -> bytes:
    if layout == "records":
        return json.dumps({"Records": values}).encode()
    if layout == "array":
        return json.dumps(values).encode()
    if layout == "lookup":
        return json.dumps({"Events": [{"EventId": "x", "CloudTrailEvent": json.dumps(v)} for v in values]}).encode()
    return "".join(json.dumps(v) + "\n" for v in values).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(records, min_size=1, max_size=8),
       layout=st.sampled_from(["records", "array", "lookup", "lines"]), gzipped=st.booleans())
def test_every_record_is_a_call_a_skip_or_counted_bad(values, layout, gzipped):
    if layout == "lines" and not isinstance(values[0], dict):
        values = [TEMPLATE, *values]  # JSON Lines is recognised by an object on its first line
    data = encode(values, layout)
    scanned = scan_bytes("fuzz", gzip.compress(data) if gzipped else data)
    outcomes = [expected(v) for v in values]
    assert scanned.error is None
    assert scanned.records == len(values)
    assert len(scanned.bad) == outcomes.count("bad")
    assert len(scanned.calls) == outcomes.count("call")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), gzipped=st.booleans())
def test_arbitrary_bytes_never_raise(data, gzipped):
    scanned = scan_bytes("noise", gzip.compress(data) if gzipped else data)
    if scanned.error is not None:  # a corrupt file is skipped whole: nothing of it counts
        assert scanned.calls == [] and scanned.bad == [] and scanned.sightings == []
    else:  # every call and every bad record is one of the records counted
        assert len(scanned.calls) + len(scanned.sightings) + len(scanned.bad) <= scanned.records
    assert scanned.calls == [] or all(call.event_name in rule.SES_ENUMERATION_CALLS | {rule.SERVICE_QUOTAS_CALL}
                                      for call in scanned.calls)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(mutated_records(), min_size=1, max_size=6), cut=st.floats(0.05, 0.95))
def test_truncated_files_never_raise_and_say_so(values, cut):
    data = encode(values, "records")
    damaged = gzip.compress(data)
    damaged = damaged[: max(1, int(len(damaged) * cut))]
    scanned = scan_bytes("cut.json.gz", damaged)
    assert scanned.error is not None  # named, never silently half-read
    assert scanned.calls == []  # a cut {"Records": …} document yields nothing it cannot vouch for
