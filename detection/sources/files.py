"""Reading CloudTrail log data in every shape `scan` accepts, without parsing what cannot match.

Four layouts, each optionally gzipped (SPEC §2): a log file `{"Records": [...]}`, a JSON array of
records, JSON Lines, and a LookupEvents response page `{"Events": [{"CloudTrailEvent": "<json>"}]}`;
a single pretty-printed record (as the public samples are) is read as a one-record file.

Why it is fast: msgspec splits a file into raw record slices while validating it (no Python objects
are built), a byte search for the two event sources decides which slices need a real parse, and only
those go through orjson. Records that cannot match are counted and never inspected further.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field
from typing import Iterator

import msgspec
import orjson

from detection import rule
from detection.record import BadRecord, Call, to_call

try:  # ISA-L inflates gzip about twice as fast as zlib; the standard library is the fallback.
    from isal import igzip as _fast_gzip
except ImportError:  # pragma: no cover - exercised only where isal has no wheel
    _fast_gzip = gzip

GZIP_MAGIC = b"\x1f\x8b"
# The byte-level pre-check: a record that does not contain either event source cannot match.
_SOURCE_BYTES = re.compile(rb"(?:ses|servicequotas)\.amazonaws\.com")


class _Envelope(msgspec.Struct):
    Records: list[msgspec.Raw] | None = None
    Events: list[msgspec.Raw] | None = None


_envelope = msgspec.json.Decoder(_Envelope)
_array = msgspec.json.Decoder(list[msgspec.Raw])
_lines = msgspec.json.Decoder(msgspec.Raw)


class CorruptFile(ValueError):
    """The file as a whole cannot be read; it is skipped and named."""


@dataclass
class FileScan:
    """What one file contributed: record count, the matching calls, and what was wrong with it."""

    name: str
    records: int = 0
    calls: list[Call] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # "record N: reason"
    error: str | None = None  # set when the file (or its tail) could not be read


def decompress(data: bytes) -> tuple[bytes, str | None]:
    """Inflate gzip data; a truncated stream yields what could be read, and says so."""
    if not data.startswith(GZIP_MAGIC):
        return data, None
    try:
        return _fast_gzip.decompress(data), None
    except (OSError, EOFError, zlib.error, ValueError):
        pass
    inflater = zlib.decompressobj(wbits=31)
    try:
        salvaged = inflater.decompress(data)
    except zlib.error as exc:
        return b"", f"not a readable gzip stream ({exc})"
    return salvaged, "gzip stream is truncated"


def scan_bytes(name: str, data: bytes, identity_mode: str = "principal") -> FileScan:
    """Every matching, evaluable call in one file's bytes, with counts; never raises on bad input."""
    result = FileScan(name)
    text, gzip_error = decompress(data)
    try:
        if gzip_error and not text:
            raise CorruptFile(gzip_error)
        # A truncated stream can only be trusted line by line.
        records = _json_lines(text, truncated=True) if gzip_error else _split(text)
        for number, raw, nested in records:
            result.records += 1
            _evaluate(result, number, raw, nested, identity_mode)
        result.error = gzip_error
    except CorruptFile as exc:
        result.error = str(exc)
    return result


def _split(text: bytes) -> Iterator[tuple[int, object, bool]]:
    """(record number, raw record, nested-in-LookupEvents?) for each record in the document."""
    body = text.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not body:
        raise CorruptFile("empty file")
    if body[:1] == b"[":
        try:
            return _numbered(_array.decode(body), nested=False)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise CorruptFile(f"not a JSON array of records ({exc})") from None
    if body[:1] != b"{":
        raise CorruptFile("not JSON (neither gzip, an object nor an array)")
    try:
        envelope = _envelope.decode(body)
    except msgspec.ValidationError as exc:
        raise CorruptFile(f"unexpected layout ({exc})") from None
    except (msgspec.DecodeError, RecursionError):
        return _json_lines(body, truncated=False)
    if envelope.Records is not None:
        return _numbered(envelope.Records, nested=False)
    if envelope.Events is not None:
        return _numbered(envelope.Events, nested=True)
    return _numbered([msgspec.Raw(body)], nested=False)


def _numbered(raws, nested: bool) -> Iterator[tuple[int, object, bool]]:
    return ((number, raw, nested) for number, raw in enumerate(raws, 1))


def _json_lines(text: bytes, truncated: bool) -> Iterator[tuple[int, object, bool]]:
    """JSON Lines: one record a line. The first line must be an object, or this is not JSON Lines."""
    lines = [line.strip() for line in text.split(b"\n")]
    if truncated and not text.endswith(b"\n"):
        lines[-1] = b"\0"  # the line the cut went through: counted, and reported bad
    lines = [line for line in lines if line]
    if not truncated and not _is_object(_validated(lines[0]) if lines else None):
        raise CorruptFile("not valid JSON (a truncated or damaged file?)")
    return _numbered((_validated(line) for line in lines), nested=False)


def _validated(line: bytes) -> object:
    """The line as a raw JSON value, or a string saying why it is not one."""
    try:
        return _lines.decode(line)
    except (msgspec.DecodeError, RecursionError) as exc:
        return f"not valid JSON ({str(exc)[:80]})"


def _is_object(raw: object) -> bool:
    return isinstance(raw, msgspec.Raw) and bytes(memoryview(raw)[:1]) == b"{"


def _evaluate(result: FileScan, number: int, raw: object, nested: bool, identity_mode: str) -> None:
    if nested:  # a LookupEvents entry: the record is the JSON text in its CloudTrailEvent
        raw = _lookup_event(raw)
    if isinstance(raw, str):
        result.bad.append(f"record {number}: {raw}")
        return
    if not _is_object(raw):
        result.bad.append(f"record {number}: not a JSON object")
        return
    view = memoryview(raw)
    if not _SOURCE_BYTES.search(view):
        return
    try:
        record = orjson.loads(view)
        if not rule.matches(record) or rule.is_excluded_caller(record):
            return
        result.calls.append(to_call(record, identity_mode))
    except orjson.JSONDecodeError as exc:
        result.bad.append(f"record {number}: not valid JSON ({str(exc)[:80]})")
    except BadRecord as exc:
        result.bad.append(f"record {number}: {exc}")


def _lookup_event(entry: object) -> object:
    """The raw record inside a LookupEvents entry, or why there is none (entries are few and small)."""
    if not _is_object(entry):
        return "not a JSON object"
    try:
        event = orjson.loads(memoryview(entry)).get("CloudTrailEvent")
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON ({str(exc)[:80]})"
    if not isinstance(event, str):
        return "LookupEvents entry without a CloudTrailEvent string"
    return _validated(event.encode())
