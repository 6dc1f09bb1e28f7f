"""The learning report's outbox (SPEC §8): once an account's learning period is over, one message in the
alert channel lists what was learned silently, exactly once per account.

- Due: the account's start of observation (`scopes`) is more than SESGUARD_LEARNING_DAYS ago, and no
  place of the account still waits for its first backfill (its history is stored before it is reported).
  That holds in the worker after its backfill, and for an account a `scan --db` observed: the worker's
  next look reports it.
- One row per account in `learning_reports` (its primary key): made by whoever sees it due first,
  claimed with one conditional `UPDATE` before it is posted (two workers never both post it), posted with
  message metadata naming the account, and, after an attempt that may have reached Slack, looked for in
  the channel by that metadata before it is posted again (a crash, a lost answer: never twice).
- An account that learned nothing silently gets no message (its row says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from slack_sdk import WebClient
from sqlmodel import Field, SQLModel, col, select

from bot.alerts.notifier import describe
from bot.config.settings import Settings
from bot.desk.learning.blocks import REPORT_EVENT_TYPE, report_message, report_text
from bot.slack.history import find_by_metadata
from bot.slack.pace import channel_pacer
from bot.store.outbox import Outbox, holder_name
from bot.worker.tables import SOURCE_ROW, PollState
from detection.store import LearnedIdentity, Scope, Store, utc_time, utcnow

log = logging.getLogger(__name__)

HISTORY_PAGES = 5


class LearningReport(SQLModel, table=True):
    """The learning report of one account: made once, claimed while it is posted, posted once."""

    __tablename__ = "learning_reports"
    account_id: str = Field(primary_key=True)
    observed_since: datetime = utc_time()
    learning_ended_at: datetime = utc_time()
    created_at: datetime = utc_time(default_factory=utcnow)
    claimed_by: str | None = None
    claimed_until: datetime | None = utc_time(default=None, nullable=True)
    attempts: int = 0
    done_at: datetime | None = utc_time(default=None, nullable=True, index=True)
    identities: int = 0
    slack_channel: str | None = None
    slack_ts: str | None = None


@dataclass
class Reported:
    posted: list[str] = field(default_factory=list)  # accounts
    found: int = 0
    empty: int = 0
    failed: int = 0


def _awaiting_backfill(session, account_id: str) -> bool:
    return session.exec(select(sa.func.count()).select_from(PollState).where(
        PollState.account_id == account_id, PollState.account_id != SOURCE_ROW[0],
        col(PollState.retired_at).is_(None), col(PollState.watermark).is_(None))).one() > 0


def enqueue_ended(store: Store, settings: Settings, now: datetime | None = None) -> None:
    now = now or utcnow()
    learning = timedelta(days=settings.learning_days)
    with store.session() as session:
        reported = select(LearningReport.account_id)
        ended = session.exec(select(Scope).where(Scope.observed_since <= now - learning,
                                                 col(Scope.account_id).not_in(reported))).all()
        rows = [{"account_id": scope.account_id, "observed_since": scope.observed_since,
                 "learning_ended_at": scope.observed_since + learning, "created_at": now, "attempts": 0,
                 "identities": 0} for scope in ended if not _awaiting_backfill(session, scope.account_id)]
        store.insert_ignoring_duplicates(session, LearningReport, rows)
        session.commit()


def learned_in(store: Store, account_id: str) -> list[LearnedIdentity]:
    with store.session() as session:
        return list(session.exec(select(LearnedIdentity).where(LearnedIdentity.account_id == account_id)
                                 .order_by(col(LearnedIdentity.first_seen), col(LearnedIdentity.identity))).all())


def _not_done(now: datetime) -> list:
    return [col(LearningReport.done_at).is_(None)]


REPORTS = Outbox(LearningReport, col(LearningReport.account_id), col(LearningReport.claimed_by),
                 col(LearningReport.claimed_until), col(LearningReport.attempts), _not_done)


def find_posted(client: WebClient, channel: str, report: LearningReport) -> str | None:
    return find_by_metadata(client, channel, report.created_at - timedelta(minutes=5), REPORT_EVENT_TYPE,
                            "account_id", report.account_id, HISTORY_PAGES)


def post_reports(store: Store, settings: Settings, client: WebClient, holder: str | None = None,
                now: datetime | None = None,
                 interval: float | None = None) -> Reported:
    """Make the reports that are due, then post each once. Slack trouble leaves them for the next pass."""
    holder = holder or holder_name()  # a test plays several processes by naming them
    settings.require("SLACK_ALERT_CHANNEL")
    now = now or utcnow()
    enqueue_ended(store, settings, now)
    channel = settings.alert_channel
    paced = channel_pacer(store, channel) if interval is None else channel_pacer(store, channel, interval)
    result = Reported()
    with store.session() as session:
        waiting = session.exec(select(LearningReport.account_id).where(col(LearningReport.done_at).is_(None))
                               .order_by(col(LearningReport.learning_ended_at))).all()
    for account_id in waiting:
        report = REPORTS.claim(store, account_id, holder, now)
        if report is None:
            continue
        learned = learned_in(store, account_id)
        if not learned:
            REPORTS.release(store, account_id, holder, done_at=now, identities=0)
            result.empty += 1
            continue
        try:
            ts = find_posted(client, channel, report) if report.attempts > 1 else None
            found = ts is not None
            if not found:
                paced()
                ts = client.chat_postMessage(
                    channel=channel, text=report_text(account_id, learned),
                    blocks=report_message(account_id, learned, report.observed_since, report.learning_ended_at),
                    metadata={"event_type": REPORT_EVENT_TYPE, "event_payload": {"account_id": account_id}},
                    unfurl_links=False, unfurl_media=False)["ts"]
        except Exception as exc:  # Slack away or refusing: the row waits, its attempt counted
            log.warning("the learning report of %s was not posted (%s); tried again later", account_id, describe(exc))
            REPORTS.release(store, account_id, holder)
            result.failed += 1
            break
        REPORTS.release(store, account_id, holder, done_at=now, identities=len(learned), slack_channel=channel,
                        slack_ts=ts)
        result.found += found
        if not found:
            result.posted.append(account_id)
    return result
