"""Bad input never stops a scan (SPEC §2): bad records and corrupt files are skipped, counted and named on
stderr, the good records around them still count, and the exit status is 0; an input path that cannot
be read at all is a usage error (exit 2)."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import orjson
import pytest

from detection.baseline import Tuning
from detection.scan import scan
from detection.sources.inputs import expand
from tests.support import records as r
from tests.support.records import at, sesguard

pytestmark = pytest.mark.processes

ALICE, MALLORY = r.iam_user("alice"), r.iam_user("mallory")


def baseline_and_attack() -> list[dict]:
    """Alice learned on day 0; Mallory new on day 10: one signal when both are read."""
    return [r.record(ALICE, time=at()), r.record(MALLORY, time=at(days=10))]


def scan_folder(folder: Path):
    return scan(expand([str(folder)]), Tuning())


def identities(signals) -> list[str]:
    return [s.identity for s in signals]


# ── bad records ──────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("layout", r.FORMATS)
def test_non_object_records_are_skipped_and_counted(tmp_path, layout):
    junk = [1, "GetSendQuota", None, ["ses.amazonaws.com"], True]
    if layout == "lookup":
        body = {"Events": [{"CloudTrailEvent": orjson.dumps(rec).decode()} for rec in baseline_and_attack()]
                + [{"CloudTrailEvent": orjson.dumps(j).decode()} for j in junk] + junk}
        (tmp_path / "page.json").write_bytes(orjson.dumps(body))
        bad = 2 * len(junk)
    elif layout == "lines":
        (tmp_path / "trail.json").write_bytes(r.encode(baseline_and_attack(), "lines") + b"\n".join(
            orjson.dumps(j) for j in junk) + b"\n")
        bad = len(junk)
    else:
        data = r.encode(baseline_and_attack(), layout)
        records = orjson.loads(data)
        (records["Records"] if layout == "log" else records).extend(junk)
        (tmp_path / "trail.json").write_bytes(orjson.dumps(records))
        bad = len(junk)
    signals, summary = scan_folder(tmp_path)
    assert identities(signals) == [MALLORY["arn"]]
    assert (summary.records, summary.matched, len(summary.bad_records)) == (2 + bad, 2, bad)
    assert summary.corrupt_files == []


def test_matching_records_without_a_usable_identity_are_skipped_and_counted(tmp_path):
    nobody = [r.record({"type": "IAMUser", "principalId": "AIDAX"}, time=at(days=11)),
              r.record({"type": "AWSAccount", "accountId": r.OTHER_ACCOUNT}, time=at(days=11)),
              {**r.record(MALLORY, time=at(days=11)), "userIdentity": None},
              {k: v for k, v in r.record(MALLORY, time=at(days=11)).items() if k != "userIdentity"}]
    r.write(tmp_path / "trail.json", baseline_and_attack() + nobody)
    signals, summary = scan_folder(tmp_path)
    assert identities(signals) == [MALLORY["arn"]]
    assert (summary.records, summary.matched, len(summary.bad_records)) == (6, 2, 4)
    assert all("identity" in problem or "userIdentity" in problem for problem in summary.bad_records)


@pytest.mark.parametrize("time", ["yesterday", "", None, 1741000000, "2025-02-30T10:00:00Z", "2025-03-13"])
def test_matching_records_with_a_bad_timestamp_are_skipped_and_counted(tmp_path, time):
    late = r.record(r.iam_user("bob"), time=at(days=12))
    late["eventTime"] = time
    r.write(tmp_path / "trail.json", baseline_and_attack() + [late])
    signals, summary = scan_folder(tmp_path)
    assert identities(signals) == [MALLORY["arn"]]  # bob is not a signal: his call cannot be placed in time
    assert (summary.matched, len(summary.bad_records)) == (2, 1)
    assert "record 3: eventTime" in summary.bad_records[0]


# Times no CloudTrail record can carry, each of which once stopped the whole scan with an OverflowError:
# the offset carries the first two past year 1 or 9999; the third is a valid datetime, but the learning
# period after it (the first call of its account) is not.
OUT_OF_RANGE_TIMES = ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "9999-12-31T00:00:00Z"]


def out_of_range_records() -> list[dict]:
    """SES calls at each out-of-range time, in an account of their own: the first of its calls."""
    return [r.record(r.iam_user(f"forger{n}", r.OTHER_ACCOUNT), time=time) for n, time in enumerate(OUT_OF_RANGE_TIMES)]


@pytest.mark.parametrize("time", OUT_OF_RANGE_TIMES + ["2005-12-31T23:59:59Z", "2006-01-01T00:30:00+01:00",
                                                       "2100-01-01T00:00:00Z"])
def test_a_time_outside_what_aws_writes_is_a_bad_record_and_the_scan_goes_on(tmp_path, time):
    forged = r.record(r.iam_user("forger", r.OTHER_ACCOUNT), time=time)
    r.write(tmp_path / "forged.json", [forged])
    r.write(tmp_path / "trail.json", baseline_and_attack())
    signals, summary = scan_folder(tmp_path)
    assert identities(signals) == [MALLORY["arn"]]
    assert (summary.matched, summary.bad_count) == (2, 1)
    assert summary.bad_records == [f"{tmp_path / 'forged.json'}: record 1: eventTime outside 2006–2099 "
                                   f"(forged or damaged): {time!r}"]


@pytest.mark.parametrize("excluded", [False, True])
def test_a_time_in_the_future_is_a_bad_record_and_starts_no_observation(tmp_path, excluded):
    """CloudTrail writes no future times. A record dated 2099-06-01, read first for its account, would have
    started the account's observation there: it would have learned silently until 2099, and carol's real
    enumeration would never have alerted."""
    who = r.trusted_advisor(account=r.OTHER_ACCOUNT) if excluded else r.iam_user("forger", r.OTHER_ACCOUNT)
    r.write(tmp_path / "a-future.json", [r.record(who, time="2099-06-01T00:00:00Z")])
    r.write(tmp_path / "trail.json", baseline_and_attack() + [
        r.record(r.iam_user("dave", r.OTHER_ACCOUNT), time=at()),  # its real observation starts here
        r.record(r.iam_user("carol", r.OTHER_ACCOUNT), time=at(days=20))])
    signals, summary = scan_folder(tmp_path)
    assert sorted(identities(signals)) == sorted([MALLORY["arn"], r.iam_user("carol", r.OTHER_ACCOUNT)["arn"]])
    if not excluded:  # an excluded caller's broken record starts nothing and is not worth a count
        assert summary.bad_records == [f"{tmp_path / 'a-future.json'}: record 1: eventTime in the future "
                                       f"(forged or damaged): '2099-06-01T00:00:00Z'"]


@pytest.mark.parametrize("excluded", [False, True])
def test_a_deep_record_without_an_event_id_is_a_bad_record_and_scan_goes_on(tmp_path, excluded):
    """The substitute eventID hashed the record written back to JSON: orjson reads 1,024 levels and writes about
    254, so `scan` died (exit 1, a traceback) on a record nested 300 levels deep."""
    who = r.trusted_advisor(account=r.OTHER_ACCOUNT) if excluded else r.iam_user("forger", r.OTHER_ACCOUNT)
    deep = r.record(who, time=at(days=10))
    del deep["eventID"]
    deep["requestParameters"] = r.nested(300)
    (tmp_path / "deep.json").write_text(json.dumps({"Records": [deep]}))  # json writes what orjson cannot
    r.write(tmp_path / "trail.json", baseline_and_attack())
    done = sesguard("scan", "--json", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [orjson.loads(line)["identity"] for line in done.stdout.splitlines()] == [MALLORY["arn"]]
    assert "Traceback" not in done.stderr
    if not excluded:
        assert (f"{tmp_path / 'deep.json'}: record 1: no eventID, and nested too deep to derive one from its "
                f"content") in done.stderr


def test_an_excluded_caller_at_an_impossible_time_starts_no_observation(tmp_path):
    """Trusted Advisor dated year 1 would have ended its account's learning two thousand years ago, and
    carol's first call would have alerted."""
    noisy = r.record(r.trusted_advisor(account=r.OTHER_ACCOUNT), time="0001-01-01T00:00:00Z")
    r.write(tmp_path / "trail.json", baseline_and_attack() + [noisy, r.record(r.iam_user("carol", r.OTHER_ACCOUNT))])
    signals, summary = scan_folder(tmp_path)
    assert identities(signals) == [MALLORY["arn"]] and summary.bad_records == []


@pytest.mark.parametrize("field", ["eventID", "userAgent", "awsRegion", "errorCode"])
def test_a_nul_character_is_a_bad_record_never_a_batch_the_store_refuses(tmp_path, store, field):
    """PostgreSQL refuses NUL in text: the whole batch, and with it every signal beside the record, failed."""
    poisoned = {**r.record(r.iam_user("forger"), time=at(days=10)), field: "nul\u0000here"}
    r.write(tmp_path / "trail.json", baseline_and_attack() + [poisoned])
    signals, summary = scan(expand([str(tmp_path)]), Tuning(), store=store)
    assert identities(signals) == [MALLORY["arn"]]
    assert summary.bad_count == 1 and "holds a NUL character" in summary.bad_records[0]


def test_a_bad_record_that_cannot_match_is_not_inspected(tmp_path):
    """Only records that could be SES enumeration are parsed; an EC2 call with a bad time is just a record."""
    other = r.record(ALICE, "DescribeInstances", source="ec2.amazonaws.com", time="garbage")
    r.write(tmp_path / "trail.json", baseline_and_attack() + [other])
    _, summary = scan_folder(tmp_path)
    assert (summary.records, summary.matched, summary.bad_records) == (3, 2, [])


def test_an_excluded_caller_with_a_broken_record_is_not_a_bad_record(tmp_path):
    noisy = r.record(r.trusted_advisor(), time="not a time")
    r.write(tmp_path / "trail.json", baseline_and_attack() + [noisy])
    _, summary = scan_folder(tmp_path)
    assert (summary.records, summary.matched, summary.bad_records) == (3, 2, [])


def test_invalid_json_lines_are_bad_records_and_the_other_lines_count(tmp_path):
    good = r.encode(baseline_and_attack(), "lines").splitlines()
    (tmp_path / "trail.json").write_bytes(b"\n".join([good[0], b'{"eventSource": "ses.amazonaws.com", ', good[1],
                                                      b"\x00\xff", b""]))
    signals, summary = scan_folder(tmp_path)
    assert identities(signals) == [MALLORY["arn"]]
    assert (summary.records, len(summary.bad_records)) == (4, 2)
    assert [p.split(": ")[1] for p in summary.bad_records] == ["record 2", "record 4"]


# ── corrupt files ────────────────────────────────────────────────────────────────────────────────────


def test_a_truncated_gzip_of_json_lines_is_skipped_whole_and_named(tmp_path):
    lost = r.record(r.iam_user("bob"), time=at(days=12))
    # flushed after the complete lines, as a writer that crashed mid-file leaves it; cut inside bob's line
    writer = zlib.compressobj(wbits=31)
    head = writer.compress(r.encode(baseline_and_attack(), "lines")) + writer.flush(zlib.Z_SYNC_FLUSH)
    tail = writer.compress(r.encode([lost], "lines")) + writer.flush()
    (tmp_path / "cut.json.gz").write_bytes(head + tail[: len(tail) // 2])
    signals, summary = scan_folder(tmp_path)
    # SPEC §2: corrupt files are skipped; what a damaged file holds is not half-trusted
    assert signals == []
    assert summary.corrupt_files == [f"{tmp_path / 'cut.json.gz'}: gzip stream is truncated"]
    assert (summary.records, summary.matched, summary.files, summary.bad_records) == (0, 0, 1, [])


def test_a_truncated_gzip_of_a_log_file_yields_no_calls_and_is_named(tmp_path):
    data = gzip.compress(r.encode(baseline_and_attack(), "log"), mtime=0)
    (tmp_path / "cut.json.gz").write_bytes(data[: len(data) // 2])
    r.write(tmp_path / "ok.json", [r.record(ALICE, time=at(days=1))])
    signals, summary = scan_folder(tmp_path)
    assert signals == [] and summary.matched == 1
    assert [p.split(": ", 1)[1] for p in summary.corrupt_files] == ["gzip stream is truncated"]


@pytest.mark.parametrize("name, data", [
    ("not-gzip.json.gz", b"\x1f\x8bthis only starts like gzip"),
    ("garbage.json", b"hello, world"),
    ("garbage.json.gz", gzip.compress(b"\x00\x01binary\xff", mtime=0)),
    ("empty.json", b""),
    ("blank.json.gz", gzip.compress(b"  \n\n", mtime=0)),
    ("cut-plain.json", r.encode([r.record(ALICE)], "log")[:-20]),
    ("wrong-layout.json", b'{"Records": "none"}'),
    ("number.json", b"42"),
])
def test_corrupt_files_are_skipped_and_named_and_the_others_still_count(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    r.write(tmp_path / "trail.json", baseline_and_attack())
    signals, summary = scan_folder(tmp_path)
    assert identities(signals) == [MALLORY["arn"]]
    assert (summary.files, summary.matched) == (2, 2)
    assert [p.split(": ", 1)[0] for p in summary.corrupt_files] == [str(tmp_path / name)]


def test_a_gzipped_file_without_the_gz_suffix_and_a_plain_one_with_it_are_read(tmp_path):
    (tmp_path / "really-gzip.json").write_bytes(gzip.compress(r.encode(baseline_and_attack()[:1], "log")))
    (tmp_path / "really-plain.json.gz").write_bytes(r.encode(baseline_and_attack()[1:], "lines"))
    signals, summary = scan_folder(tmp_path)
    assert identities(signals) == [MALLORY["arn"]]
    assert summary.corrupt_files == [] and summary.bad_records == []


def test_a_utf8_byte_order_mark_is_tolerated(tmp_path):
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + r.encode(baseline_and_attack(), "log"))
    signals, _ = scan_folder(tmp_path)
    assert identities(signals) == [MALLORY["arn"]]


# ── the command line ─────────────────────────────────────────────────────────────────────────────────


def test_the_cli_names_every_bad_record_and_corrupt_file_and_exits_0(tmp_path):
    trail = tmp_path / "trail"
    r.write(trail / "a.json", baseline_and_attack() + [{**r.record(MALLORY), "eventTime": "soon"}, 7])
    (trail / "b.json.gz").write_bytes(b"\x1f\x8b\x08 not really")
    (trail / "c.json").write_bytes(b"not json")
    done = sesguard("scan", "--json", str(trail), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [orjson.loads(line)["identity"] for line in done.stdout.splitlines()] == [MALLORY["arn"]]
    stderr = done.stderr.splitlines()
    assert stderr[-1] == "scanned 4 records in 3 files: 2 matched, 1 signals, 2 bad records skipped"
    assert any(str(trail / "a.json") in line and "record 3" in line and "eventTime" in line for line in stderr)
    assert any(str(trail / "a.json") in line and "record 4" in line and "not a JSON object" in line
               for line in stderr)
    assert any(str(trail / "b.json.gz") in line for line in stderr)
    assert any(str(trail / "c.json") in line for line in stderr)


def test_the_cli_counts_impossible_times_as_bad_records_and_still_alerts(tmp_path):
    r.write(tmp_path / "trail" / "a.json", baseline_and_attack())
    r.write(tmp_path / "trail" / "forged.json", out_of_range_records(), "lines")
    done = sesguard("scan", "--json", str(tmp_path / "trail"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [orjson.loads(line)["identity"] for line in done.stdout.splitlines()] == [MALLORY["arn"]]
    stderr = done.stderr.splitlines()
    assert stderr[-1] == "scanned 5 records in 2 files: 2 matched, 1 signals, 3 bad records skipped"
    assert [line.split(": ", 2)[2] for line in stderr[:-1]] == [
        f"record {n}: eventTime outside 2006–2099 (forged or damaged): {time!r}"
        for n, time in enumerate(OUT_OF_RANGE_TIMES, 1)]


def test_the_cli_exits_2_on_an_input_path_that_cannot_be_read(tmp_path):
    r.write(tmp_path / "ok.json", baseline_and_attack())
    done = sesguard("scan", str(tmp_path / "ok.json"), str(tmp_path / "missing.json"), cwd=tmp_path)
    assert done.returncode == 2
    assert str(tmp_path / "missing.json") in done.stderr
    assert done.stdout == ""
