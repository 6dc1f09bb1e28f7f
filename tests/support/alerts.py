"""Stored signals as the tests read them: each with its alert's post (`bot.alerts.tables.AlertPost`), the Slack
message and outbox state that live beside the signal, not in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from bot.alerts.tables import AlertPost
from detection.store import SignalRow, Store


@dataclass(frozen=True)
class Alert:
    """A signal and its post (None until the notifier first claimed it). The signal's own columns read as
    they are (`alert.identity`); the post's through the properties below, None or 0 while there is no post."""

    signal: SignalRow
    post: AlertPost | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.signal, name)

    @property
    def slack_ts(self) -> str | None:
        return self.post.slack_ts if self.post else None

    @property
    def slack_channel(self) -> str | None:
        return self.post.slack_channel if self.post else None

    @property
    def posted_at(self) -> datetime | None:
        return self.post.posted_at if self.post else None

    @property
    def claimed_by(self) -> str | None:
        return self.post.claimed_by if self.post else None

    @property
    def failures(self) -> int:
        return self.post.failures if self.post else 0

    @property
    def error(self) -> str | None:
        return self.post.error if self.post else None

    @property
    def retry_at(self) -> datetime | None:
        return self.post.retry_at if self.post else None


def alerts(store: Store) -> list[Alert]:
    """Every stored signal with its post, by identity."""
    with store.session() as session:
        rows = session.exec(select(SignalRow, AlertPost)
                            .outerjoin(AlertPost, col(AlertPost.signal_id) == col(SignalRow.signal_id))).all()
    return sorted((Alert(signal, post) for signal, post in rows), key=lambda alert: alert.signal.identity)


def alert(store: Store, signal_id: str) -> Alert:
    """One stored signal with its post."""
    with store.session() as session:
        signal = session.get(SignalRow, signal_id)
        assert signal is not None, f"signal {signal_id} is not stored"
        return Alert(signal, session.get(AlertPost, signal_id))


def set_post(store: Store, signal_id: str, **values: Any) -> None:
    """Store `values` on the signal's post, made first if the notifier never claimed the signal: an alert as
    another process (a crashed worker, an earlier failure) left it."""
    with store.session() as session:
        store.insert_ignoring_duplicates(session, AlertPost, [{"signal_id": signal_id}])
        session.execute(sa.update(AlertPost).where(col(AlertPost.signal_id) == signal_id).values(**values))
        session.commit()
