"""CloudTrail log files in S3 (`SESGUARD_SOURCE=s3://bucket/prefix`): the worker's other source (SPEC §3).

A trail delivers `AWSLogs/[o-id/]<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz` under the prefix.
Accounts and regions are the ones found in the bucket (an organisation trail brings every member
account). A read lists the day folders from the day before its start's day to its end's day and reads
each object not read before: the keys read are remembered in `s3_objects` once their calls are stored,
so each file is read once. The day before is listed too because a file named for the last minutes of a
day can land in that day's folder after the watermark has crossed midnight (CloudTrail delivers late);
the keys remembered make the extra listing cost a ListObjectsV2 page, never a second read.
Files are streamed through the same reader as `sesguard scan`, with its limits: a document
over 256 MB inflated is named and skipped, a JSON Lines line over 16 MB is a bad record, and a gzip bomb
costs the memory of those limits, never its inflated size.
No endpoint is named here: boto3 honours AWS_ENDPOINT_URL_S3.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, timedelta
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from sqlmodel import Field, SQLModel, col, select

from detection.sources.files import FileScan, scan_file
from detection.sources.inputs import is_log_file
from detection.sources.pulled import (
    AccountRegion,
    BetweenRequests,
    Pulled,
    SourceError,
    describe_aws_error,
)
from detection.store import Store, utc_time, utcnow

_ACCOUNT = re.compile(r"\d{12}")
_ORGANISATION = re.compile(r"o-[a-z0-9]{10,32}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
# The day folders before a read's start's day that are listed again, for files delivered late into them.
LATE_DELIVERY_DAYS = timedelta(days=1)


class S3Object(SQLModel, table=True):
    """A CloudTrail log file already read from S3 (each is read once)."""

    __tablename__ = "s3_objects"
    key: str = Field(primary_key=True)
    processed_at: datetime = utc_time(default_factory=utcnow)


class S3TrailSource:
    history: timedelta | None = None  # a bucket keeps what its lifecycle rules keep

    def __init__(self, url: str, store: Store, identity_mode: str = "principal", client=None):
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise SourceError(f"not an s3://bucket/prefix URL: {url[:200]}")
        self.name, self.store, self.identity_mode = url, store, identity_mode
        self.bucket = parsed.netloc
        prefix = parsed.path.strip("/")
        # `s3://bucket/prefix` is the trail's prefix; `…/AWSLogs` is accepted too.
        self.root = f"{prefix}/" if prefix.endswith("AWSLogs") else f"{prefix}/AWSLogs/" if prefix else "AWSLogs/"
        self.client = client or boto3.client("s3")
        self._folders: dict[AccountRegion, list[str]] = {}

    def places(self) -> list[AccountRegion]:
        folders: dict[AccountRegion, list[str]] = {}
        try:
            for account, base in self._accounts():
                for region in self._subfolders(f"{base}CloudTrail/"):
                    if _REGION.fullmatch(region):
                        folders.setdefault(AccountRegion(account, region), []).append(f"{base}CloudTrail/{region}/")
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"cannot list s3://{self.bucket}/{self.root}: {describe_aws_error(exc)}") from exc
        self._folders = folders
        return sorted(folders)

    def pull(self, place: AccountRegion, start: datetime, end: datetime, between: BetweenRequests) -> Pulled:
        """Every log file of the days (start − 1 day)…end (UTC) not read before, scanned."""
        pulled = Pulled()
        try:
            keys = [key for folder in self._folders.get(place, [])
                    for day in _days(start.date() - LATE_DELIVERY_DAYS, end.date())
                    for key in self._log_files(f"{folder}{day:%Y/%m/%d}/", between)]
            for key in self._unread(keys):
                between()
                url = f"s3://{self.bucket}/{key}"
                scanned = self._scan_object(url, key)
                if scanned is None:
                    pulled.bad.append(f"{url}: gone before it could be read")
                    continue
                pulled.add(scanned)
                pulled.read_keys.append(url)
        except (ClientError, BotoCoreError) as exc:
            raise SourceError(f"reading s3://{self.bucket} for {place}: {describe_aws_error(exc)}") from exc
        return pulled

    def _scan_object(self, url: str, key: str) -> FileScan | None:
        """One log file, streamed from S3 into the reader; None when it was deleted after the listing.
        A read that fails part-way raises, as a listing that fails does: the next pass reads it again."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _code(exc) not in ("NoSuchKey", "404"):
                raise
            return None
        with closing(body):
            return scan_file(url, body.read, self.identity_mode)

    def remember(self, pulled: Pulled) -> None:
        """The files whose calls are stored now are never read again."""
        with self.store.session() as session:
            self.store.insert_ignoring_duplicates(session, S3Object, [{"key": url} for url in pulled.read_keys])
            session.commit()

    # ── listing ──────────────────────────────────────────────────────────────────────────────────

    def _accounts(self) -> Iterator[tuple[str, str]]:
        """(account, its folder) directly under AWSLogs/ and under organisation folders."""
        for name in self._subfolders(self.root):
            if _ACCOUNT.fullmatch(name):
                yield name, f"{self.root}{name}/"
            elif _ORGANISATION.fullmatch(name):
                for account in self._subfolders(f"{self.root}{name}/"):
                    if _ACCOUNT.fullmatch(account):
                        yield account, f"{self.root}{name}/{account}/"

    def _subfolders(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
        return [common["Prefix"][len(prefix):].rstrip("/")
                for page in pages for common in page.get("CommonPrefixes", [])]

    def _log_files(self, prefix: str, between: BetweenRequests) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            between()
            yield from (obj["Key"] for obj in page.get("Contents", []) if is_log_file(obj["Key"]))

    def _unread(self, keys: list[str]) -> list[str]:
        urls = {f"s3://{self.bucket}/{key}": key for key in keys}
        read: set[str] = set()
        names = list(urls)
        with self.store.session() as session:
            for start in range(0, len(names), 500):
                batch = names[start:start + 500]
                read.update(session.exec(select(S3Object.key).where(col(S3Object.key).in_(batch))))
        return [key for url, key in urls.items() if url not in read]


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
