"""The daily digest (SPEC §8, `SESGUARD_DIGEST_HOUR`): one message a day in the alert channel with the last
day's figures, once across every worker.

The day's digest is due from its hour (UTC) until the end of that day and covers the 24 hours before
that hour. A worker that was away for longer posts the current day's only (the past days' figures are
one `/sesguard stats` away). One row per day in `digests` (its date the key), claimed with one conditional
`UPDATE` before it is posted, posted with message metadata naming the day and looked for in the channel
after an attempt that may have reached Slack: never twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from slack_sdk import WebClient
from sqlmodel import Field, SQLModel, col

from bot.alerts.notifier import describe
from bot.config.settings import Settings
from bot.desk.digest.blocks import DIGEST_EVENT_TYPE, digest_lines
from bot.desk.digest.figures import figures
from bot.slack.blocks import text_blocks
from bot.slack.history import find_by_metadata
from bot.slack.pace import channel_pacer
from bot.store.outbox import Outbox, holder_name
from detection.store import Store, utc_time, utcnow

log = logging.getLogger(__name__)

HISTORY_PAGES = 5


class Digest(SQLModel, table=True):
    __tablename__ = "digests"
    day: date = Field(primary_key=True)
    period_end: datetime = utc_time()
    claimed_by: str | None = None
    claimed_until: datetime | None = utc_time(default=None, nullable=True)
    attempts: int = 0
    posted_at: datetime | None = utc_time(default=None, nullable=True)
    slack_channel: str | None = None
    slack_ts: str | None = None


def due_day(hour: int, now: datetime) -> tuple[date, datetime] | None:
    """(today, the digest's moment) once today's hour has come, else None."""
    moment = datetime.combine(now.date(), time(hour), tzinfo=UTC)
    return (now.date(), moment) if now >= moment else None


def _unposted(now: datetime) -> list:
    return [col(Digest.posted_at).is_(None)]


DIGESTS = Outbox(Digest, col(Digest.day), col(Digest.claimed_by), col(Digest.claimed_until), col(Digest.attempts),
                 _unposted)


def find_posted(client: WebClient, channel: str, digest: Digest) -> str | None:
    return find_by_metadata(client, channel, digest.period_end - timedelta(minutes=5), DIGEST_EVENT_TYPE, "day",
                            digest.day.isoformat(), HISTORY_PAGES)


def post_digest(store: Store, settings: Settings, client: WebClient, holder: str | None = None,
                now: datetime | None = None,
                interval: float | None = None) -> str | None:
    """Today's digest, if due and not posted yet: its ts (None when there was nothing to do)."""
    holder = holder or holder_name()  # a test plays several processes by naming them
    if settings.digest_hour is None:
        return None
    settings.require("SLACK_ALERT_CHANNEL")
    now = now or utcnow()
    due = due_day(settings.digest_hour, now)
    if due is None:
        return None
    day, period_end = due
    with store.session() as session:
        store.insert_ignoring_duplicates(session, Digest, [{"day": day, "period_end": period_end, "attempts": 0}])
        session.commit()
    digest = DIGESTS.claim(store, day, holder, now)
    if digest is None:
        return None
    channel = settings.alert_channel
    try:
        ts = find_posted(client, channel, digest) if digest.attempts > 1 else None
        if ts is None:
            lines = digest_lines(figures(store, 1, now=period_end))
            (channel_pacer(store, channel) if interval is None else channel_pacer(store, channel, interval))()
            ts = client.chat_postMessage(
                channel=channel, text="\n".join(lines)[:3000], blocks=text_blocks(lines),
                metadata={"event_type": DIGEST_EVENT_TYPE, "event_payload": {"day": day.isoformat()}},
                unfurl_links=False, unfurl_media=False)["ts"]
    except Exception as exc:  # Slack away or refusing: tried again on the next look
        log.warning("the digest of %s was not posted (%s); tried again later", day, describe(exc))
        DIGESTS.release(store, day, holder)
        return None
    DIGESTS.release(store, day, holder, posted_at=now, slack_channel=channel, slack_ts=ts)
    return ts
