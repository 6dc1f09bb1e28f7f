"""Ingestion's tables: polling state and health per source, account and region; the queue's figures; a SQL
engine's backfill."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from detection.store import utc_time, utcnow

# (account_id, region) of the row for a source as a whole: listing its accounts and regions.
SOURCE_ROW = ("*", "*")


class PollState(SQLModel, table=True):
    """Per source, account and region: the watermark and the health of polling.

    The row `SOURCE_ROW` (account `*`, region `*`) is the source as a whole: listing its accounts and regions.
    """

    __tablename__ = "poll_state"
    source: str = Field(primary_key=True)  # "lookup" or the s3:// URL
    account_id: str = Field(primary_key=True)
    region: str = Field(primary_key=True)
    watermark: datetime | None = utc_time(default=None, nullable=True)
    backfilled_at: datetime | None = utc_time(default=None, nullable=True)
    last_success_at: datetime | None = utc_time(default=None, nullable=True)
    last_error: str | None = None
    last_error_at: datetime | None = utc_time(default=None, nullable=True)
    consecutive_failures: int = 0
    # Since when a first success is awaited: the place's first listing (the source's: the first time a
    # process looked for it). Health counts a place that never succeeded as failing from this moment on.
    waiting_since: datetime = utc_time(default_factory=utcnow)
    # The source no longer lists this place (a region or role taken out of the settings): kept, with its
    # watermark, in case it comes back, but no longer a place whose silence is a failure.
    retired_at: datetime | None = utc_time(default=None, nullable=True)


class QueueState(SQLModel, table=True):
    """Per SQS queue (SESGUARD_SOURCE=sqs): what the consumers last learned of it, for health and status.

    SQS reports the backlog as queue attributes; the age of the oldest message is a CloudWatch metric
    (ApproximateAgeOfOldestMessage), not an attribute, so the consumer keeps the age of the oldest message
    it received in its latest batch instead: when the consumers fall behind, that is the backlog's age.
    """

    __tablename__ = "queue_state"
    queue_url: str = Field(primary_key=True)
    backlog: int | None = None  # ApproximateNumberOfMessages
    in_flight: int | None = None  # ApproximateNumberOfMessagesNotVisible
    attributes_at: datetime | None = utc_time(default=None, nullable=True)
    oldest_received_seconds: float | None = None  # the oldest message of the latest batch, when received
    received_at: datetime | None = utc_time(default=None, nullable=True)
    unusable: int = 0  # messages left to the redrive policy, since the row was made
    ignored: int = 0  # s3:TestEvent, digest files, other EventBridge events: read and deleted


class EngineBackfill(SQLModel, table=True):
    """A first start's history read from a SQL engine (SESGUARD_BACKFILL_SOURCE=athena://… or lake://…): once done,
    each place's first poll starts from `until` instead of backfilling LookupEvents' 90 days."""

    __tablename__ = "engine_backfills"
    source: str = Field(primary_key=True)  # the athena:// or lake:// URL
    since: datetime = utc_time()
    until: datetime = utc_time()
    finished_at: datetime = utc_time(default_factory=utcnow)
    query_id: str = ""
    calls: int = 0
    bytes_scanned: int = Field(default=0, sa_type=sa.BigInteger)
