"""The sources the worker reads, made from the settings in one place for the poll, the queue's backfill and
the scheduler: LookupEvents (with AWS Organizations), an S3 trail, and SESGUARD_BACKFILL_SOURCE."""

from __future__ import annotations

from bot.config.settings import Settings
from detection.sources.pulled import Source
from detection.store import Store


def make_source(settings: Settings, store: Store) -> Source | None:
    """The source the poll reads; with SESGUARD_SOURCE=sqs, the backfill source (None without one): the
    queue itself is consumed continuously (`bot.worker.ingest.consume`)."""
    if settings.source == "sqs":
        return backfill_source(settings, store)
    if settings.source == "lookup":
        return lookup_source(settings, store)
    return s3_source(settings, store, settings.source)


def lookup_source(settings: Settings, store: Store) -> Source:
    from detection.sources.lookup import Backoff, LookupSource

    return LookupSource(settings.aws_regions, settings.role_arns, store, settings.identity_key,
                        backoff=Backoff(base=settings.retry_seconds),
                        org_role_name=settings.org_role_name, exclude=settings.accounts_exclude)


def s3_source(settings: Settings, store: Store, url: str) -> Source:
    from detection.sources.s3_trail import S3TrailSource

    return S3TrailSource(url, store, settings.identity_key)




def backfill_source(settings: Settings, store: Store) -> Source | None:
    """The Source of SESGUARD_BACKFILL_SOURCE (`lookup` or `s3://bucket/prefix`, as the settings allow with
    the queue); None without one (an account's observation then starts at its first event)."""
    url = settings.backfill_source
    if not url:
        return None
    return lookup_source(settings, store) if url == "lookup" else s3_source(settings, store, url)
