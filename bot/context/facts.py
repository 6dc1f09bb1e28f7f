"""What the triage context found, as stored (`TriageContext.facts`) and rendered (`bot.context.blocks`).

Each fact is either known or "unknown" with the reason (a denied or failed lookup); "none" is a fact too (no
owner tag on the user, never seen before). Times are ISO 8601 strings in UTC, as stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Seen:
    """Stored matching calls before the alert's first call (none: `calls == 0`)."""

    calls: int = 0
    first: str | None = None
    last: str | None = None


@dataclass
class KeyFacts:
    """One long-term access key (`AKIA…`) of an IAM user."""

    key_id: str
    created: str | None = None  # iam:ListAccessKeys' CreateDate
    status: str | None = None  # Active / Inactive
    created_unknown: str | None = None  # why the creation date is unknown (denied, failed, not the user's key)
    last_used: str | None = None  # iam:GetAccessKeyLastUsed
    last_service: str | None = None
    last_region: str | None = None
    never_used: bool = False  # IAM says the key has never been used (or not since April 2015)
    last_used_unknown: str | None = None
    seen_before: Seen = field(default_factory=Seen)  # this key's stored calls in this account
    seen_unknown: str | None = None


@dataclass
class OwnerFacts:
    """The person behind the identity."""

    slack_id: str | None = None  # whom Contact user asks
    named: str | None = None  # what names them (a tag's value, an e-mail), as found: escaped when shown
    source: str | None = None  # where: "IAM tag owner", "Identity Store user", …
    note: str | None = None  # e.g. "no Slack user has this e-mail"
    none_because: str | None = None  # nobody is named, and where sesguard looked
    unknown: str | None = None  # a lookup was denied or failed


@dataclass
class AddressFacts:
    """One source address of the alert."""

    address: str
    is_ip: bool = True  # CloudTrail writes a service name ("ses.amazonaws.com") when AWS called on the caller's behalf
    aws_prefix: str | None = None
    aws_service: str | None = None
    aws_region: str | None = None
    known_network: str | None = None  # the CIDR in SESGUARD_KNOWN_NETWORKS
    known_label: str | None = None
    by_identity: Seen = field(default_factory=Seen)  # this identity's stored calls from it before the alert
    by_account: Seen = field(default_factory=Seen)  # anyone's in this account
    seen_unknown: str | None = None


@dataclass
class Context:
    keys: list[KeyFacts] = field(default_factory=list)
    keys_note: str | None = None  # why no key is looked up (temporary credentials, not an IAM user, …)
    keys_more: int = 0  # long-term keys beyond those looked up
    owner: OwnerFacts = field(default_factory=OwnerFacts)
    addresses: list[AddressFacts] = field(default_factory=list)
    addresses_more: int = 0
    ranges_published: str = ""  # the createDate day of the AWS IP ranges used
    ranges_shipped: bool = True  # the excerpt that ships with sesguard, not a download

    @property
    def unknown(self) -> int:
        """How many lookups were denied or failed."""
        found = [self.owner.unknown]
        for key in self.keys:
            found += [key.created_unknown, key.last_used_unknown, key.seen_unknown]
        found += [address.seen_unknown for address in self.addresses]
        return sum(reason is not None for reason in found)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Context:
        def seen(value: Any) -> Seen:
            return Seen(**value) if isinstance(value, dict) else Seen()

        keys = [KeyFacts(**{**key, "seen_before": seen(key.get("seen_before"))}) for key in data.get("keys", [])]
        addresses = [AddressFacts(**{**address, "by_identity": seen(address.get("by_identity")),
                                     "by_account": seen(address.get("by_account"))})
                     for address in data.get("addresses", [])]
        rest = {k: v for k, v in data.items() if k not in ("keys", "addresses", "owner")}
        return cls(keys=keys, addresses=addresses, owner=OwnerFacts(**data.get("owner", {})), **rest)
