"""The alert's containment buttons (Deactivate access key, Revoke role sessions); triagers only, and only
with SESGUARD_RESPONSE_ACTIONS.

Slack has already asked the clicker to confirm (the button's `confirm` dialog). Each handler acks first;
the IAM calls happen after the ack. The signal comes from `signal_of_alert`, re-read from the store; the
names sent to IAM are read from it and checked again (`bot.contain.names`), never taken from the click.
The result, or the error, goes to the alert's thread and the signal's history; a second click while the
first is under way is told so, and one after it finds the key already inactive or the role revoked.
"""

from __future__ import annotations

import logging
from types import ModuleType

from botocore.exceptions import BotoCoreError, ClientError
from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.alerts.clicks import signal_of_alert
from bot.alerts.message import post_in_thread, refresh_alert
from bot.config.settings import Settings
from bot.contain import attempts, names
from bot.contain.access import NoAccess, iam_client
from bot.contain.action import FAILED, Outcome
from bot.contain.blocks import LABELS, MODULES, result_line
from bot.slack.blocks import mention, when
from bot.slack.ids import Action
from bot.slack.middleware import triagers_only
from bot.slack.replies import actor_of, tell
from bot.triage.blocks import unchanged
from bot.triage.states import applies
from detection.sources.pulled import SourceError, describe_aws_error
from detection.store import SignalRow, utcnow

log = logging.getLogger(__name__)

TURNED_OFF = "Containment is turned off (SESGUARD_RESPONSE_ACTIONS is not true). Nothing was changed."
# What reaching the signal's account can fail with: shown in the thread, never swallowed.
ACCESS_ERRORS = (ClientError, BotoCoreError, NoAccess, SourceError)


def register(app: App) -> None:
    on_alert = [triagers_only, signal_of_alert]
    app.action(Action.DEACTIVATE_ACCESS_KEY.value, middleware=on_alert)(deactivate_access_key)
    app.action(Action.REVOKE_ROLE_SESSIONS.value, middleware=on_alert)(revoke_role_sessions)


def deactivate_access_key(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    contain(body, client, context, Action.DEACTIVATE_ACCESS_KEY)


def revoke_role_sessions(ack: Ack, body: dict, client: WebClient, context: BoltContext) -> None:
    ack()
    contain(body, client, context, Action.REVOKE_ROLE_SESSIONS)


def contain(body: dict, client: WebClient, context: BoltContext, action: Action) -> None:
    store, settings, row, user = context["store"], context["settings"], context["signal"], actor_of(body)
    module = MODULES[action]
    if not settings.response_actions:
        tell(client, body, TURNED_OFF)
        return
    if not module.applies(row):  # a stale or forged click: this alert never had that button
        tell(client, body, f"{LABELS[action]} does not apply to this alert. Nothing was changed.")
        return
    begun = attempts.begin(store, row.signal_id, module.KEY, lambda status: applies(action, status), user)
    if begun.busy is not None:
        tell(client, body, f"{LABELS[action]} is under way already, asked by {mention(begun.busy.requested_by)} at "
                           f"{when(begun.busy.requested_at)}; its result follows in the thread. Nothing else was done.")
        return
    attempt, signal = begun.attempt, begun.signal
    if attempt is None or signal is None:  # not started (an attempt is only begun on a stored signal)
        tell(client, body, unchanged(signal.status if signal else "unknown"))
        return
    outcome = None
    try:
        outcome = carry_out(module, signal, settings)  # as read under the lock: calls may have joined it
    finally:  # even a bug ends the attempt, so that the next click is not told it is under way
        outcome = outcome or Outcome(FAILED, "Failed on sesguard's side; the error is in the app's log. "
                                             "IAM may have been changed: look before trying again.")
        signal = attempts.finish(store, attempt, module.HISTORY, outcome)
        signal = refresh_alert(store, client, signal.signal_id, settings) or signal
        post_in_thread(store, client, signal.signal_id, result_line(module.HISTORY.of(outcome), outcome, user))


def carry_out(module: ModuleType, row: SignalRow, settings: Settings) -> Outcome:
    """The IAM side of one attempt: the checked target, the signal's account, the calls."""
    try:
        target = module.target(row)
    except names.Refused as refused:
        log.warning("refused %s for %s: %s", module.KEY, row.signal_id, refused)
        return Outcome(FAILED, f"Refused: {refused}. Nothing was sent to IAM.")
    try:
        iam = iam_client(row.account_id, settings)
    except ACCESS_ERRORS as exc:
        detail = str(exc) if isinstance(exc, (NoAccess, SourceError)) else describe_aws_error(exc)
        log.warning("%s for %s: cannot reach account %s: %s", module.KEY, row.signal_id, row.account_id, detail)
        return Outcome(FAILED, f"Could not reach account {row.account_id}: {detail}. Nothing was changed.")
    outcome = module.contain(target, iam, utcnow())
    log.log(logging.WARNING if outcome.kind == FAILED else logging.INFO, "%s for %s: %s: %s", module.KEY,
            row.signal_id, outcome.kind, outcome.detail)
    return outcome
