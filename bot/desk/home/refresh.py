"""Publishing the Home tab (`views.publish`) and keeping the open ones current, at most once a second each.

- Opening the tab (`app_home_opened`) records who opened it, and publishes it. Whether they may triage is
  asked again at every publish (SLACK_TRIAGERS and the user group's members, `Triagers`, whose lookup is
  cached a minute): someone removed from either gets their own questions only from the next publish on,
  never the desk for the rest of the day the tab stays open.
- Anything that changes an alert re-renders it through `alert.message.refresh_alert`, which calls
  `request_refresh`; the worker also looks every few seconds (`refresh_open`), for what changes without a
  click (new alerts posted, time-outs, learning ending). A tab is published only when what it shows changed
  (`blocks.digest`), and only when it was not published in the last second: the claim is one conditional
  `UPDATE` in the store, so two processes never both publish one person's tab within the second. A
  refresh held back by that limit is retried once the second is over.
- A user Slack does not know (`user_not_found`, `invalid_arguments`) is forgotten: no retries for ever.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import col, select

from bot.config.settings import Settings
from bot.desk.home import content
from bot.desk.home.blocks import digest, home_view
from bot.desk.home.tables import HomeTab
from bot.slack.middleware import Triagers
from bot.store.outbox import take_turn
from detection.store import Store, utcnow

log = logging.getLogger(__name__)

# Slack never says a Home tab was closed: one opened within this long is kept current.
OPEN_FOR = timedelta(hours=24)
MIN_INTERVAL = timedelta(seconds=1)
# Slack's answers that mean this person cannot be shown a Home tab at all.
UNKNOWN_USER_ERRORS = {"user_not_found", "invalid_arguments", "not_enabled", "users_not_found"}


_triagers: dict[tuple[tuple[str, ...], str | None], Triagers] = {}
_triagers_lock = threading.Lock()


def triagers_for(settings: Settings) -> Triagers:
    """Who may triage under these settings: one `Triagers` per setting, so that its user group lookup is
    cached across the refreshes of a process (the worker looks every few seconds)."""
    key = (tuple(sorted(settings.slack_triagers)), settings.slack_triage_usergroup)
    with _triagers_lock:
        return _triagers.setdefault(key, Triagers(settings))


@dataclass
class Refreshed:
    published: int = 0
    unchanged: int = 0
    held_back: int = 0  # published less than a second ago: tried again after it
    failed: int = 0


def desk_view(store: Store, settings: Settings, user_id: str, triager: bool, now: datetime | None = None) -> dict:
    desk = content.for_triager(store, settings, now) if triager else content.for_person(store, user_id)
    return home_view(desk)


def _claim(store: Store, user_id: str, now: datetime) -> bool:
    """The right to publish this person's tab now: not published within the last second (by anyone)."""
    return take_turn(store, col(HomeTab.user_id), user_id, col(HomeTab.published_at), now, MIN_INTERVAL)


def _publish(store: Store, client: WebClient, user_id: str, view: dict, triager: bool) -> bool:
    try:
        client.views_publish(user_id=user_id, view=view)
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in UNKNOWN_USER_ERRORS:
            log.warning("cannot publish the Home tab of %s (%s); not trying again until they open it", user_id[:40],
                        error)
            with store.session() as session:
                session.execute(sa.delete(HomeTab).where(col(HomeTab.user_id) == user_id))
                session.commit()
        else:
            log.warning("publishing the Home tab of %s failed (%s); tried again on the next change", user_id, error)
        return False
    with store.session() as session:
        session.execute(sa.update(HomeTab).where(col(HomeTab.user_id) == user_id)
                        .values(published_digest=digest(view), triager=triager))
        session.commit()
    return True


def opened(store: Store, settings: Settings, client: WebClient, user_id: str, triagers: Triagers) -> Refreshed:
    """`app_home_opened`: remember the tab as open, and publish it (unless it was published this second)."""
    now = utcnow()
    triager = triagers.allows(client, user_id)
    with store.session() as session:
        store.insert_ignoring_duplicates(session, HomeTab, [{"user_id": user_id, "opened_at": now, "triager": triager,
                                                             "published_digest": ""}])
        session.execute(sa.update(HomeTab).where(col(HomeTab.user_id) == user_id)
                        .values(opened_at=now, triager=triager, published_digest=""))
        session.commit()
    return refresh_open(store, settings, client, users=[user_id], now=now, triagers=triagers)


def refresh_open(store: Store, settings: Settings, client: WebClient, users: list[str] | None = None,
                 now: datetime | None = None, triagers: Triagers | None = None) -> Refreshed:
    """Publish every open Home tab whose content changed (or only `users`'); whether each person may triage
    is asked again here, at every publish."""
    now = now or utcnow()
    triagers = triagers or triagers_for(settings)
    result = Refreshed()
    with store.session() as session:
        query = select(HomeTab).where(HomeTab.opened_at >= now - OPEN_FOR)
        if users is not None:
            query = query.where(col(HomeTab.user_id).in_(users))
        tabs = list(session.exec(query.order_by(HomeTab.user_id)).all())
    triager_view: dict | None = None  # the same for every triager: built once a pass
    for tab in tabs:
        triager = triagers.allows(client, tab.user_id)
        if triager:
            triager_view = triager_view or desk_view(store, settings, tab.user_id, True, now)
            view = triager_view
        else:
            view = desk_view(store, settings, tab.user_id, False, now)
        if digest(view) == tab.published_digest:
            result.unchanged += 1
            continue
        if not _claim(store, tab.user_id, now):
            result.held_back += 1
            continue
        if _publish(store, client, tab.user_id, view, triager):
            result.published += 1
        else:
            result.failed += 1
    return result


class _Later:
    """One retry a second after a refresh was held back, per store and Slack: later requests join it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timers: dict[tuple[str, str], threading.Timer] = {}

    def schedule(self, key: tuple[str, str], run) -> None:
        with self._lock:
            timer = self._timers.get(key)
            if timer is not None and timer.is_alive():
                return
            self._timers[key] = timer = threading.Timer(MIN_INTERVAL.total_seconds() + 0.05, run)
            timer.daemon = True
            timer.start()


_later = _Later()


def request_refresh(store: Store, settings: Settings, client: WebClient) -> None:
    """Something changed: bring the open Home tabs up to date now, or a second from now. Never raises: the
    change itself is done and stored, and the worker's next look catches up."""

    def run() -> None:
        try:
            if refresh_open(store, settings, client).held_back:
                _later.schedule((store.url, client.base_url), run)
        except Exception as exc:
            log.warning("refreshing the open Home tabs failed: %s", exc)

    run()
