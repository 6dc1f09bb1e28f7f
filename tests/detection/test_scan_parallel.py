"""Reading on every core: `--jobs N` gives exactly what one process gives, file by file and in order;
files are listed lazily and read a bounded way ahead; folders and S3 prefixes are walked completely,
once, in sorted order; a listing that fails part-way is named and the run goes on."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from detection.sources import inputs
from detection.sources.inputs import FILES_PER_TASK, TASKS_IN_FLIGHT_PER_JOB, Input, InputError, expand, scan_inputs
from tests.support import records as r
from tests.support.records import FIXTURES, SAMPLES

DEMO_TRAIL = Path(__file__).resolve().parents[2] / "bot" / "cli" / "demo" / "trail"


@pytest.fixture
def archive(tmp_path) -> Path:
    """Every fixture, the example trail, the realistic trail in every layout, and broken files, nested."""
    root = tmp_path / "archive"
    shutil.copytree(DEMO_TRAIL, root / "examples")
    shutil.copytree(FIXTURES, root / "fixtures")
    shutil.copytree(SAMPLES, root / "samples")
    trail = r.realistic_trail()
    for index, layout in enumerate(r.FORMATS * 3):
        r.write(root / "trail" / f"{index % 4}" / f"part-{index}.json", trail[index::12], layout,
                gzipped=index % 2 == 1)
    (root / "broken").mkdir()
    (root / "broken" / "cut.json.gz").write_bytes(gzip.compress(r.encode(trail, "log"))[:300])
    (root / "broken" / "text.json").write_bytes(b"hello")
    (root / "broken" / "empty.json").write_bytes(b"")
    return root


def outcome(scanned) -> tuple:
    return scanned.name, scanned.records, scanned.calls, scanned.bad, scanned.error


def test_two_workers_give_exactly_what_one_process_gives_file_by_file(archive):
    alone = [outcome(scanned) for scanned in scan_inputs(expand([str(archive)]), "principal", jobs=1)]
    shared = [outcome(scanned) for scanned in scan_inputs(expand([str(archive)]), "principal", jobs=2)]
    assert shared == alone
    assert len(alone) > 40 and sum(len(calls) for _, _, calls, _, _ in alone) > 20
    assert {name.rsplit("/", 1)[1] for name, *_, error in alone if error} == {"cut.json.gz", "text.json", "empty.json"}
    assert any(bad for *_, bad, _ in alone)


def test_files_are_listed_in_sorted_path_order_each_once(tmp_path):
    """SPEC §2: folders are walked for *.json, *.jsonl, *.ndjson, each optionally .gz; nothing else."""
    for name in ["b/z.json", "a.json", "a/b.json.gz", "a b/c.json", "a-b.json", "a/a/a.json", "B.json", "a/notes.txt",
                 "a/x.json.gzip", "a/c.jsonl", "a/d.ndjson.gz", "z.NDJSON", "a/e.jsonl.txt", "a/f.gz",
                 "a/g.ndjson.zip"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"{}")
    os.symlink(tmp_path / "a", tmp_path / "a" / "a" / "loop")  # a folder linked back into its parent
    listed = [source.name for source in expand([str(tmp_path)])]
    assert listed == [str(tmp_path / n) for n in ["B.json", "a/a/a.json", "a/b.json.gz", "a/c.jsonl", "a/d.ndjson.gz",
                                                  "a b/c.json", "a-b.json", "a.json", "b/z.json", "z.NDJSON"]]


def test_a_file_named_explicitly_is_read_whatever_its_name_and_targets_are_checked_up_front(tmp_path):
    odd = tmp_path / "trail.log"
    odd.write_bytes(r.encode([r.record(r.iam_user("x"))], "lines"))
    assert [source.name for source in expand([str(odd)])] == [str(odd)]
    with pytest.raises(InputError, match="missing"):
        expand([str(odd), str(tmp_path / "missing")])


def test_inputs_are_pulled_lazily_and_a_bounded_way_ahead(tmp_path):
    data = r.encode([r.record(r.iam_user("x"))], "log")
    (tmp_path / "one.json").write_bytes(data)
    pulled = []

    def endless():
        while True:  # an archive too large to list: only what is being read may be pulled
            pulled.append(1)
            yield Input(str(tmp_path / "one.json"))

    jobs = 2
    results = scan_inputs(endless(), "principal", jobs=jobs)
    for _ in range(50):
        assert next(results).records == 1
    read_ahead = jobs * TASKS_IN_FLIGHT_PER_JOB * FILES_PER_TASK
    assert 50 <= len(pulled) <= 50 + read_ahead + FILES_PER_TASK
    results.close()


def test_one_file_is_read_in_process_and_a_missing_one_is_named(tmp_path, monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started for a single file")

    monkeypatch.setattr(inputs, "ProcessPoolExecutor", no_pool)
    scanned = list(scan_inputs([Input(str(tmp_path / "gone.json"))], "principal", jobs=4))
    assert len(scanned) == 1 and scanned[0].error.startswith("cannot read: ")


def test_the_default_job_count_is_the_cores_this_process_may_use():
    assert inputs.default_jobs() == len(os.sched_getaffinity(0))


# ── S3 ───────────────────────────────────────────────────────────────────────────────────────────────

@pytest.fixture
def moto_s3(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(name, value)
    inputs.s3_client.cache_clear()
    yield boto3.client("s3")
    inputs.s3_client.cache_clear()
    server.stop()


@pytest.mark.parametrize("threaded", [False, True], ids=["forked workers", "spawned workers"])
def test_an_s3_prefix_is_listed_page_by_page_and_read_by_workers(moto_s3, monkeypatch, threaded):
    """With another thread running (a host application's), workers are fresh interpreters: they must
    still see this process's environment as it is now (the S3 endpoint set by this test)."""
    monkeypatch.setattr(inputs, "S3_PAGE_SIZE", 3)
    if threaded:
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait, daemon=True)
        thread.start()
    moto_s3.create_bucket(Bucket="trail")
    trail = r.realistic_trail()
    for index in range(10):
        moto_s3.put_object(Bucket="trail", Key=f"AWSLogs/1/part-{index:02d}.json.gz",
                      Body=gzip.compress(r.encode(trail[index::10], "log")))
    moto_s3.put_object(Bucket="trail", Key="AWSLogs/1/digest.txt", Body=b"not a log")
    moto_s3.put_object(Bucket="trail", Key="other/part.json", Body=b"{}")
    try:
        found = list(scan_inputs(expand(["s3://trail/AWSLogs/"]), "principal", jobs=2))
    finally:
        if threaded:
            stop.set()
    assert [scanned.name for scanned in found] == [f"s3://trail/AWSLogs/1/part-{i:02d}.json.gz" for i in range(10)]
    assert [scanned.error for scanned in found] == [None] * 10
    assert sum(scanned.records for scanned in found) == len(trail)


def test_an_s3_listing_that_fails_part_way_is_named_and_what_was_listed_is_read(moto_s3, monkeypatch):
    monkeypatch.setattr(inputs, "S3_PAGE_SIZE", 2)
    moto_s3.create_bucket(Bucket="vanishing")
    for index in range(5):
        moto_s3.put_object(Bucket="vanishing", Key=f"logs/{index}.json",
                           Body=r.encode([r.record(r.iam_user("x"))], "log"))
    listed = iter(expand(["s3://vanishing/logs/"]))  # the first page is fetched to check the target
    first = next(listed)
    for index in range(5):
        moto_s3.delete_object(Bucket="vanishing", Key=f"logs/{index}.json")
    moto_s3.delete_bucket(Bucket="vanishing")
    rest = list(listed)
    assert [first.name, rest[0].name] == ["s3://vanishing/logs/0.json", "s3://vanishing/logs/1.json"]
    failed = list(scan_inputs(rest[1:], "principal"))
    assert [scanned.name for scanned in failed] == ["s3://vanishing/logs/"]
    assert failed[0].error.startswith("listing stopped: ") and "NoSuchBucket" in failed[0].error


def test_an_unreachable_bucket_is_a_usage_error_before_anything_is_read(moto_s3):
    with pytest.raises(InputError, match="s3://no-such-bucket/x"):
        expand(["s3://no-such-bucket/x"])
