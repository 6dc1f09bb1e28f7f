"""Memory stays bounded whatever a file holds: files are read as streams, whole up to a limit and past it
as JSON Lines a block at a time, with the same answers as reading them whole; a JSON document over the
limit is named, not read; a 300 MB JSON Lines file goes through `sesguard scan` in well under 150 MB."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detection.sources import files
from detection.sources.files import decompress, scan_bytes, scan_file
from tests.support import records as r
from tests.support.trail_strategies import ELEMENTS, generated_record, write_file

pytestmark = [pytest.mark.processes, pytest.mark.slow]


def streamed(data: bytes, **kw) -> files.FileScan:
    return scan_file("file", io.BytesIO(data).read, **kw)


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of a few bytes, a document limit of a few lines and a line limit that some records pass:
    every boundary case on small inputs."""
    monkeypatch.setattr(files, "READ_BLOCK", 5)
    monkeypatch.setattr(files, "INFLATE_BLOCK", 7)
    monkeypatch.setattr(files, "WHOLE_FILE_LIMIT", 4000)
    monkeypatch.setattr(files, "LINE_LIMIT", 900)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(head=generated_record(), values=st.lists(ELEMENTS, min_size=2, max_size=10), seed=st.integers(0, 2**32),
       gzipped=st.booleans(), blank=st.booleans(), cut=st.none() | st.floats(0.3, 0.99))
def test_json_lines_past_the_limit_give_what_reading_them_whole_gives(tiny_blocks, head, values, seed, gzipped,
                                                                     blank, cut):
    import random

    data = write_file([head, *values], "lines", random.Random(seed), indent=False)
    if blank:
        data = b"\n \n" + data.replace(b"\n", b"\n\n", 2)
    if gzipped:
        data = gzip.compress(data, mtime=0)
    if cut is not None:
        data = data[: max(1, int(len(data) * cut))]
    stream = streamed(data)
    if stream.error and stream.error.startswith("too large to read whole"):  # its first line alone is past it
        assert len(decompress(data)[0].lstrip().split(b"\n", 1)[0]) > files.WHOLE_FILE_LIMIT
        return
    assert stream == scan_bytes("file", data)
    assert streamed(data, precheck=False) == scan_bytes("file", data, precheck=False)


@pytest.mark.parametrize("layout", ["log", "array", "lookup"])
def test_a_json_document_past_the_limit_is_named_not_read(tiny_blocks, layout):
    document = r.encode([r.record(r.iam_user("x"))] * 12, layout)
    assert len(document) > files.WHOLE_FILE_LIMIT
    assert scan_bytes("file", document).records == 12  # in memory already: read whole
    scanned = streamed(gzip.compress(document))
    assert scanned.records == 0 and scanned.calls == []
    assert scanned.error.startswith("too large to read whole (a JSON document over")


def test_files_under_the_limit_are_read_whole_in_any_layout():
    trail = r.realistic_trail()
    for layout in r.FORMATS:
        data = gzip.compress(r.encode(trail, layout))
        assert streamed(data) == scan_bytes("file", data) and streamed(data).records == len(trail)


def test_every_gzip_member_is_read_and_what_follows_the_last_is_judged():
    one, two = b'{"a":1}\n', b'{"b":2}\n'
    assert decompress(gzip.compress(one) + gzip.compress(two)) == (one + two, None)
    assert decompress(gzip.compress(one) + b"\0" * 600) == (one, None)  # padding
    assert decompress(gzip.compress(one) + b"junk") == (one, "unexpected bytes after the gzip stream")
    assert decompress(gzip.compress(one)[:-3]) == (one, "gzip stream is truncated")
    assert decompress(b"\x1f\x8b\x08\x00\0\0\0\0\0\x03") == (b"", "gzip stream is truncated")  # a header alone
    text, error = decompress(b"\x1f\x8b\x08\x00\0\0\0\0\0\x03\xff\xff\xff")  # block type 3: no such thing
    assert text == b"" and error.startswith("not a readable gzip stream")


def test_a_read_failing_part_way_names_the_file(tmp_path):
    from detection.sources.inputs import Input, scan_input

    class Failing(Input):
        def open(self):
            stream = io.BytesIO(gzip.compress(b'{"a":1}\n' * 100_000))

            class Broken:
                def read(self, size):
                    if stream.tell() > 1000:
                        raise ConnectionResetError("connection reset by peer")
                    return stream.read(size)

                def close(self):
                    pass

            return Broken()

    scanned = scan_input(Failing(str(tmp_path / "remote.json.gz")), "principal")
    assert scanned.error == "cannot read: connection reset by peer"


def test_a_300_mb_json_lines_file_is_scanned_in_bounded_memory(tmp_path):
    calls = [r.record(r.iam_user(f"user{n}"), "ListIdentities", time=r.at(days=n), event_id=f"big-{n}")
             for n in range(5)]
    noise = r.encode([r.record(r.assumed_role("app", "s"), "GetObject", source="s3.amazonaws.com")], "lines")
    repeat = 300 * 2**20 // len(noise) // len(calls)
    path = tmp_path / "export.json.gz"
    with open(path, "wb") as out:  # written a block at a time: the test holds no 300 MB either
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        for call in calls:
            out.write(packer.compress(noise * repeat + r.encode([call], "lines")))
        out.write(packer.flush())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESGUARD_", "DATABASE_URL", "AWS_"))}
    # The command line's own main, then its peak resident set as the kernel kept it for this process
    # (VmHWM: rusage would count the pages of the test process it was forked from).
    run = ("import sys; from bot.cli.commands import main; status = main(sys.argv[1:]); "
           "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr); "
           "sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", run, "scan", "--json", str(path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**env, "PYTHONPATH": str(r.REPO)})
    assert done.returncode == 0, done.stderr
    assert f"scanned {len(calls) * (repeat + 1)} records in 1 files: 5 matched" in done.stderr
    peak_mb = int(done.stderr.split("VmHWM:")[1].split()[0]) / 1024
    assert peak_mb < 150, f"peak RSS {peak_mb:.0f} MB"


# ── long lines ───────────────────────────────────────────────────────────────────────────────────────


def test_a_line_that_spans_blocks_is_held_as_it_came_and_joined_once():
    """Linear time, as a structural property: while a line streams in, the splitter holds the very blocks
    it was given (no byte copied), and the line is joined once, at its end. (Re-joining what was held at
    every block copied a line of n blocks n times: a 1 GB line took 174 s.)"""
    blocks = [bytes([ord("a") + n]) * 1000 for n in range(20)]
    splitter = files.LineSplitter()
    assert splitter.feed(b'{"first": 1}\n' + blocks[0]) == [b'{"first": 1}']
    for count, block in enumerate(blocks[1:], 2):
        assert splitter.feed(block) == []
        assert len(splitter.pieces) == count
        assert all(held is given for held, given in zip(splitter.pieces[1:], blocks[1:]))
    assert splitter.feed(b"}\n{") == [b"".join(blocks) + b"}"]
    assert splitter.end() == [b"{"]


def test_a_line_past_the_limit_is_let_go_as_it_streams_in():
    splitter = files.LineSplitter()
    block = b"x" * 2**20
    for _ in range(3 * files.LINE_LIMIT // len(block)):  # a line three times the limit
        assert splitter.feed(block) == []
        assert sum(map(len, splitter.pieces)) <= files.LINE_LIMIT
    assert splitter.feed(b"x\n  \t" + b" " * files.LINE_LIMIT) == [None]
    assert splitter.feed(b"\n{}") == [b""]  # past the limit, but blank: just a blank line
    assert splitter.end() == [b"{}"]


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("reader", ["streamed", "whole"])
def test_a_json_lines_line_past_the_limit_is_a_bad_record_and_the_others_count(gzipped, reader):
    alice, mallory = r.record(r.iam_user("alice"), time=r.at()), r.record(r.iam_user("mallory"), time=r.at(days=10))
    huge = r.record(r.iam_user("huge"), time=r.at(days=10))
    huge["requestParameters"] = {"padding": "x" * files.LINE_LIMIT}
    data = r.encode([alice, huge, mallory], "lines")
    data = gzip.compress(data, compresslevel=1) if gzipped else data
    scanned = streamed(data) if reader == "streamed" else scan_bytes("file", data)
    assert scanned.error is None and scanned.records == 3
    assert scanned.bad == [f"record 2: a line over {files.LINE_LIMIT // 2**20} MB (no CloudTrail record is that large)"]
    assert [call.identity.rsplit("/", 1)[-1] for call in scanned.calls] == ["alice", "mallory"]
