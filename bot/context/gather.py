"""Gather one alert's triage context (SPEC §10): the key, the owner, the address. Pure reads: nothing here
changes AWS or Slack, and no lookup's failure stops the others — each fact that cannot be had is stored as
"unknown" with its reason.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from slack_sdk import WebClient
from sqlmodel import col, select

from bot.config.networks import KnownNetwork, parse_networks
from bot.config.settings import Settings
from bot.contain import names
from bot.context import ip_ranges
from bot.context.access import Accounts, NoAccess
from bot.context.cache import LookupFailed
from bot.context.facts import AddressFacts, Context, KeyFacts, OwnerFacts, Seen
from bot.context.lookups import IAM_PER_SECOND, Iam, identity_store_emails, slack_user_by_email
from detection.pacing import RequestPacer
from detection.store import EventRow, SignalRow, Store

log = logging.getLogger(__name__)

KEYS_LOOKED_UP = 3  # a signal with more long-term keys is forged or very odd: the rest are counted
ADDRESSES_LOOKED_UP = 5
EMAIL = re.compile(r"[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
SLACK_USER = re.compile(r"<?@?([UW][A-Z0-9]{2,30})>?")


@dataclass
class Lookups:
    """What one gathering pass reads through: AWS sessions, Slack, the IAM pace."""

    store: Store
    settings: Settings
    slack: WebClient
    accounts: Accounts
    iam_pacer: RequestPacer

    @classmethod
    def start(cls, store: Store, settings: Settings, slack: WebClient) -> Lookups:
        return cls(store, settings, slack, Accounts(settings, store), RequestPacer(store, IAM_PER_SECOND, 1.0))

    def iam(self, account_id: str) -> Iam:
        """IAM in the signal's account; LookupFailed when sesguard cannot act there."""
        try:
            session = self.accounts.session(account_id)
        except NoAccess as exc:
            raise LookupFailed(str(exc)) from None
        return Iam(self.store, session, account_id, self.iam_pacer)


def gather(lookups: Lookups, signal: SignalRow) -> Context:
    context = Context()
    iam = _Once(lambda: lookups.iam(signal.account_id))
    _keys(lookups, iam, signal, context)
    context.owner = _owner(lookups, iam, signal)
    _addresses(lookups, signal, context)
    return context


class _Once:
    """IAM in the account, asked for at most once (a role that cannot be assumed fails every IAM fact alike)."""

    def __init__(self, make: Callable[[], Iam]):
        self.make = make
        self.iam: Iam | None = None
        self.error: LookupFailed | None = None

    def __call__(self) -> Iam:
        if self.error is not None:
            raise self.error
        if self.iam is None:
            try:
                self.iam = self.make()
            except LookupFailed as exc:
                self.error = exc
                raise
        return self.iam


# ── the key ──────────────────────────────────────────────────────────────────────────────────────────


def _keys(lookups: Lookups, iam: _Once, signal: SignalRow, context: Context) -> None:
    if signal.identity_type != "IAMUser":
        context.keys_note = "not an IAM user: no long-term access key to look up"
        return
    try:
        user = names.iam_user(signal.arn, signal.account_id)
        keys = names.long_term_keys(list(signal.access_key_ids))
    except names.Refused as exc:
        context.keys_note = f"not looked up: {exc}"
        return
    if not keys:
        context.keys_note = "temporary credentials (ASIA…, a console or STS session): no IAM access key to look up"
        return
    context.keys_more = max(0, len(keys) - KEYS_LOOKED_UP)
    owned: dict[str, dict[str, str | None]] | None = None
    owned_error: str | None = None
    try:
        owned = iam().access_keys(user.name)
    except LookupFailed as exc:
        owned_error = exc.reason
    for key_id in keys[:KEYS_LOOKED_UP]:
        key = KeyFacts(key_id)
        if owned is None:
            key.created_unknown = owned_error
        elif key_id in owned:
            key.created, key.status = owned[key_id].get("created"), owned[key_id].get("status")
        else:
            key.created_unknown = f"not among the access keys of IAM user {user.name} (deleted since, or not theirs)"
        try:
            used = iam().last_used(key_id)
        except LookupFailed as exc:
            key.last_used_unknown = exc.reason
        else:
            key.last_used = used.get("date")
            key.never_used = key.last_used is None
            key.last_service = _named(used.get("service"))
            key.last_region = _named(used.get("region"))
        try:
            key.seen_before = _seen(lookups.store, signal, EventRow.access_key_id == key_id,
                                    EventRow.account_id == signal.account_id)
        except Exception as exc:  # the store: this fact is unknown, the others stand
            key.seen_unknown = f"the store could not be read: {type(exc).__name__}"
        context.keys.append(key)


def _named(value: object) -> str | None:
    """IAM writes "N/A" for a key never used."""
    return str(value) if value and value != "N/A" else None


# ── the owner ────────────────────────────────────────────────────────────────────────────────────────


def _owner(lookups: Lookups, iam: _Once, signal: SignalRow) -> OwnerFacts:
    tags_wanted = [tag.lower() for tag in lookups.settings.owner_tags]
    looked = ", ".join(lookups.settings.owner_tags) or "(SESGUARD_OWNER_TAGS is empty)"
    try:
        if signal.identity_type == "IAMUser":
            user = names.iam_user(signal.arn, signal.account_id)
            return _from_tags(lookups, lambda: iam().user_tags(user.name), tags_wanted,
                              f"no tag {looked} on IAM user {user.name}", "IAM user tag")
        if signal.identity_type == "AssumedRole":
            role = names.iam_role(signal.identity, signal.arn, signal.account_id)
            if names.is_identity_center_role(signal.identity, signal.arn):
                return _from_identity_center(lookups, signal)
            return _from_tags(lookups, lambda: iam().role_tags(role.name), tags_wanted,
                              f"no tag {looked} on IAM role {role.name}", "IAM role tag")
    except names.Refused as exc:
        return OwnerFacts(none_because=f"not looked up: {exc}")
    except LookupFailed as exc:
        return OwnerFacts(unknown=exc.reason)
    kind = {"Root": "the account's root user carries no tags",
            "FederatedUser": "a federated user (sts:GetFederationToken) carries no tags"}
    return OwnerFacts(none_because=kind.get(signal.identity_type, f"a {signal.identity_type[:40]} carries no tags"))


def _from_tags(lookups: Lookups, tags_of: Callable[[], dict[str, str]], wanted: list[str], none: str,
               source: str) -> OwnerFacts:
    tags = {key.lower(): value for key, value in tags_of().items()}
    fallback: OwnerFacts | None = None
    for tag in wanted:
        value = tags.get(tag, "").strip()
        if not value:
            continue
        found = _person(lookups, value, f"{source} {tag}")
        if found.slack_id:
            return found
        fallback = fallback or found
    return fallback or OwnerFacts(none_because=none)


def _person(lookups: Lookups, value: str, source: str) -> OwnerFacts:
    """What a tag value (or an e-mail) names: a Slack user ID as it is, an e-mail through users.lookupByEmail,
    anything else shown as it is written (escaped), with nobody to contact."""
    slack_id = SLACK_USER.fullmatch(value)
    if slack_id:
        return OwnerFacts(slack_id=slack_id[1], named=value, source=source)
    if EMAIL.fullmatch(value):
        try:
            user = slack_user_by_email(lookups.store, lookups.slack, value)
        except LookupFailed as exc:
            return OwnerFacts(named=value, source=source, unknown=exc.reason)
        return OwnerFacts(slack_id=user, named=value, source=source,
                          note=None if user else "no Slack user has this e-mail")
    return OwnerFacts(named=value, source=source, note="neither an e-mail nor a Slack user ID: nobody to DM")


def _from_identity_center(lookups: Lookups, signal: SignalRow) -> OwnerFacts:
    session = names.ASSUMED_ROLE_ARN.fullmatch(signal.arn)
    user_name = session["session"] if session else ""
    if not user_name:
        return OwnerFacts(none_because="the IAM Identity Center session has no name")
    if EMAIL.fullmatch(user_name):
        return _person(lookups, user_name, "IAM Identity Center session name")
    try:
        own_account, own = lookups.accounts.own()
    except NoAccess as exc:
        return OwnerFacts(unknown=str(exc))
    regions = list(dict.fromkeys([*lookups.settings.aws_regions, *([own.region_name] if own.region_name else [])]))
    emails = identity_store_emails(lookups.store, own, regions, user_name)
    if not emails:
        return OwnerFacts(none_because=f"no Identity Store user named {user_name} (read from account {own_account})")
    found = [_person(lookups, email, f"Identity Store user {user_name}") for email in emails]
    return next((owner for owner in found if owner.slack_id), found[0])


# ── the address ──────────────────────────────────────────────────────────────────────────────────────


def _addresses(lookups: Lookups, signal: SignalRow, context: Context) -> None:
    ranges = ip_ranges.current(lookups.store)
    context.ranges_published, context.ranges_shipped = ranges.published, ranges.shipped
    networks = parse_networks(lookups.settings.known_networks)
    addresses = [str(value) for value in signal.source_ips]
    context.addresses_more = max(0, len(addresses) - ADDRESSES_LOOKED_UP)
    for value in addresses[:ADDRESSES_LOOKED_UP]:
        facts = AddressFacts(value)
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            facts.is_ip = False
        else:
            found = ranges.find(address)
            if found:
                facts.aws_prefix, facts.aws_service, facts.aws_region = found.prefix, found.service, found.region
            known = _known(networks, address)
            if known:
                facts.known_network, facts.known_label = str(known.network), known.label
        try:
            facts.by_identity = _seen(lookups.store, signal, EventRow.source_ip == value,
                                      EventRow.identity == signal.identity, EventRow.account_id == signal.account_id)
            facts.by_account = _seen(lookups.store, signal, EventRow.source_ip == value,
                                     EventRow.account_id == signal.account_id)
        except Exception as exc:
            facts.seen_unknown = f"the store could not be read: {type(exc).__name__}"
        context.addresses.append(facts)


def _known(networks: list[KnownNetwork], address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> KnownNetwork | None:
    return next((known for known in networks if known.contains(address)), None)


# ── the store ────────────────────────────────────────────────────────────────────────────────────────


def _seen(store: Store, signal: SignalRow, *where) -> Seen:
    """Stored matching calls before the signal's first call (none of its own)."""
    with store.session() as session:
        calls, first, last = session.exec(
            select(sa.func.count(), sa.func.min(EventRow.event_time), sa.func.max(EventRow.event_time))
            .where(*where, col(EventRow.event_time) < signal.first_seen,
                   sa.or_(col(EventRow.signal_id).is_(None), col(EventRow.signal_id) != signal.signal_id))
        ).one()
    return Seen(int(calls or 0), _stamp(first), _stamp(last))


def _stamp(moment) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, str):  # SQLite's aggregate returns the stored text, not the column's type
        return moment
    return moment.isoformat()
