"""Who is behind an identity: an explicit mapping (`/sesguard map`) first, then the owner the alert's triage
context found (an IAM tag, the Identity Store: `bot.context`), then an IAM Identity Center session name that
is an e-mail address (`users.lookupByEmail`); otherwise nobody, and the clicker picks.
"""

from __future__ import annotations

import logging
import re

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.contact.tables import IdentityMapping
from bot.context.tables import TriageContext
from detection.record import is_identity_center_identity
from detection.store import AuditEntry, SignalRow, Store, utcnow

log = logging.getLogger(__name__)

SSO_ROLE_PREFIX = "AWSReservedSSO_"
EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")


def sso_email(arn: str) -> str | None:
    """`alice@example.com` from `arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0123/alice@example.com`.

    Only for IAM Identity Center roles: there the session name is the person's sign-in; any other role's
    session name is chosen by whoever assumed the role.
    """
    _, sep, rest = arn.partition(":assumed-role/")
    if not sep:
        return None
    role, _, session = rest.partition("/")
    if not role.startswith(SSO_ROLE_PREFIX) or not EMAIL.match(session):
        return None
    return session


def resolve_person(store: Store, client: WebClient, signal: SignalRow) -> str | None:
    """The Slack user ID to ask about the signal, or None when nobody is known."""
    person = mapped_person(store, signal.identity, signal.arn) or context_owner(store, signal.signal_id)
    if person:
        return person
    # Only an IAM Identity Center session's name is the person's sign-in, and whether it is one is decided by
    # the role's path, as detection decides: a role at `/` named AWSReservedSSO_… has a caller-chosen name.
    email = sso_email(signal.identity) or sso_email(signal.arn)
    if email is None or not is_identity_center_identity(signal.identity, signal.arn):
        return None
    try:
        return client.users_lookupByEmail(email=email)["user"]["id"]
    except SlackApiError as exc:
        if exc.response.get("error") != "users_not_found":
            log.warning("users.lookupByEmail failed: %s", exc.response.get("error"))
        return None


def context_owner(store: Store, signal_id: str) -> str | None:
    """The Slack user the alert's triage context names as the identity's owner (SPEC §10), if any."""
    with store.session() as session:
        row = session.get(TriageContext, signal_id)
        return row.owner_slack_id if row is not None else None


def map_identity(store: Store, identity: str, slack_user_id: str, actor: str) -> None:
    """`/sesguard map`: who to ask about an identity (replaces an earlier mapping; audited)."""
    with store.session() as session:
        row = session.get(IdentityMapping, identity, with_for_update=store.is_postgres)
        previous = row.slack_user_id if row else None
        if row is None:
            row = IdentityMapping(identity=identity, slack_user_id=slack_user_id, set_by=actor)
        else:
            row.slack_user_id, row.set_by, row.set_at = slack_user_id, actor, utcnow()
        session.add(row)
        detail = f"→ {slack_user_id}" + (f" (was {previous})" if previous else "")
        session.add(AuditEntry(actor=actor, action="identity mapped", subject=identity, detail=detail))
        session.commit()


def mapped_person(store: Store, *identities: str) -> str | None:
    with store.session() as session:
        for identity in identities:
            row = session.get(IdentityMapping, identity)
            if row is not None:
                return row.slack_user_id
    return None
