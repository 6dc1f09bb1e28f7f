"""The outbox: post every stored, unposted, unsuppressed signal to `SLACK_ALERT_CHANNEL`, exactly once.

- A signal is claimed before it is posted (a conditional `UPDATE` of the claim columns of its alert's post,
  `bot.alerts.tables.AlertPost`, made on the first claim; only one process can win the update, on SQLite and
  PostgreSQL alike), so that two workers never post the same signal.
  A claim lasts SESGUARD_LEASE_SECONDS and is renewed while its post is under way (retries and
  `Retry-After` waits included), so that a worker killed mid-post stops renewing it and its alert is
  taken over that soon after a restart, not minutes later.
- Each alert carries Slack message metadata with its signal id. Before a signal is posted again (an
  earlier attempt failed, crashed, or lost its answer), the channel's history is searched for that
  metadata: a post that went through is recorded, not repeated.
- 429s are retried by slack-sdk, honouring `Retry-After`; a 5xx or a dropped connection while posting is
  retried here, after that search. When Slack stays unreachable, or refuses us as a whole (a revoked
  token, a missing channel), the pass stops and the signals stay pending for the next one: an outage
  delays alerts, it never loses them.
- A message Slack refuses on its own account (`invalid_blocks`, `msg_too_long`, any error that is neither
  transient nor workspace-wide), or one that cannot be rendered at all, is set aside: a history line and
  a warning say why, and it is tried again after a backoff that doubles each time (from one poll interval
  up to an hour), while the pass goes on with the next alert. One bad alert is never a wall in front of
  the others.
- A posted signal that grew since (later calls joined it) gets its message updated in place.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import col, select

from bot.alerts.delivery import record_pass
from bot.alerts.message import Unrenderable, metadata, rendered_stored
from bot.alerts.tables import AlertPost, unposted, with_posts
from bot.config.settings import Settings
from bot.slack.client import is_transient, slack_client
from bot.slack.history import find_by_metadata
from bot.slack.ids import ALERT_EVENT_TYPE
from bot.slack.pace import POST_INTERVAL_SECONDS, channel_pacer
from bot.store.outbox import Outbox, holder_name
from detection.signals import Status
from detection.store import SignalHistory, SignalRow, Store, get_stored, signal_from_row, utcnow
from detection.suppression import first_covering

log = logging.getLogger(__name__)

POST_ATTEMPTS = 3
# How far the history search reaches back before the signal was stored, and how many pages it reads.
HISTORY_MARGIN = timedelta(minutes=5)
HISTORY_PAGES = 20
# Errors that say Slack (or our configuration) refuses every message, not just this one: the pass stops.
STOP_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
               "channel_not_found", "not_in_channel", "is_archived", "missing_scope", "no_permission",
               "access_denied", "ekm_access_denied", "team_access_not_granted", "enterprise_is_restricted",
               "restricted_action", "restricted_action_read_only_channel"}
# Slack's own trouble, whatever HTTP status it came with: the pass stops and the next one tries again.
TRANSIENT_ERRORS = {"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}
# Errors of chat.update that say the message is gone.
GONE_ERRORS = {"message_not_found", "cant_update_message"}
# A set-aside alert is due again after one poll interval, then twice as long each time, up to this.
SET_ASIDE_MAX = timedelta(hours=1)
# What a successful post or update clears.
NOT_SET_ASIDE: dict[str, Any] = {"failures": 0, "error": None, "retry_at": None}  # column values


@dataclass
class NotifyResult:
    posted: int = 0  # new messages in the channel
    found: int = 0  # earlier posts whose answer was lost, found again and recorded
    updated: int = 0  # messages brought up to date with a grown signal
    suppressed: int = 0  # pending signals a suppression made since now covers
    failed: int = 0  # attempts that failed, set-aside ones included
    set_aside: int = 0  # refused or unrenderable messages set aside for a later attempt
    pending: int = 0  # still waiting to be posted after this pass
    errors: list[str] = field(default_factory=list)
    stopped_by: BaseException | None = None  # the error that ended the pass before its end

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def line(self) -> str:
        return (f"notifier: {self.posted} posted, {self.found} found already posted, {self.updated} updated, "
                f"{self.suppressed} suppressed, {self.failed} failed ({self.set_aside} set aside), "
                f"{self.pending} pending")


class _Stopping(Exception):
    """The process is stopping (SIGTERM) and this post has not gone out: it stays pending."""


# Over signals with their posts (`with_posts`): a posted alert whose signal grew since (later calls joined it).
def _grown():
    return sa.and_(col(AlertPost.slack_ts).is_not(None), col(SignalRow.updated_at) > col(AlertPost.posted_at))


def _due(now: datetime):
    """Not set aside, or set aside until a moment that has come (a signal without a post yet is due)."""
    return sa.or_(col(AlertPost.retry_at).is_(None), col(AlertPost.retry_at) <= now)


def pending_count(store: Store) -> int:
    with store.session() as session:
        return session.exec(with_posts(select(sa.func.count()).select_from(SignalRow)).where(unposted())).one()


def _candidates(store: Store, now: datetime) -> list[str]:
    with store.session() as session:
        return list(session.exec(
            with_posts(select(SignalRow.signal_id)).where(sa.or_(unposted(), _grown()), _due(now))
            .order_by(col(SignalRow.created_at), col(SignalRow.signal_id))
        ).all())


def _pending(now: datetime) -> list:
    """Unposted or grown, and due: what a claim still needs when another process may have acted since (the
    signal's status and growth read from its row, in the claim's own statement)."""
    needs_work = (select(SignalRow.signal_id).where(col(SignalRow.signal_id) == col(AlertPost.signal_id),
                                                    sa.or_(unposted(), _grown()))
                  .correlate(AlertPost))
    return [sa.exists(needs_work), _due(now)]


# An update of a posted alert is no posting attempt: only a claim of an unposted one counts, so that the
# channel is searched before a signal whose earlier post may have gone through is posted again.
ALERTS = Outbox(AlertPost, col(AlertPost.signal_id), col(AlertPost.claimed_by), col(AlertPost.claimed_until),
                col(AlertPost.attempts), _pending, attempt=sa.case((col(AlertPost.slack_ts).is_(None), 1), else_=0))


def _claim(store: Store, signal_id: str, worker: str, now: datetime,
           length: timedelta) -> tuple[SignalRow, AlertPost] | None:
    """The signal and its post, claimed by `worker`; None when another process has it or it needs nothing
    any more. The post's row is made on the signal's first claim: detection stores signals without one."""
    with store.session() as session:
        store.insert_ignoring_duplicates(session, AlertPost, [{"signal_id": signal_id}])
        session.commit()
    post = ALERTS.claim(store, signal_id, worker, now, length)
    if post is None:
        return None
    with store.session() as session:
        return get_stored(session, SignalRow, signal_id), post


def _release(store: Store, signal_id: str, worker: str, note: SignalHistory | None = None,
             held: tuple[sa.Executable, ...] = (), **values) -> None:
    """Give the claim back, storing what the attempt achieved (`values`) and its history line."""
    ALERTS.release(store, signal_id, worker, [] if note is None else [note], held, **values)


def find_posted(client: WebClient, channel: str, signal: SignalRow) -> str | None:
    """The ts of this signal's alert if it is already in the channel (searched by message metadata)."""
    return find_by_metadata(client, channel, signal.created_at - HISTORY_MARGIN, ALERT_EVENT_TYPE, "signal_id",
                            signal.signal_id, HISTORY_PAGES)


def _post_once(store: Store, settings: Settings, client: WebClient, channel: str, row: SignalRow,
               post: AlertPost, wait_turn: Callable[[], None]) -> tuple[str, bool]:
    """(ts, found): posts the alert unless an earlier attempt already did; retries transient failures."""
    found = rendered_alert = None
    for attempt in range(POST_ATTEMPTS):
        if attempt or post.attempts > 1:
            try:
                found = find_posted(client, channel, row)
            except SlackApiError as exc:
                if exc.response.get("error") != "missing_scope":
                    raise
                # Without channels:history we cannot look; a possible duplicate beats a lost alert.
                log.warning("cannot search %s for earlier posts (missing_scope); posting %s again", channel,
                            row.signal_id)
            if found:
                return found, True
        rendered_alert = rendered_alert or rendered_stored(store, row.signal_id, settings)
        _, blocks, text = rendered_alert
        wait_turn()
        try:
            answer = client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                             metadata=metadata(row.signal_id), unfurl_links=False, unfurl_media=False)
            return answer["ts"], False
        except Exception as exc:  # only transient failures are retried, after searching the channel
            if not is_transient(exc) or attempt == POST_ATTEMPTS - 1:
                raise
            log.warning("posting %s failed (%s); looking in the channel before retrying", row.signal_id, describe(exc))
            time.sleep(settings.retry_seconds * (attempt + 1))  # SESGUARD_RETRY_SECONDS, then twice that
    raise AssertionError("unreachable: the last attempt returns or raises")


def _update(store: Store, settings: Settings, client: WebClient, post: AlertPost) -> None:
    if post.slack_channel is None or post.slack_ts is None:  # stored together when it was posted
        raise ValueError(f"alert {post.signal_id} was never posted: there is no message to update")
    _, blocks, text = rendered_stored(store, post.signal_id, settings)
    client.chat_update(channel=post.slack_channel, ts=post.slack_ts, blocks=blocks, text=text,
                       metadata=metadata(post.signal_id))


def _covered(row: SignalRow, rules, now: datetime):
    return first_covering(rules, signal_from_row(row), now)


def _mark_suppressed(store: Store, row: SignalRow, worker: str, suppression_id: int) -> None:
    note = SignalHistory(signal_id=row.signal_id, actor="sesguard", action="suppressed before posting",
                         status=Status.SUPPRESSED.value, detail=f"suppression #{suppression_id}")
    suppress = (sa.update(SignalRow).where(col(SignalRow.signal_id) == row.signal_id)
                .values(status=Status.SUPPRESSED.value, suppression_id=suppression_id))
    _release(store, row.signal_id, worker, note, (suppress,))


def post_pending(store: Store, settings: Settings, client: WebClient | None = None, *,
                 interval: float = POST_INTERVAL_SECONDS, stop: threading.Event | None = None) -> NotifyResult:
    """One pass over the outbox. Never raises for Slack trouble: it is counted in `.failed` and `.errors`.

    `stop` (set on SIGTERM) ends the pass between two posts; the rest stays pending for the next one.
    """
    settings.require("SLACK_BOT_TOKEN", "SLACK_ALERT_CHANNEL")
    client = client or slack_client(settings)
    worker = holder_name()
    claim = timedelta(seconds=settings.lease_seconds)
    with ALERTS.renewal(store, worker, claim):
        paced = channel_pacer(store, settings.alert_channel, interval)

        def wait_turn() -> None:  # a stop that came during the wait keeps this post from starting
            paced()
            if stop is not None and stop.is_set():
                raise _Stopping()

        result = _post_each(store, settings, client, worker, claim, wait_turn, stop)
    result.pending = pending_count(store)
    _record_delivery(store, settings.alert_channel, result)
    return result


def _record_delivery(store: Store, channel: str, result: NotifyResult) -> None:
    """What this pass says about delivery, for `/healthz` (answered by another process). A pass that tried
    nothing while alerts wait (each set aside until later, or claimed by another process) says nothing."""
    if not result.posted + result.found + result.updated + result.failed and result.pending:
        return
    stopped = result.stopped_by
    try:
        record_pass(store, channel, stopped_by=describe(stopped) if stopped else None,
                    transient=stopped is not None and is_transient_failure(stopped))
    except Exception as exc:  # the database is away: the pass's own errors are reported already
        log.warning("cannot record how delivery went: %s", describe(exc))


def _post_each(store: Store, settings: Settings, client: WebClient, worker: str, claim: timedelta,
               wait_turn: Callable[[], None], stop: threading.Event | None) -> NotifyResult:
    channel = settings.alert_channel
    result = NotifyResult()
    rules = [row.as_rule() for row in store.active_suppressions()]
    for signal_id in _candidates(store, utcnow()):
        if stop is not None and stop.is_set():
            break
        now = utcnow()  # posted_at: the message shows the signal as stored at this moment
        claimed = _claim(store, signal_id, worker, now, claim)
        if claimed is None:
            continue  # another process has it, or it needs nothing any more
        row, post = claimed
        try:
            if post.slack_ts is None:
                covering = _covered(row, rules, now)
                if covering is not None:
                    _mark_suppressed(store, row, worker, covering.id)
                    result.suppressed += 1
                    continue
                ts, found = _post_once(store, settings, client, channel, row, post, wait_turn)
                detail = f"{channel} {ts}" + (" (found in the channel after a lost answer)" if found else "")
                note = SignalHistory(signal_id=signal_id, actor="sesguard", action="posted", status=row.status,
                                     detail=detail)
                _release(store, signal_id, worker, note, slack_channel=channel, slack_ts=ts, posted_at=now,
                         **NOT_SET_ASIDE)
                result.found += found
                result.posted += not found
            else:
                _update(store, settings, client, post)
                _release(store, signal_id, worker, posted_at=now, **NOT_SET_ASIDE)
                result.updated += 1
        except _Stopping:
            _release(store, signal_id, worker)
            break
        except Exception as exc:
            if post.slack_ts is not None and _error_code(exc) in GONE_ERRORS:
                # Deleted in Slack: not updated again (the signal stays in the store).
                _fail(store, signal_id, worker, exc, result, posted_at=now)
            elif stops_the_pass(exc):  # Slack down or refusing us, or the database away: the rest waits
                _fail(store, signal_id, worker, exc, result)
                result.stopped_by = exc
                break
            else:
                _set_aside(store, row, post, worker, exc, result, timedelta(seconds=settings.poll_seconds))
    return result


def is_transient_failure(error: BaseException) -> bool:
    """Slack unreachable, overloaded or rate limiting: the next pass will likely get through."""
    return is_transient(error) or _error_code(error) in TRANSIENT_ERRORS


def stops_the_pass(error: BaseException) -> bool:
    """True unless the error is about this one message: its rendering, or Slack refusing its content."""
    if isinstance(error, Unrenderable):
        return False
    if isinstance(error, SlackApiError):
        return is_transient_failure(error) or _error_code(error) in STOP_ERRORS
    return True  # unreachable Slack, the database, or a bug: nothing says the next alert would fare better


def set_aside_for(failures: int, poll_interval: timedelta) -> timedelta:
    """How long an alert that failed `failures` times in a row waits: one poll interval, doubling, at most an hour."""
    return min(poll_interval * 2 ** min(failures - 1, 30), SET_ASIDE_MAX)


def _set_aside(store: Store, row: SignalRow, post: AlertPost, worker: str, error: BaseException,
               result: NotifyResult, poll_interval: timedelta) -> None:
    failures = post.failures + 1
    retry_at = utcnow() + set_aside_for(failures, poll_interval)
    reason = describe(error)
    note = SignalHistory(signal_id=row.signal_id, actor="sesguard", action="set aside", status=row.status,
                         detail=f"{reason}; failed {failures} time(s) in a row, next attempt after "
                                f"{retry_at:%Y-%m-%d %H:%M:%S} UTC")
    _release(store, row.signal_id, worker, note, failures=failures, error=reason[:1000], retry_at=retry_at)
    result.failed += 1
    result.set_aside += 1
    result.errors.append(f"{row.signal_id}: {reason}")
    log.warning("alert %s set aside until %s (failed %d time(s) in a row): %s", row.signal_id,
                f"{retry_at:%H:%M:%S}", failures, reason)


def _fail(store: Store, signal_id: str, worker: str, error: BaseException, result: NotifyResult, **values) -> None:
    _release(store, signal_id, worker, **values)
    result.failed += 1
    result.errors.append(f"{signal_id}: {describe(error)}")
    log.warning("alert %s not posted or updated: %s", signal_id, describe(error))


def _error_code(error: BaseException) -> str | None:
    return error.response.get("error") if isinstance(error, SlackApiError) else None


def describe(error: BaseException) -> str:
    """One line for a failed Slack call: the HTTP status and Slack's error code, or the exception."""
    if isinstance(error, SlackApiError):
        return f"HTTP {error.response.status_code} {error.response.get('error')}"
    return f"{type(error).__name__}: {error}"[:300]
