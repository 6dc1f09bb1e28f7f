"""Generated CloudTrail files written to trip a reader up (hypothesis strategies and their writers): escaped
keys and strings, duplicate keys, the event sources named in other fields, non-objects, numbers orjson
refuses, pretty printing. Shared by the pre-check's and the streaming reader's property tests."""

from __future__ import annotations

import json
import random

import orjson
from hypothesis import strategies as st

from tests.support import records as r


class Huge:
    """A number msgspec validates and orjson refuses."""


def write_json(value, rng: random.Random, indent: bool) -> str:
    """JSON text with random \\u escapes in keys and strings, and optional whitespace."""
    space = rng.choice(["", " ", "\n  "]) if indent else ""
    if isinstance(value, Huge):
        return "1e999"
    if isinstance(value, str):
        return '"' + "".join(escape(char, rng) for char in value) + '"'
    if isinstance(value, list):
        return "[" + space + ("," + space).join(write_json(item, rng, indent) for item in value) + "]"
    if isinstance(value, dict):
        pairs = list(value.items())
        if pairs and rng.random() < 0.15:  # a duplicate key, before or after the real one
            key = rng.choice([key for key, _ in pairs])
            pairs.insert(rng.choice([0, len(pairs)]), (key, rng.choice(["s3.amazonaws.com", "ses.amazonaws.com", 7])))
        return "{" + space + ("," + space).join(
            write_json(key, rng, indent) + ":" + space + write_json(item, rng, indent) for key, item in pairs) + "}"
    return json.dumps(value)  # numbers of any size, true, false, null


def escape(char: str, rng: random.Random) -> str:
    if char in '"\\' or ord(char) < 0x20:
        return orjson.dumps(char).decode()[1:-1]
    if rng.random() < 0.1:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
        return f"\\u{code:04x}"
    return char


SOURCES = st.sampled_from(["ses.amazonaws.com", "servicequotas.amazonaws.com", "s3.amazonaws.com",
                           "SES.amazonaws.com", "ses.amazonaws.com ", "", "ses"])
NAMES = st.sampled_from(["GetSendQuota", "ListIdentities", "ListServiceQuotas", "GetAccount", "PutObject"])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=12) | SOURCES | st.just(Huge())


@st.composite
def generated_record(draw):
    """A record near the rule's edge: a matching call with fields dropped, replaced or oddly typed."""
    record = r.record(draw(st.sampled_from([r.iam_user("x"), r.sso_session(), r.trusted_advisor(), r.aws_service(),
                                            r.ec2_role(), {"type": "IAMUser"}])), draw(NAMES),
                      source=draw(SOURCES), request={"serviceCode": draw(st.sampled_from(["ses", "ec2", 5]))},
                      event_id=draw(st.sampled_from(["e-1", "e-2", "e-3"])))
    for key in draw(st.lists(st.sampled_from(sorted(record)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del record[key]
        else:
            record[key] = draw(SCALARS | st.lists(SCALARS, max_size=2)
                               | st.dictionaries(st.text(max_size=4), SCALARS, max_size=2))
    if draw(st.booleans()):
        record["userAgent"] = draw(SOURCES)  # the sources named where they do not count
    return record


ELEMENTS = SCALARS | st.lists(SCALARS, max_size=2) | generated_record() | generated_record()


def write_file(values: list, layout: str, rng: random.Random, indent: bool) -> bytes:
    if layout == "log":
        return write_json({"Records": values}, rng, indent).encode()
    if layout == "array":
        return write_json(values, rng, indent).encode()
    if layout == "lookup":
        events = [{"EventId": "x", "CloudTrailEvent": write_json(value, rng, False)} for value in values]
        return write_json({"Events": events}, rng, indent).encode()
    return "".join(write_json(value, rng, False) + "\n" for value in values).encode()
