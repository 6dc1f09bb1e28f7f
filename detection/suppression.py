"""Does a suppression cover a signal? (SPEC §1 "Suppressions"; the rows themselves live in the store.)"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from detection.signals import Signal


@dataclass(frozen=True)
class SuppressionRule:
    id: int
    identity: str
    account_id: str | None = None  # None: every account
    source_cidr: str | None = None  # None: any source IP
    expires_at: datetime | None = None  # None: no expiry

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def covers(self, signal: Signal, now: datetime) -> bool:
        if not self.active(now) or signal.identity != self.identity:
            return False
        if self.account_id and signal.account_id != self.account_id:
            return False
        return self.source_cidr is None or _all_within(signal.source_ips, self.source_cidr)


def _all_within(source_ips: list[str], cidr: str) -> bool:
    """Every source IP of the signal inside the CIDR: one call from elsewhere is worth a look."""
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:  # a damaged row must not stop detection; it suppresses nothing
        return False
    if not source_ips:
        return False
    for text in source_ips:
        try:
            if ipaddress.ip_address(text) not in network:
                return False
        except ValueError:  # "trustedadvisor.amazonaws.com" and other non-addresses
            return False
    return True


def first_covering(rules: Iterable[SuppressionRule], signal: Signal, now: datetime) -> SuppressionRule | None:
    return next((rule for rule in rules if rule.covers(signal, now)), None)


def validate_cidr(text: str) -> str:
    """Normalised CIDR, or ValueError with a message fit for a person."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError as exc:
        raise ValueError(f"not an IP address or CIDR: {text[:60]!r}") from exc
