"""The alert message of a stored signal: what it shows (from the store) and keeping it current in Slack.

The message is always rendered from the store, never patched from a payload, so that whoever renders it
(the notifier, a button, the contact time-out) shows the same state.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session, col, select

from bot.alerts.blocks import alert_message, alert_text
from bot.alerts.tables import AlertPost, posted_message
from bot.config.settings import Settings
from bot.contain.blocks import HISTORY_ACTIONS, containment_blocks
from bot.context.blocks import context_blocks
from bot.context.tables import TriageContext
from bot.desk.home.refresh import request_refresh
from bot.slack.client import CONNECTION_ERRORS
from bot.slack.ids import ALERT_EVENT_TYPE
from detection.store import EventRow, SignalHistory, SignalRow, Store, utcnow

log = logging.getLogger(__name__)

# A link to the alert is asked for once, quickly and without retries: whoever needs it (a page) must
# not wait for Slack, whose outage is when PagerDuty matters most.
PERMALINK_TIMEOUT_SECONDS = 5

# History rows that are bookkeeping, not a triage step worth showing as "by whom, when" (an investigation
# changes no status; its summary is in the thread).
INVESTIGATED = "investigated"
BOOKKEEPING_ACTIONS = ("detected", "posted", "set aside", INVESTIGATED)


class Unrenderable(Exception):
    """This stored signal cannot be made into a message (a damaged row, or a value no limit foresaw).

    Only this alert is affected: the builders are pure, so the next signal renders or fails on its own.
    """


def call_counts(session: Session, signal_id: str) -> dict[str, int]:
    rows = session.exec(
        select(EventRow.event_name, sa.func.count())
        .where(EventRow.signal_id == signal_id)
        .group_by(EventRow.event_name)
    ).all()
    return {name: count for name, count in rows}


def last_action(session: Session, signal_id: str) -> SignalHistory | None:
    """The step that put the signal in its status (containment changes IAM, not the status)."""
    return session.exec(
        select(SignalHistory)
        .where(SignalHistory.signal_id == signal_id,
               col(SignalHistory.action).not_in(BOOKKEEPING_ACTIONS + tuple(HISTORY_ACTIONS)))
        .order_by(col(SignalHistory.at).desc(), col(SignalHistory.id).desc())
        .limit(1)
    ).first()


def containment_results(session: Session, signal_id: str) -> list[SignalHistory]:
    return list(session.exec(
        select(SignalHistory)
        .where(col(SignalHistory.signal_id) == signal_id, col(SignalHistory.action).in_(HISTORY_ACTIONS))
        .order_by(col(SignalHistory.at), col(SignalHistory.id))
    ).all())


def rendered(store: Store, signal_id: str, settings: Settings) -> tuple[SignalRow, list[dict], str] | None:
    """The signal row, its blocks and its fallback text; None when no such signal is stored.

    With SESGUARD_RESPONSE_ACTIONS the alert carries containment's part (its results and buttons); once its
    triage context is being gathered (after the first post), that part too.
    A store that fails raises its own error; a row the builders cannot render raises `Unrenderable`.
    """
    with store.session() as session:
        row = session.get(SignalRow, signal_id)
        if row is None:
            return None
        counts = call_counts(session, signal_id)
        action = last_action(session, signal_id)
        results = containment_results(session, signal_id) if settings.response_actions else None
        context = session.get(TriageContext, signal_id)
    try:
        containment = containment_blocks(row, results) if results is not None else []
        facts = context_blocks(context.state if context else None, context.facts if context else None,
                               row.first_seen)
        return row, alert_message(row, counts, action, containment, facts), alert_text(row, counts)
    except Exception as exc:
        raise Unrenderable(f"the alert cannot be rendered: {type(exc).__name__}: {str(exc)[:300]}") from exc


def rendered_stored(store: Store, signal_id: str, settings: Settings) -> tuple[SignalRow, list[dict], str]:
    """`rendered` for a signal read from the store moments ago (signals are never deleted)."""
    found = rendered(store, signal_id, settings)
    if found is None:
        raise LookupError(f"signal {signal_id!r} is not in the store")
    return found


def metadata(signal_id: str) -> dict:
    """Slack message metadata: finds the post again in the channel's history after a lost answer."""
    return {"event_type": ALERT_EVENT_TYPE, "event_payload": {"signal_id": signal_id}}


def refresh_alert(store: Store, client: WebClient, signal_id: str, settings: Settings) -> SignalRow | None:
    """Re-render the posted alert in place from the store (a no-op while it is not posted yet)."""
    started = utcnow()
    found = rendered(store, signal_id, settings)
    if found is None:
        return None
    row, blocks, text = found
    message = posted_message(store, signal_id)
    if message is not None:
        client.chat_update(channel=message.channel, ts=message.ts, blocks=blocks, text=text,
                           metadata=metadata(signal_id))
        # The message shows the store as of `started`; if this update fails, the notifier re-renders it.
        with store.session() as session:
            session.execute(sa.update(AlertPost).where(col(AlertPost.signal_id) == signal_id).values(posted_at=started))
            session.commit()
    request_refresh(store, settings, client)  # the App Home shows this alert too
    return row


def post_in_thread(store: Store, client: WebClient, signal_id: str, line: str) -> None:
    """A line in the alert's thread; mentions in `line` are the bot's own, values in it are escaped."""
    message = posted_message(store, signal_id)
    if message is not None:
        client.chat_postMessage(channel=message.channel, thread_ts=message.ts, text=line,
                                unfurl_links=False, unfurl_media=False)


def alert_link(store: Store, client: WebClient, signal_id: str) -> str | None:
    """The posted alert's permalink (chat.getPermalink, which needs no scope); when Slack cannot answer,
    the documented deep link that opens the alert's channel. None while the alert is not posted."""
    message = posted_message(store, signal_id)
    if message is None:
        return None
    quick = WebClient(token=client.token, base_url=client.base_url, timeout=PERMALINK_TIMEOUT_SECONDS,
                      retry_handlers=[])
    try:
        return str(quick.chat_getPermalink(channel=message.channel, message_ts=message.ts)["permalink"])
    except (SlackApiError, *CONNECTION_ERRORS) as exc:
        log.warning("no permalink for the alert of %s (%s); linking its channel instead", signal_id,
                    exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__)
        return f"https://slack.com/app_redirect?channel={quote(message.channel, safe='')}"
