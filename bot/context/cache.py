"""Lookups asked once a while, whichever process asks: answers kept an hour, failures a few minutes (so a
permission granted since shows soon), in the store's `context_lookups` table."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col

from bot.context.tables import ContextLookup
from detection.store import Store, utcnow

log = logging.getLogger(__name__)

ANSWER_KEPT = timedelta(hours=1)
FAILURE_KEPT = timedelta(minutes=5)
KEY_LIMIT = 500  # keys hold names from CloudTrail: long ones are cut (the lookup itself refused them already)


class LookupFailed(Exception):
    """A lookup that was denied or failed; the message is the reason shown as "unknown (reason)"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason[:400]


def cached(store: Store, key: str, fetch: Callable[[], dict]) -> dict:
    """`fetch()`'s answer, or the one kept for `key`; LookupFailed (fresh or kept) when it failed."""
    key = key[:KEY_LIMIT]
    now = utcnow()
    with store.session() as session:
        row = session.get(ContextLookup, key)
    if row is not None:
        kept = FAILURE_KEPT if row.error is not None else ANSWER_KEPT
        if now - row.fetched_at < kept:
            if row.error is not None:
                raise LookupFailed(row.error)
            return row.answer or {}
    answer: dict | None = None
    error: str | None = None
    try:
        answer = fetch()
    except LookupFailed as exc:
        error = exc.reason
    _keep(store, key, answer, error)
    if error is not None:
        raise LookupFailed(error)
    return answer or {}


def _keep(store: Store, key: str, answer: dict | None, error: str | None) -> None:
    values = {"answer": answer, "error": error, "fetched_at": utcnow()}
    try:
        with store.session() as session:
            store.insert_ignoring_duplicates(session, ContextLookup, [{"key": key, **values}])
            session.execute(sa.update(ContextLookup).where(col(ContextLookup.key) == key).values(**values))
            session.commit()
    except Exception as exc:  # the answer is had; not keeping it only means asking again next time
        log.warning("cannot keep the lookup %s: %s", key[:100], f"{type(exc).__name__}: {exc}"[:300])

