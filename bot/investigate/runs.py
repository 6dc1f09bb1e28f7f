"""An investigation of an alert, from the request to the summary in its thread (SPEC §6).

The same steps whether a triager clicked Investigate (run on the listener pool, after the ack) or the
worker investigates a new alert by itself, each stored before the next, so that a process that dies
half-way leaves work another finishes once its claim lapses, and nothing is posted twice:

1. `request`: a row per signal and window in `investigations`, `pending`;
2. `carry_out` claims it, reads the identity's activity (LookupEvents, paced) and summarises it;
3. in one transaction the messages are stored (`gathered`) and, when follow-on abuse was found, the
   signal becomes `critical` with its history row — once: a second investigation adds no second escalation;
4. the escalation line (the one channel mention) and the summary go to the alert's thread, each with
   message metadata; an attempt after an interrupted one looks for them in the thread first;
5. the alert is re-rendered in place (the notifier does it later if Slack is away: the signal changed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import col, select

from bot.alerts.message import INVESTIGATED, refresh_alert
from bot.alerts.tables import AlertPost, posted_message
from bot.config.settings import AUTO_INVESTIGATE_OFF, Settings
from bot.investigate import blocks
from bot.investigate.reader import Reader
from bot.investigate.tables import GATHERED, PENDING, POSTED, Investigation
from bot.slack.client import CONNECTION_ERRORS, is_transient
from bot.slack.ids import INVESTIGATION_EVENT_TYPE, Action
from bot.slack.pace import channel_pacer
from bot.store.outbox import Outbox, holder_name
from bot.triage.changes import lock_signal, lock_stored_signal, record, unlock
from bot.triage.states import applies
from detection import subjects
from detection.investigate import Summary, Window, signal_window
from detection.signals import SEVERITIES, Status
from detection.sources.pulled import Interrupted
from detection.store import SignalHistory, SignalRow, Store, get_stored, signal_from_row, utcnow

log = logging.getLogger(__name__)

AUTOMATIC = blocks.AUTOMATIC
# The history row the pager pages on (SPEC §6: a signal becoming critical).
ESCALATED_ACTION = "critical: follow-on abuse"
# Alerts stored longer ago than this are not investigated automatically: turning the feature on must not
# send every alert of the past through LookupEvents at once.
AUTOMATIC_REACH = timedelta(days=1)
SUMMARY, ESCALATION = "summary", "escalation"
# Reads of one investigation before it is given up (each failed on something unexpected, or its process
# died). Posting a stored summary is retried as long as Slack is away, as alerts are.
MAX_ATTEMPTS = 5
THREAD_PAGES = 10


class ClaimLost(Exception):
    """Another process took this investigation over (ours lapsed): stop, it carries on."""


@dataclass
class Requested:
    investigation: Investigation | None  # None: no such signal, or Investigate does not apply to it
    new: bool  # False: the one returned was under way or done already


def request(store: Store, signal_id: str, requested_by: str, hours: float, now: datetime | None = None) -> Requested:
    """A pending investigation of the signal's window, or the one under way (or done for that window)."""
    now = now or utcnow()
    with store.session() as session:
        row = lock_signal(session, signal_id)
        if row is None or not applies(Action.INVESTIGATE, row.status):
            unlock(session)
            return Requested(None, False)
        window = signal_window(row.first_seen, row.last_seen, hours, now)
        earlier = session.exec(
            select(Investigation).where(Investigation.signal_id == signal_id, sa.or_(
                col(Investigation.state) != POSTED,
                sa.and_(col(Investigation.window_start) == window.start, col(Investigation.window_end) == window.end)))
        ).first()
        if earlier is not None:
            unlock(session)
            return Requested(earlier, False)
        investigation = Investigation(signal_id=signal_id, window_start=window.start, window_end=window.end,
                                      requested_by=requested_by, requested_at=now)
        session.add(investigation)
        session.commit()
        return Requested(investigation, True)


def enqueue_automatic(store: Store, settings: Settings, now: datetime | None = None) -> int:
    """Request an investigation of every posted alert at or above SESGUARD_AUTO_INVESTIGATE that has had
    none (clicked or automatic); how many were requested."""
    if settings.auto_investigate == AUTO_INVESTIGATE_OFF:
        return 0
    now = now or utcnow()
    severities = SEVERITIES[SEVERITIES.index(settings.auto_investigate):]
    investigated = sa.exists().where(col(Investigation.signal_id) == col(SignalRow.signal_id))
    with store.session() as session:
        alerts = session.exec(
            select(SignalRow.signal_id).join(AlertPost, col(AlertPost.signal_id) == col(SignalRow.signal_id)).where(
                col(AlertPost.slack_ts).is_not(None), col(SignalRow.severity).in_(severities),
                SignalRow.status != Status.SUPPRESSED.value, SignalRow.created_at >= now - AUTOMATIC_REACH,
                ~investigated)
            .order_by(col(SignalRow.created_at))
        ).all()
    return sum(request(store, signal_id, AUTOMATIC, settings.investigate_hours, now).new for signal_id in alerts)


def _unposted(now: datetime) -> list:
    return [col(Investigation.state) != POSTED]


INVESTIGATIONS = Outbox(Investigation, col(Investigation.id), col(Investigation.claimed_by),
                        col(Investigation.claimed_until), col(Investigation.attempts), _unposted)


def waiting(store: Store, now: datetime | None = None) -> list[int]:
    """Investigations nobody is carrying out: new ones, and those a process left unfinished."""
    now = now or utcnow()
    with store.session() as session:
        ids = session.exec(
            select(Investigation.id).where(*_unposted(now), INVESTIGATIONS.free(now))
            .order_by(col(Investigation.requested_at), col(Investigation.id))
        ).all()
    return [investigation_id for investigation_id in ids if investigation_id is not None]  # a key: never NULL


class _Claim:
    """This process's claim on one investigation, renewed while it reads (LookupEvents waits its turn in
    the shared budget, so a long read takes a while)."""

    def __init__(self, store: Store, investigation_id: int, seconds: float, stop: Callable[[], bool]):
        self.store, self.id, self.length, self.stop = store, investigation_id, timedelta(seconds=seconds), stop
        self.holder = holder_name()
        self.renewed_at: datetime | None = None

    def take(self) -> Investigation | None:
        now = utcnow()
        self.renewed_at = now
        return INVESTIGATIONS.claim(self.store, self.id, self.holder, now, self.length)

    def keep(self) -> None:
        """Between two requests: Interrupted when the process is stopping; the claim renewed once a third of
        it has passed, ClaimLost when another process holds it now."""
        if self.stop():
            raise Interrupted()
        now = utcnow()
        if self.renewed_at and now - self.renewed_at < self.length / 3:
            return
        if INVESTIGATIONS.renew(self.store, self.holder, now, self.length, key=self.id) != 1:
            raise ClaimLost()
        self.renewed_at = now

    def store_values(self, **values) -> None:
        INVESTIGATIONS.update(self.store, self.id, self.holder, values)

    def release(self) -> None:
        INVESTIGATIONS.release(self.store, self.id, self.holder)


def carry_out(store: Store, settings: Settings, client: WebClient, reader: Callable[[], Reader],
              investigation_id: int, stop: Callable[[], bool] = lambda: False) -> Investigation | None:
    """Take the investigation as far as it goes (read, store, escalate, post); None when another process
    has it, it is done, or `stop` ended the read (it stays pending). Slack trouble leaves it `gathered`,
    for the worker to post later."""
    claim = _Claim(store, investigation_id, settings.lease_seconds, stop)
    investigation = claim.take()
    if investigation is None:
        return None
    if investigation.state == PENDING and investigation.attempts > MAX_ATTEMPTS:
        log.error("investigation #%s gave up after %d attempts", investigation_id, MAX_ATTEMPTS)
        try:
            return _finish(claim, investigation, f"gave up after {MAX_ATTEMPTS} attempts (see the log)")
        finally:
            claim.release()
    try:
        if investigation.state == PENDING:
            investigation = _gather(store, settings, reader, claim, investigation)
        if investigation.state == GATHERED:
            investigation = _post(store, settings, client, claim, investigation)
    except ClaimLost:
        log.warning("investigation #%s was taken over by another process", investigation_id)
        return None
    except Interrupted:
        log.info("investigation #%s interrupted: the process is stopping; it stays pending", investigation_id)
        return None
    finally:
        claim.release()
    return investigation


def carry_out_waiting(store: Store, settings: Settings, client: WebClient, reader: Callable[[], Reader],
                      stop: Callable[[], bool] = lambda: False) -> int:
    """The worker's job: every investigation nobody is carrying out; how many reached the thread."""
    posted = 0
    for investigation_id in waiting(store):
        if stop():
            break
        try:
            done = carry_out(store, settings, client, reader, investigation_id, stop)
        except Exception:  # one investigation's failure must not keep the others waiting
            log.exception("investigation #%s failed", investigation_id)
            continue
        posted += done is not None and done.state == POSTED and not done.error
    return posted


# ── reading and storing ──────────────────────────────────────────────────────────────────────────────


def _gather(store: Store, settings: Settings, reader: Callable[[], Reader], claim: _Claim,
            investigation: Investigation) -> Investigation:
    with store.session() as session:
        signal = session.get(SignalRow, investigation.signal_id)
    if signal is None or signal.status == Status.SUPPRESSED:
        return _finish(claim, investigation, "the alert was suppressed or removed before it was investigated")
    subject = subjects.for_signal(store, signal, settings.identity_key)
    window = Window(investigation.window_start, investigation.window_end)
    regions = [*settings.aws_regions, *signal.regions]
    summary = reader().investigate(subject, window, regions, between=claim.keep)
    claim.keep()
    return _store_findings(store, claim, investigation, signal, summary)


def _store_findings(store: Store, claim: _Claim, investigation: Investigation, signal: SignalRow,
                    summary: Summary) -> Investigation:
    """The messages stored and, for follow-on abuse, the signal made critical: one transaction."""
    with store.session() as session:
        row = lock_stored_signal(session, signal.signal_id)
        escalated = bool(summary.follow_on) and not row.follow_on_abuse
        if escalated:
            grown = signal_from_row(row)
            grown.follow_on_abuse = summary.follow_on_names
            row.follow_on_abuse, row.severity, row.reasons = grown.follow_on_abuse, grown.severity, grown.reasons
            record(session, row, AUTOMATIC, ESCALATED_ACTION, row.status,
                   detail=f"{grown.reasons[0]} (investigation #{investigation.id})")
        session.add(SignalHistory(
            signal_id=row.signal_id, actor=investigation.requested_by, action=INVESTIGATED, status=row.status,
            detail=(f"investigation #{investigation.id}: {summary.calls} other calls, "
                    f"{len(summary.follow_on)} follow-on APIs, {summary.reading.pages} pages"
                    + (" (page cap reached)" if summary.reading.capped else ""))))
        message = blocks.render(summary, investigation.requested_by, signal.severity)
        message["escalation"] = blocks.escalation_line(summary, row.identity) if escalated else None
        updated = get_stored(session, Investigation, investigation.id, populate_existing=True)
        if updated.claimed_by != claim.holder:
            session.rollback()
            raise ClaimLost()
        updated.state, updated.summary, updated.escalated = GATHERED, message, escalated
        session.add(updated)
        session.commit()
        return updated


def _finish(claim: _Claim, investigation: Investigation, error: str | None = None) -> Investigation:
    now = utcnow()
    claim.store_values(state=POSTED, finished_at=now, error=error)
    investigation.state, investigation.finished_at, investigation.error = POSTED, now, error
    return investigation


# ── posting ──────────────────────────────────────────────────────────────────────────────────────────


def _post(store: Store, settings: Settings, client: WebClient, claim: _Claim,
          investigation: Investigation) -> Investigation:
    alert = posted_message(store, investigation.signal_id)
    if alert is None:
        return _finish(claim, investigation, "the alert is not in Slack: there is no thread to post in")
    message = investigation.summary
    if message is None:  # stored with the `gathered` state, before any post
        return _finish(claim, investigation, "the investigation has no summary to post")
    thread = Thread(alert.channel, alert.ts)
    wait_turn = channel_pacer(store, thread.channel)  # thread replies count against the channel's pace
    try:
        if investigation.escalated and not investigation.escalation_ts:
            ts = _post_once(client, thread, investigation, ESCALATION, wait_turn, text=message["escalation"])
            claim.store_values(escalation_ts=ts)
            investigation.escalation_ts = ts
        if not investigation.summary_ts:
            ts = _post_once(client, thread, investigation, SUMMARY, wait_turn, text=message["text"],
                            blocks=message["blocks"])
            claim.store_values(summary_ts=ts)
            investigation.summary_ts = ts
    except Exception as exc:
        if is_transient(exc):  # Slack away or rate limiting: stays `gathered`, posted on a later pass
            log.warning("investigation #%s is stored, its post waits for Slack: %s", investigation.id, exc)
            return investigation
        if not isinstance(exc, SlackApiError):
            raise
        # Slack refuses it for good (the alert or its channel is gone, …): said in the store, not retried.
        return _finish(claim, investigation, f"Slack refused the post: {exc.response.get('error')}")
    investigation = _finish(claim, investigation)
    if investigation.escalated:
        try:
            refresh_alert(store, client, investigation.signal_id, settings)
        except (SlackApiError, *CONNECTION_ERRORS) as exc:  # stored as critical; the notifier re-renders it
            log.warning("alert %s is critical in the store, but was not updated in Slack: %s",
                        investigation.signal_id, exc)
    return investigation


def _metadata(investigation: Investigation, part: str) -> dict:
    return {"event_type": INVESTIGATION_EVENT_TYPE,
            "event_payload": {"investigation_id": investigation.id, "part": part}}


@dataclass(frozen=True)
class Thread:
    """The alert's message, whose thread the investigation is posted in."""

    channel: str
    ts: str


def _post_once(client: WebClient, thread: Thread, investigation: Investigation, part: str,
               wait_turn: Callable[[], None], **message) -> str:
    """Post one part in the alert's thread, unless an interrupted attempt did it already."""
    if investigation.attempts > 1:
        found = _find_in_thread(client, thread, investigation, part)
        if found:
            return found
    wait_turn()
    answer = client.chat_postMessage(channel=thread.channel, thread_ts=thread.ts,
                                     metadata=_metadata(investigation, part), unfurl_links=False,
                                     unfurl_media=False, **message)
    return answer["ts"]


def _find_in_thread(client: WebClient, thread: Thread, investigation: Investigation, part: str) -> str | None:
    wanted = _metadata(investigation, part)
    cursor = None
    for _ in range(THREAD_PAGES):
        page = client.conversations_replies(channel=thread.channel, ts=thread.ts,
                                            include_all_metadata=True, limit=200, cursor=cursor)
        messages: list[dict] = page.get("messages", [])
        for message in messages:
            if message.get("metadata") == wanted:
                return message["ts"]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor:
            return None
    return None
