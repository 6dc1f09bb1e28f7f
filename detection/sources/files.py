"""Reading CloudTrail log data in every shape `scan` accepts, without parsing what cannot match.

Four layouts, each optionally gzipped (SPEC §2): a log file `{"Records": [...]}`, a JSON array of
records, JSON Lines, and a LookupEvents response page `{"Events": [{"CloudTrailEvent": "<json>"}]}`;
a single pretty-printed record (as the public samples are) is read as a one-record file.

Why it is fast (figures in bench/scan.py): ISA-L inflates the gzip stream; msgspec then validates the
whole file in one pass and, while it does, reads the one field the pre-check needs, each record's
`eventSource`, without building anything else. A file in which no record names one of the two event
sources is done at that point: its records are counted and nothing more. Only a file with a candidate is
split into raw record slices (a second msgspec pass), and only the candidates are parsed by orjson and
run through the rule. The pre-check reads the decoded value, so escapes (`ses\\u002eamazonaws.com`),
duplicate keys and look-alike text elsewhere in a record decide exactly as the rule would.

Memory (`scan_file`): files are read as streams; JSON Lines a block of lines at a time, whatever their
size, each line up to LINE_LIMIT bytes (a longer one is a bad record, let go as it streams in); any other
document whole, up to WHOLE_FILE_LIMIT inflated bytes, and named past it. Every byte is copied a bounded
number of times, however long its line: time grows with the file, never with the square of a line.
"""

from __future__ import annotations

import io
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeGuard

import msgspec
import orjson

from detection import rule
from detection.record import BadRecord, Call, Sighting, to_call, to_sighting

_inflate: ModuleType  # isal_zlib or zlib: the same decompressobj and error
try:  # ISA-L inflates about twice as fast as the standard zlib, which stays the fallback.
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - exercised only where isal has no wheel
    _inflate = zlib

GZIP_MAGIC = b"\x1f\x8b"
GZIP_WINDOW = 31  # zlib's wbits for a gzip header and trailer
# Memory: JSON Lines are read a block at a time; any other file is read whole, up to this many inflated
# bytes, so that no file, however well it compresses (a gzip bomb), costs more memory than about twice
# this. CloudTrail writes a few megabytes a file; the limit sits far above any real log file, because a
# skipped file could hide the one call that matters.
WHOLE_FILE_LIMIT = 256 * 1024 * 1024
# One JSON Lines line is one record, and CloudTrail's records are kilobytes: a line longer than this is
# no record AWS wrote. It is a bad record, counted and named, and never held in memory whole.
LINE_LIMIT = 16 * 1024 * 1024
READ_BLOCK = 1024 * 1024  # bytes read from a file or from S3 at a time
INFLATE_BLOCK = 4 * 1024 * 1024  # inflated bytes made at a time
LEADING_BLANKS = b"\xef\xbb\xbf \t\r\n"  # a UTF-8 byte order mark and blank space, before the JSON
EVENT_SOURCES = rule.EVENT_SOURCES
# A verdict for a record the pre-check could not read (msgspec rejects a number orjson accepts, say):
# it gets the full parse, so that doubt never drops a record.
UNKNOWN_SOURCE = rule.SES_SOURCE


class _Probe(msgspec.Struct, gc=False):
    """All the pre-check reads of a record; msgspec skips every other field without decoding it.
    (gc=False: a thousand of these a file need no tracking by the cycle collector.)"""

    eventSource: Any = None


class _ProbedEnvelope(msgspec.Struct):
    Records: list[_Probe] | None = None
    Events: list[msgspec.Raw] | None = None


class _Envelope(msgspec.Struct):
    Records: list[msgspec.Raw] | None = None
    Events: list[msgspec.Raw] | None = None


_probed_envelope = msgspec.json.Decoder(_ProbedEnvelope)
_probed_array = msgspec.json.Decoder(list[_Probe])
_envelope = msgspec.json.Decoder(_Envelope)
_array = msgspec.json.Decoder(list[msgspec.Raw])
_raw = msgspec.json.Decoder(msgspec.Raw)
# One JSON Lines line: an object is probed, anything else decoded as the non-object it is.
_probed_line = msgspec.json.Decoder(_Probe | None | bool | int | float | str | list)
_probe = msgspec.json.Decoder(_Probe)
# orjson refuses numbers beyond a double (1e999) that msgspec's validation lets through; this reads them.
_lenient = msgspec.json.Decoder(float_hook=float)


class CorruptFile(ValueError):
    """The file as a whole cannot be read; it is skipped and named."""


@dataclass
class FileScan:
    """What one file contributed: record count, the matching calls, and what was wrong with it."""

    name: str
    records: int = 0
    calls: list[Call] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)  # matching calls by excluded callers
    bad: list[str] = field(default_factory=list)  # "record N: reason"
    error: str | None = None  # set when the file could not be read: it was skipped whole


def decompress(data: bytes) -> tuple[bytes, str | None]:
    """Inflate gzip data (every member of a concatenated file); a damaged or truncated stream yields
    what could be read before the damage, and says so."""
    inflated = Inflated(io.BytesIO(data).read)
    return b"".join(inflated), inflated.error


class Inflated:
    """A file's bytes, inflated a block at a time when they are gzip (every member of a concatenated
    file), as they are otherwise. Once the blocks are exhausted, `error` says whether the stream was
    damaged or cut, the blocks holding what came before."""

    def __init__(self, read: Callable[[int], bytes]):
        self.read = read
        self.error: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        pending = self.read(READ_BLOCK)
        if not pending.startswith(GZIP_MAGIC):
            while pending:
                yield pending
                pending = self.read(READ_BLOCK)
            return
        inflater = _inflate.decompressobj(GZIP_WINDOW)
        while True:
            if not pending:
                pending = self.read(READ_BLOCK)
                if not pending:
                    if not inflater.eof:
                        self.error = "gzip stream is truncated"
                    return
            if inflater.eof:  # another member follows, or padding, or junk
                if not pending.startswith(GZIP_MAGIC):
                    if pending.strip(b"\0") or self.read(READ_BLOCK).strip(b"\0"):
                        self.error = "unexpected bytes after the gzip stream"
                    return  # zero padding after the last member is common and harmless
                inflater = _inflate.decompressobj(GZIP_WINDOW)
            try:
                block = inflater.decompress(pending, INFLATE_BLOCK)
            except (_inflate.error, zlib.error) as exc:
                self.error = f"not a readable gzip stream ({exc})"
                return
            pending = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            if block:
                yield block


def scan_bytes(name: str, data: bytes, identity_mode: str = "principal", precheck: bool = True) -> FileScan:
    """Every matching, evaluable call in one file's bytes, with counts; never raises on bad input.

    `precheck=False` parses every record, for the tests that prove the pre-check changes nothing."""
    text, gzip_error = decompress(data)
    return _scan_text(name, text, gzip_error, identity_mode, precheck)


def scan_file(name: str, read: Callable[[int], bytes], identity_mode: str = "principal",
              precheck: bool = True) -> FileScan:
    """`scan_bytes` for a file read through `read(size)`, in bounded memory: JSON Lines are read a block
    of lines at a time, whatever their size; a JSON document is read whole up to WHOLE_FILE_LIMIT inflated
    bytes (CloudTrail writes a few megabytes a file), and one larger than that is skipped and named."""
    inflated = Inflated(read)
    blocks = iter(inflated)
    head = _Head()
    for block in blocks:
        head.add(block)
        if head.is_json_lines:
            return _scan_json_lines(name, head.blocks, blocks, inflated, identity_mode, precheck)
        if head.size > WHOLE_FILE_LIMIT:
            return FileScan(name, error=f"too large to read whole (a JSON document over "
                                        f"{_size(WHOLE_FILE_LIMIT)} inflated); split it, or write it as JSON Lines")
    text = head.blocks[0] if len(head.blocks) == 1 else b"".join(head.blocks)  # one block (the usual case): no copy
    head.blocks.clear()
    return _scan_text(name, text, inflated.error, identity_mode, precheck)


class _Head:
    """The blocks of a file read before its layout is known, and what they tell of it: is it JSON Lines,
    with a line after the first — what reading it whole would take line by line? (The first line an
    object, complete, and more than blank space after it.) Each block is looked at once, when it comes,
    and the first line is validated once, only when a line follows it: a log file that ends in a newline
    is no JSON Lines, and is spared a second pass."""

    def __init__(self) -> None:
        self.blocks: deque[bytes] = deque()
        self.size = 0  # bytes read, blank space included
        self._first_line: list[bytes] = []  # its pieces
        self._first_line_ended = False
        self._verdict: bool | None = None  # decided once a line follows the first

    @property
    def is_json_lines(self) -> bool:
        return bool(self._verdict)

    def add(self, block: bytes) -> None:
        self.size += len(block)
        if not self.blocks:  # what reading it whole strips from the start
            block = block.lstrip(LEADING_BLANKS)
            if not block:
                return
        self.blocks.append(block)
        if not self._first_line_ended:
            before, newline, block = block.partition(b"\n")
            self._first_line.append(before)
            self._first_line_ended = bool(newline)
        if self._first_line_ended and self._verdict is None and not _is_blank(block):
            self._verdict = _is_object(_validated(b"".join(self._first_line).strip()))
            self._first_line = []


def _scan_text(name: str, text: bytes, gzip_error: str | None, identity_mode: str, precheck: bool) -> FileScan:
    result = FileScan(name)
    try:
        if gzip_error:  # a damaged or cut file is corrupt: skipped whole and named, never half-read
            raise CorruptFile(gzip_error)
        records = _split(text)
        del text  # the records hold what they need of it
        result.records = records.count
        for number, outcome in records.to_evaluate(precheck):
            _evaluate(result, number, outcome, identity_mode)
    except CorruptFile as exc:
        result.error = str(exc)
    return result


def _scan_json_lines(name: str, head: deque[bytes], blocks: Iterator[bytes], inflated: Inflated,
                     identity_mode: str, precheck: bool) -> FileScan:
    """JSON Lines, one block of complete lines at a time: the answers of reading it whole, in the memory
    of a block (and of LINE_LIMIT, for a line longer than a block)."""
    result = FileScan(name)

    def in_order() -> Iterator[bytes]:
        while head:  # each block is let go once read
            yield head.popleft()
        yield from blocks

    numbered = 0
    lines = LineSplitter()
    for block in in_order():
        numbered = _scan_lines(result, lines.feed(block), numbered, identity_mode, precheck)
    if inflated.error:  # as when read whole: a damaged or cut file is skipped and named
        return FileScan(name, error=inflated.error)
    result.records = _scan_lines(result, lines.end(), numbered, identity_mode, precheck)
    return result


class LineSplitter:
    """The lines of a stream that comes in blocks, each byte copied once or twice, whatever the length of
    its line: a line that spans blocks is kept as the pieces it came in and joined once, when it ends
    (joining what is held at every block would copy a long line once per block: quadratic time). A line
    that grows past LINE_LIMIT is let go piece by piece as it streams in, and comes out as None (or as an
    empty line when all of it was blank space)."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []  # the line under way, as it came
        self._length = 0  # its length so far, what was let go included
        self._blank = True  # nothing but blank space in it so far

    def feed(self, block: bytes) -> list[bytes | None]:
        """The lines this block ends."""
        if b"\n" not in block:  # the middle of a long line: the block itself is held, not a copy
            self._hold(block)
            return []
        first, *middle, last = block.split(b"\n")
        self._hold(first)
        lines = [self._finish(), *middle]
        self._hold(last)
        return lines

    def end(self) -> list[bytes | None]:
        """The last line, which no newline ended."""
        return [self._finish()]

    def _hold(self, piece: bytes) -> None:
        self._length += len(piece)
        self._blank = self._blank and _is_blank(piece)
        if self._length > LINE_LIMIT:
            self.pieces.clear()  # nothing of an over-long line is kept
        elif piece:
            self.pieces.append(piece)

    def _finish(self) -> bytes | None:
        if self._length > LINE_LIMIT:
            line = b"" if self._blank else None
        else:
            line = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
        self.pieces, self._length, self._blank = [], 0, True
        return line


def _scan_lines(result: FileScan, lines: Iterable[bytes | None], numbered: int, identity_mode: str,
                precheck: bool) -> int:
    """Evaluate some JSON Lines lines (None: one over LINE_LIMIT); returns how many records have been
    numbered so far."""
    for line in lines:
        if line is not None and _is_blank(line):
            continue
        numbered += 1
        outcome, source = _json_line(line)
        if isinstance(outcome, str) or not precheck or source in EVENT_SOURCES:
            _evaluate(result, numbered, outcome, identity_mode)
    return numbered


def _is_blank(text: bytes) -> bool:
    """Empty or blank space only (what `bytes.strip()` would leave empty), without copying it."""
    return not text or text.isspace()


# What each record comes to before the rule: a raw JSON object to parse, or why it is bad (a str).
Outcome = msgspec.Raw | bytes | str


class _Probed:
    """Records whose eventSource msgspec read while validating the file: a record that names neither
    event source cannot match, and a file without candidates is never split into records at all."""

    def __init__(self, body: bytes, sources: list[Any], slices):
        self.body, self.sources, self.slices = body, sources, slices
        self.count = len(sources)

    def to_evaluate(self, precheck: bool) -> Iterator[tuple[int, Outcome]]:
        if precheck and not any(source in self.sources for source in EVENT_SOURCES):
            return iter(())  # the common case, answered by two scans of a list in C
        wanted = [index for index, source in enumerate(self.sources) if not precheck or source in EVENT_SOURCES]
        raws = self.slices(self.body)
        return ((index + 1, raws[index]) for index in wanted)


class _Listed:
    """Records known one by one (JSON Lines, LookupEvents entries, arrays holding non-objects), each
    with the eventSource the pre-check read from it (UNKNOWN_SOURCE when it could not)."""

    def __init__(self, items: Iterable[tuple[Outcome, Any]], count: int):
        self.items, self.count = items, count

    def to_evaluate(self, precheck: bool) -> Iterator[tuple[int, Outcome]]:
        for number, (outcome, source) in enumerate(self.items, 1):
            if isinstance(outcome, str) or not precheck or source in EVENT_SOURCES:
                yield number, outcome


def _split(text: bytes) -> _Probed | _Listed:
    body = text.lstrip(LEADING_BLANKS)
    if not body:
        raise CorruptFile("empty file")
    if body[:1] == b"[":
        try:
            return _Probed(body, [probe.eventSource for probe in _probed_array.decode(body)], _array.decode)
        except (msgspec.MsgspecError, RecursionError):
            pass  # an element that is not an object, or not JSON at all: the general reading says which
        try:
            return _objects(_array.decode(body))
        except (msgspec.DecodeError, RecursionError) as exc:
            raise CorruptFile(f"not a JSON array of records ({exc})") from None
    if body[:1] != b"{":
        raise CorruptFile("not JSON (neither gzip, an object nor an array)")
    try:
        probed = _probed_envelope.decode(body)
    except (msgspec.MsgspecError, RecursionError):
        probed = None
    if probed is not None and probed.Records is not None:
        return _Probed(body, [probe.eventSource for probe in probed.Records], lambda doc: _envelope.decode(doc).Records)
    try:
        envelope = _envelope.decode(body)
    except msgspec.ValidationError as exc:
        raise CorruptFile(f"unexpected layout ({exc})") from None
    except (msgspec.DecodeError, RecursionError):
        return _json_lines(body)
    if envelope.Records is not None:
        return _objects(envelope.Records)
    if envelope.Events is not None:
        return _Listed((_lookup_event(entry) for entry in envelope.Events), len(envelope.Events))
    return _objects([msgspec.Raw(body)])


def _objects(raws: list[msgspec.Raw]) -> _Listed:
    return _Listed(((raw, _source(raw)) if _is_object(raw) else ("not a JSON object", None) for raw in raws), len(raws))


def _source(raw: msgspec.Raw | bytes) -> Any:
    """The eventSource of one raw JSON object."""
    try:
        return _probe.decode(raw).eventSource
    except (msgspec.MsgspecError, RecursionError):
        return UNKNOWN_SOURCE


def _json_lines(text: bytes) -> _Listed:
    """JSON Lines: one record a line. The first line must be an object, or this is not JSON Lines."""
    lines = [line for line in text.split(b"\n") if not _is_blank(line)]
    if not _is_object(_validated(lines[0].strip()) if lines else None):
        raise CorruptFile("not valid JSON (a truncated or damaged file?)")
    return _Listed(map(_json_line, lines), len(lines))


def _json_line(line: bytes | None) -> tuple[Outcome, Any]:
    """One JSON Lines line as written; a line over LINE_LIMIT (None: let go already) is a bad record."""
    if line is None or len(line) > LINE_LIMIT:
        return f"a line over {_size(LINE_LIMIT)} (no CloudTrail record is that large)", None
    return _line(line.strip())


def _size(limit: int) -> str:
    return f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit:,} bytes"


def _line(line: bytes) -> tuple[Outcome, Any]:
    try:
        value = _probed_line.decode(line)
    except (msgspec.MsgspecError, RecursionError):
        raw = _validated(line)  # the reason it is not JSON, or a value only orjson reads in full
        if isinstance(raw, str):
            return raw, None
        return (line, UNKNOWN_SOURCE) if _is_object(raw) else ("not a JSON object", None)
    if isinstance(value, _Probe):
        return line, value.eventSource
    return "not a JSON object", None


def _validated(line: bytes) -> object:
    """The line as a raw JSON value, or a string saying why it is not one."""
    try:
        return _raw.decode(line)
    except (msgspec.DecodeError, RecursionError) as exc:
        return f"not valid JSON ({str(exc)[:80]})"


def _is_object(raw: object) -> TypeGuard[msgspec.Raw]:
    return isinstance(raw, msgspec.Raw) and bytes(memoryview(raw)[:1]) == b"{"


def _lookup_event(entry: object) -> tuple[Outcome, Any]:
    """The raw record inside a LookupEvents entry, or why there is none (entries are few and small)."""
    if not _is_object(entry):
        return "not a JSON object", None
    try:
        event = orjson.loads(memoryview(entry)).get("CloudTrailEvent")
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON ({str(exc)[:80]})", None
    if not isinstance(event, str):
        return "LookupEvents entry without a CloudTrailEvent string", None
    raw = _validated(event.encode())
    if isinstance(raw, str):
        return raw, None
    return (raw, _source(raw)) if _is_object(raw) else ("not a JSON object", None)


def _parse(raw: msgspec.Raw | bytes) -> dict:
    """A raw JSON object (already validated by msgspec) as a dict."""
    try:
        return orjson.loads(memoryview(raw))
    except orjson.JSONDecodeError as exc:
        try:
            return _lenient.decode(raw)
        except (msgspec.MsgspecError, RecursionError):
            raise BadRecord(f"not valid JSON ({str(exc)[:80]})") from None


def scan_records(name: str, records: Iterable[object], identity_mode: str = "principal") -> FileScan:
    """`scan_bytes` for records already parsed (an EventBridge event's `detail`): each is evaluated as it is.
    Never written back to JSON first: orjson reads objects nested up to 1,024 levels but writes only about
    254, so a deep record that was read could not be written again."""
    result = FileScan(name)
    for number, record in enumerate(records, 1):
        result.records += 1
        if not isinstance(record, dict):
            result.bad.append(f"record {number}: not a JSON object")
            continue
        _evaluate_record(result, number, record, identity_mode)
    return result


def _evaluate(result: FileScan, number: int, outcome: Outcome, identity_mode: str) -> None:
    if isinstance(outcome, str):
        result.bad.append(f"record {number}: {outcome}")
        return
    try:
        record = _parse(outcome)
    except BadRecord as exc:
        result.bad.append(f"record {number}: {exc}")
        return
    _evaluate_record(result, number, record, identity_mode)


def _evaluate_record(result: FileScan, number: int, record: dict, identity_mode: str) -> None:
    try:
        if not rule.matches(record):
            return
        if not rule.is_excluded_caller(record):
            result.calls.append(to_call(record, identity_mode))
        elif (seen := to_sighting(record)) is not None:  # AWS's own broken records are not worth a count
            result.sightings.append(seen)
    except BadRecord as exc:
        result.bad.append(f"record {number}: {exc}")
