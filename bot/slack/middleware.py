"""Bolt middleware: the store and settings in every request's context, replayed requests refused, the
triager check (the signal behind an alert's button is the alerts' own: `bot.alerts.clicks`).

Cross-cutting concerns live here instead of being repeated in every handler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta

import sqlalchemy as sa
from slack_bolt import Ack, BoltContext, BoltRequest, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import col

from bot.config.settings import Settings
from bot.slack.replies import channel_of, tell, user_of
from bot.slack.tables import SlackRequest
from detection.store import Store, utcnow

log = logging.getLogger(__name__)

# Usergroup membership is looked up at most this often (one Web API call, not one per click). The lookup
# runs before a click is acknowledged, so it may take this long at most, and a failed one is repeated only
# after a pause: a slow or unreachable Slack must not hold every click past Slack's 3 seconds.
USERGROUP_CACHE_SECONDS = 60.0
USERGROUP_LOOKUP_TIMEOUT_SECONDS = 1.5
USERGROUP_RETRY_SECONDS = 10.0
REFUSAL = ("Only triagers may act on sesguard alerts (SLACK_TRIAGERS, SLACK_TRIAGE_USERGROUP). "
           "Nothing was changed.")


class Triagers:
    """Who may triage: the union of SLACK_TRIAGERS and the members of SLACK_TRIAGE_USERGROUP."""

    def __init__(self, settings: Settings):
        self.users = frozenset(settings.slack_triagers)
        self.usergroup = settings.slack_triage_usergroup
        self._members: frozenset[str] = frozenset()
        self._looked_up_at: float | None = None
        self._known = False  # the last lookup succeeded
        self._lock = threading.Lock()

    @property
    def everyone(self) -> bool:
        return not self.users and not self.usergroup

    def allows(self, client: WebClient, user_id: str | None) -> bool:
        if not user_id:
            return False
        if self.everyone or user_id in self.users:
            return True
        if not self.usergroup:
            return False
        return user_id in self._group_members(client, self.usergroup)

    def _group_members(self, client: WebClient, usergroup: str) -> frozenset[str]:
        with self._lock:
            now = time.monotonic()
            patience = USERGROUP_CACHE_SECONDS if self._known else USERGROUP_RETRY_SECONDS
            if self._looked_up_at is not None and now - self._looked_up_at < patience:
                return self._members
            self._looked_up_at = now
            # slack-sdk annotates `timeout` as int; it is handed to urllib, which takes fractions of seconds.
            quick = WebClient(token=client.token, base_url=client.base_url,
                              timeout=USERGROUP_LOOKUP_TIMEOUT_SECONDS,  # type: ignore[arg-type]
                              retry_handlers=[])
            try:
                self._members, self._known = frozenset(quick.usergroups_users_list(usergroup=usergroup)["users"]), True
            except Exception as exc:  # refused, slow or unreachable: keep the last known members (none: nobody)
                self._known = False
                reason = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
                log.warning("usergroups.users.list failed (%s); using the last known members", reason)
            return self._members


def triagers_only(body: dict, client: WebClient, context: BoltContext, ack: Ack, next: Callable) -> BoltResponse | None:
    """Listener middleware: non-triagers get an ephemeral refusal, and nothing changes.

    Returning the ack's response (instead of calling `next`) ends the request there.
    """
    user = user_of(body)
    if context["triagers"].allows(client, user):
        next()
        return None
    log.info("refused %s from %s: not a triager", body.get("type"), user)
    if body.get("type") == "view_submission":
        first_input = next_input_block(body)
        return ack(response_action="errors", errors={first_input: REFUSAL} if first_input else {})
    if channel_of(body) and user:
        after_ack(context, tell, client=client, body=body, text=REFUSAL)
    return ack()


def clicked(body: dict) -> dict:
    """The button of a block_actions payload ({} when the payload has none)."""
    actions = body.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    return first if isinstance(first, dict) else {}


def after_ack(context: BoltContext, call: Callable, **kwargs) -> None:
    """Run a Slack call on the listener pool: middleware runs before the ack, and a slow Slack must not delay it."""

    def run() -> None:
        try:
            call(**kwargs)
        except Exception as exc:
            log.warning("%s failed after the ack: %s", getattr(call, "__name__", "a Slack call"), exc)

    context["background"].submit(run)


def next_input_block(body: dict) -> str | None:
    values = ((body.get("view") or {}).get("state") or {}).get("values") or {}
    return next(iter(values), None)


def services(store: Store, settings: Settings, triagers: Triagers, background: Executor) -> Callable:
    """Global middleware: handlers find `store`, `settings`, `triagers` and the listener pool (`background`)
    in their context."""

    def inject_services(context: BoltContext, next: Callable) -> None:
        context["store"] = store
        context["settings"] = settings
        context["triagers"] = triagers
        context["background"] = background
        next()

    return inject_services


# Slack refuses timestamps more than five minutes off; a signature is remembered a little longer.
REPLAY_WINDOW = timedelta(minutes=10)


def reject_replays(store: Store) -> Callable:
    """Global middleware (after Bolt's signature check): a signed request seen before gets 401.

    Remembered in the store, so that every `serve` process, on any host, knows it.
    """

    def reject_replayed_requests(req: BoltRequest, next: Callable) -> BoltResponse | None:
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        if req.mode == "socket_mode" or not signature:
            next()
            return None
        now = utcnow()
        with store.session() as session:
            replayable_since = now - REPLAY_WINDOW
            session.execute(sa.delete(SlackRequest).where(col(SlackRequest.received_at) < replayable_since))
            first = store.insert_ignoring_duplicates(session, SlackRequest,
                                                     [{"signature": signature, "received_at": now}])
            session.commit()
        if not first:
            log.warning("refused a replayed Slack request")
            return BoltResponse(status=401, body='{"error": "replayed request"}',
                                headers={"content-type": "application/json"})
        next()
        return None

    return reject_replayed_requests
