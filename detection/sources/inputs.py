"""What `scan` reads: local files and folders, and `s3://bucket/prefix` (SPEC §2).

Inputs are plain picklable descriptions, so that files are read and scanned in worker processes
(`--jobs`) and only the matching calls travel back.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from detection.sources.files import FileScan, scan_bytes

LOG_SUFFIXES = (".json", ".json.gz")


class InputError(ValueError):
    """A path or URL given on the command line that cannot be read at all."""


@dataclass(frozen=True)
class Input:
    name: str  # a local path, or s3://bucket/key
    bucket: str | None = None
    key: str | None = None

    def read(self) -> bytes:
        if self.bucket is None:
            return Path(self.name).read_bytes()
        return s3_client().get_object(Bucket=self.bucket, Key=self.key)["Body"].read()


@lru_cache(maxsize=1)
def s3_client():
    import boto3  # the standard credential chain and AWS_ENDPOINT_URL_S3 apply

    return boto3.client("s3")


def is_log_file(name: str) -> bool:
    return name.endswith(LOG_SUFFIXES)


def expand(targets: list[str]) -> list[Input]:
    """Every file to read, in a stable order; InputError names the first target that cannot be read."""
    found: list[Input] = []
    for target in targets:
        if target.startswith("s3://"):
            found.extend(_s3_inputs(target))
        elif os.path.isdir(target):
            found.extend(
                Input(str(path)) for path in sorted(Path(target).rglob("*"))
                if path.is_file() and is_log_file(path.name)
            )
        elif os.path.isfile(target) and os.access(target, os.R_OK):
            found.append(Input(target))  # named explicitly: read whatever its name
        else:
            raise InputError(f"cannot read {target}: no such file or folder, or not readable")
    return found


def _s3_inputs(url: str) -> list[Input]:
    parsed = urlparse(url)
    if not parsed.netloc:
        raise InputError(f"cannot read {url}: no bucket named")
    prefix = parsed.path.lstrip("/")
    try:
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix)
        return [
            Input(f"s3://{parsed.netloc}/{obj['Key']}", parsed.netloc, obj["Key"])
            for page in pages for obj in page.get("Contents", []) if is_log_file(obj["Key"])
        ]
    except Exception as exc:  # botocore errors, missing credentials, unreachable endpoint
        raise InputError(f"cannot list {url}: {exc}") from exc


def scan_input(source: Input, identity_mode: str) -> FileScan:
    try:
        data = source.read()
    except Exception as exc:  # an unreadable file is skipped and named, never fatal
        return FileScan(source.name, error=f"cannot read: {exc}")
    return scan_bytes(source.name, data, identity_mode)


def scan_inputs(inputs: list[Input], identity_mode: str, jobs: int = 1) -> Iterator[FileScan]:
    """Scan files, in worker processes when `jobs` > 1; results come back in input order."""
    work = partial(scan_input, identity_mode=identity_mode)
    if jobs <= 1 or len(inputs) <= 1:
        yield from map(work, inputs)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(work, inputs, chunksize=max(1, min(64, len(inputs) // (jobs * 8))))
