"""What `scan` reads: local files and folders, and `s3://bucket/prefix` (SPEC §2), and reading it on
every core.

Targets are checked up front (an unreadable one is a usage error), but the files under them are listed
lazily, so that an archive of millions of files costs no memory to list. Inputs are plain picklable
descriptions: worker processes read and scan them (`--jobs`), and only what each file contributed, its
counts and its matching calls, travels back.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import BinaryIO
from urllib.parse import urlparse

from detection.sources.files import FileScan, scan_file

# What a folder or an S3 prefix is walked for (SPEC §2): CloudTrail's own `.json`, and the usual names of
# JSON Lines exports (CloudTrail Lake, SIEMs), each optionally gzipped. A file named explicitly is read
# whatever its name.
LOG_SUFFIXES = tuple(f"{name}{gz}" for name in (".json", ".jsonl", ".ndjson") for gz in ("", ".gz"))
S3_PAGE_SIZE = 1000  # keys a listing request returns (S3's own maximum)
# Files handed to a worker at once: enough to make the round trip negligible next to reading them,
# few enough that the last batches still spread over every worker.
FILES_PER_TASK = 4
TASKS_IN_FLIGHT_PER_JOB = 4  # how far the pool reads ahead: bounded, so memory is too
# glibc gives each freed multi-megabyte buffer back to the kernel, so every file's inflated text would be
# page-faulted in afresh (about a third of the time spent inflating); freed memory up to this size is kept
# for reuse instead.
KEEP_FREED_BYTES = 32 * 1024 * 1024
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt() parameters, from glibc's malloc.h


class InputError(ValueError):
    """A path or URL given on the command line that cannot be read at all."""


def default_jobs() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Input:
    name: str  # a local path, or s3://bucket/key
    bucket: str | None = None
    key: str | None = None

    def open(self) -> BinaryIO:
        if self.bucket is None:
            return open(self.name, "rb")
        return s3_client().get_object(Bucket=self.bucket, Key=self.key)["Body"]


@dataclass(frozen=True)
class ListingFailed(Input):
    """A folder or S3 page that could not be listed part-way: named as a skipped file, the run goes on."""

    reason: str = ""


@lru_cache(maxsize=1)
def s3_client():
    import boto3  # the standard credential chain and AWS_ENDPOINT_URL_S3 apply; imported only for s3://

    return boto3.client("s3")


def is_log_file(name: str) -> bool:
    return name.lower().endswith(LOG_SUFFIXES)


class Inputs:
    """Every file under the targets, in a stable order (sorted path by path), listed as it is read."""

    def __init__(self, targets: list[str], first_pages: dict[str, dict]):
        self.targets = targets
        self._first_pages = first_pages  # the S3 listing page fetched to check the target
        self._empty: set[str] = set()

    def __iter__(self) -> Iterator[Input]:
        for target in self.targets:
            if target.startswith("s3://"):
                found = yield from _counted(_s3_objects(target, self._first_pages.get(target)))
            elif os.path.isdir(target):
                found = yield from _counted(_walk(target, set()))
            else:
                yield Input(target)  # named explicitly: read whatever its name
                continue
            if not found:
                self._empty.add(target)

    def empty_folders(self) -> list[str]:
        """The folder and S3 targets that held no log file, once the inputs have been read."""
        return [target for target in self.targets if target in self._empty]

    def count_local(self) -> int | None:
        """How many files there are, when every target is local (for a progress bar); None otherwise."""
        if any(target.startswith("s3://") for target in self.targets):
            return None
        return sum(1 for _ in self)


def _counted(inputs: Iterator[Input]) -> Generator[Input, None, int]:
    """`yield from` these inputs; returns how many log files there were (listing failures aside)."""
    found = 0
    for source in inputs:
        found += not isinstance(source, ListingFailed)
        yield source
    return found


def expand(targets: list[str]) -> Inputs:
    """The files to read; InputError names the first target that cannot be read."""
    first_pages = {}
    for target in targets:
        if target.startswith("s3://"):
            first_pages[target] = _first_s3_page(target)
        elif os.path.isdir(target):
            if not os.access(target, os.R_OK | os.X_OK):
                raise InputError(f"cannot read {target}: folder not readable")
        elif not (os.path.isfile(target) and os.access(target, os.R_OK)):
            raise InputError(f"cannot read {target}: no such file or folder, or not readable")
    return Inputs(list(targets), first_pages)


def _walk(folder: str, seen: set[tuple[int, int]]) -> Iterator[Input]:
    """Log files below a folder, depth first, each folder's entries by name (the order of sorted paths);
    a folder linked back into itself is read once."""
    try:
        identity = os.stat(folder)
        if (identity.st_dev, identity.st_ino) in seen:
            return
        seen.add((identity.st_dev, identity.st_ino))
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        yield ListingFailed(folder, reason=f"cannot list folder: {exc.strerror or exc}")
        return
    for entry in entries:
        try:
            is_folder = entry.is_dir()
            is_file = not is_folder and entry.is_file()
        except OSError:
            continue  # vanished while listing
        if is_folder:
            yield from _walk(entry.path, seen)
        elif is_file and is_log_file(entry.name):
            yield Input(entry.path)


def _bucket_and_prefix(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if not parsed.netloc:
        raise InputError(f"cannot read {url}: no bucket named")
    return parsed.netloc, parsed.path.lstrip("/")


def _first_s3_page(url: str) -> dict:
    bucket, prefix = _bucket_and_prefix(url)
    try:
        return s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=S3_PAGE_SIZE)
    except Exception as exc:  # botocore errors, missing credentials, unreachable endpoint
        raise InputError(f"cannot list {url}: {exc}") from exc


def _s3_objects(url: str, page: dict | None) -> Iterator[Input]:
    bucket, prefix = _bucket_and_prefix(url)
    while True:
        if page is None:
            page = _first_s3_page(url)
        for obj in page.get("Contents", []):
            if is_log_file(obj["Key"]):
                yield Input(f"s3://{bucket}/{obj['Key']}", bucket, obj["Key"])
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        try:
            page = s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=S3_PAGE_SIZE,
                                               ContinuationToken=token)
        except Exception as exc:  # the files listed so far are scanned; the rest is named as missing
            yield ListingFailed(url, reason=f"listing stopped: {exc}")
            return


class _ReadFailed(Exception):
    pass


def scan_input(source: Input, identity_mode: str) -> FileScan:
    """One file, read as a stream (memory stays bounded however large it is); a file that cannot be
    opened or read to the end is skipped and named, never fatal."""
    if isinstance(source, ListingFailed):
        return FileScan(source.name, error=source.reason)
    try:
        stream = source.open()
    except Exception as exc:  # missing, unreadable, S3 refusing: botocore raises its own types
        return FileScan(source.name, error=f"cannot read: {exc}")

    def read(size: int) -> bytes:
        try:
            return stream.read(size)
        except Exception as exc:  # a disk or network failure part-way (botocore's are not OSErrors)
            raise _ReadFailed(exc) from exc

    try:
        return scan_file(source.name, read, identity_mode)
    except _ReadFailed as failure:
        return FileScan(source.name, error=f"cannot read: {failure.__cause__}")
    finally:
        stream.close()


def _scan_batch(batch: list[Input], identity_mode: str) -> list[FileScan]:
    return [scan_input(source, identity_mode) for source in batch]


def keep_freed_memory() -> None:
    """See KEEP_FREED_BYTES. A no-op where the C library has no glibc mallopt()."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, 2 * KEEP_FREED_BYTES)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def scan_inputs(inputs: Iterable[Input], identity_mode: str, jobs: int = 1) -> Iterator[FileScan]:
    """Scan files, in `jobs` worker processes when there is more than one file; results come back in
    input order, and no more than a few batches a worker are ever read ahead."""
    files = iter(inputs)
    first = list(islice(files, 2))
    if jobs <= 1 or len(first) <= 1:
        keep_freed_memory()
        for source in [*first, *files]:
            yield scan_input(source, identity_mode)
        return
    batches = _batches([*first], files)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=_process_context(), initializer=keep_freed_memory) as pool:
        pending: deque[Future] = deque()
        for batch in batches:
            pending.append(pool.submit(_scan_batch, batch, identity_mode))
            if len(pending) >= jobs * TASKS_IN_FLIGHT_PER_JOB:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _batches(first: list[Input], rest: Iterator[Input]) -> Iterator[list[Input]]:
    batch = first
    for source in rest:
        batch.append(source)
        if len(batch) == FILES_PER_TASK:
            yield batch
            batch = []
    if batch:
        yield batch


def _process_context():
    """fork where it is safe (no other thread that a child could inherit mid-way through holding a
    lock): workers start at once, with everything already imported. Elsewhere a fresh interpreter per
    worker, started from this process as it is now (its environment: AWS endpoints, credentials)."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")
