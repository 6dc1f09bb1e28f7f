"""A signal: the burst of SES enumeration calls by one new identity, with its severity (SPEC §1)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from detection.record import Call, format_time

CRITICAL, HIGH, MEDIUM, LOW = "critical", "high", "medium", "low"
# Least to most severe: SESGUARD_AUTO_INVESTIGATE names the lowest severity investigated automatically.
SEVERITIES = (LOW, MEDIUM, HIGH, CRITICAL)
# User agents of attack-simulation tools (`SESGUARD_EXERCISE_USER_AGENTS`): Stratus Red Team's detonations
# send `stratus-red-team_<uuid>`. Their calls still alert, only a person decides an exercise was authorised.
EXERCISE_USER_AGENTS = ("stratus-red-team_",)


class Status(StrEnum):
    """Where the triage of a signal stands (`signals.status`). Detection sets `new` or `suppressed`;
    the Slack triage moves it on (`bot.triage.states` says which action applies from which)."""

    NEW = "new"
    CONTACTING = "contacting"  # the person behind the identity was asked
    CONFIRMED = "confirmed"  # the person said it was them
    ESCALATED = "escalated"
    CLOSED = "closed"  # not an issue
    SUPPRESSED = "suppressed"


def signal_id_for(account_id: str, identity: str, first_seen: datetime) -> str:
    """Deterministic, so that two processes detecting the same occurrence store one signal."""
    digest = hashlib.sha256(f"{account_id}\0{identity}\0{first_seen.isoformat()}".encode()).hexdigest()
    return "sg-" + digest[:16]


@dataclass
class Signal:
    signal_id: str
    account_id: str
    identity: str
    identity_type: str
    arn: str
    first_seen: datetime
    last_seen: datetime
    event_names: list[str] = field(default_factory=list)
    event_count: int = 0
    regions: list[str] = field(default_factory=list)
    source_ips: list[str] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)
    access_key_ids: list[str] = field(default_factory=list)
    error_codes: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    # Facts behind the severity, kept so that a signal grown by later calls is scored again.
    root_caller: bool = False
    long_term_keys_outside_console: list[str] = field(default_factory=list)
    all_from_console: bool = True
    exercise_tool: bool = False
    # What an investigation (SPEC §6) found the identity doing after its enumeration, e.g. SendEmail:
    # set by the investigation, never by detection, and it makes the signal critical.
    follow_on_abuse: list[str] = field(default_factory=list)
    status: str = Status.NEW.value
    suppression_id: int | None = None
    # The calls added in this evaluation (not stored: the store links each call's row to its signal).
    joined: list[Call] = field(default_factory=list, init=False, repr=False, compare=False)

    @classmethod
    def start(cls, call: Call, exercise_user_agents: tuple[str, ...] = EXERCISE_USER_AGENTS) -> Signal:
        signal = cls(
            signal_id=signal_id_for(call.account_id, call.identity, call.event_time),
            account_id=call.account_id,
            identity=call.identity,
            identity_type=call.identity_type,
            arn=call.arn,
            first_seen=call.event_time,
            last_seen=call.event_time,
        )
        signal.add(call, exercise_user_agents)
        return signal

    def add(self, call: Call, exercise_user_agents: tuple[str, ...] = EXERCISE_USER_AGENTS) -> None:
        """One more call of the burst. Each call is added once: detection hands over each record once
        (`scan.distinct`, `Store.new_calls`), and two records under one eventID are two calls."""
        self.event_count += 1
        self.event_ids.append(call.event_id)
        self.joined.append(call)
        if call.event_time < self.first_seen:  # delivered late, in a later batch: it is the first call now
            self.arn, self.identity_type = call.arn, call.identity_type
        self.first_seen = min(self.first_seen, call.event_time)
        self.last_seen = max(self.last_seen, call.event_time)
        _insert(self.event_names, call.event_name)
        _insert(self.regions, call.region)
        _insert(self.source_ips, call.source_ip)
        _insert(self.user_agents, call.user_agent)
        _insert(self.access_key_ids, call.access_key_id)
        _insert(self.error_codes, call.error_code)
        self.root_caller = self.root_caller or call.identity_type == "Root"
        if call.long_term_key and not call.from_console:
            _insert(self.long_term_keys_outside_console, call.access_key_id)
        self.all_from_console = self.all_from_console and call.from_console
        self.exercise_tool = self.exercise_tool or call.user_agent.startswith(exercise_user_agents)

    @property
    def reasons(self) -> list[str]:
        """Every severity condition that holds, in words: an investigation's finding first."""
        reasons = []
        if self.root_caller:
            reasons.append("the caller is the account's root user")
        for key in self.long_term_keys_outside_console:
            reasons.append(f"long-term access key {key} used outside a console session")
        if len(self.regions) >= 2:
            reasons.append(f"calls in {len(self.regions)} regions: {', '.join(self.regions)}")
        if not reasons:
            if self.all_from_console:
                reasons.append("every call came from an AWS console session")
            else:
                reasons.append("calls made with programmatic credentials, outside the console")
        if self.exercise_tool:  # said, never decided: the severity stays what the calls earned
            reasons.append("red-team exercise tool")
        if self.follow_on_abuse:
            reasons.insert(0, f"follow-on abuse after the enumeration: {', '.join(self.follow_on_abuse)}")
        return reasons

    @property
    def severity(self) -> str:
        if self.follow_on_abuse:
            return CRITICAL
        if self.root_caller or self.long_term_keys_outside_console or len(self.regions) >= 2:
            return HIGH
        return LOW if self.all_from_console else MEDIUM

    def to_dict(self) -> dict:
        """The fields of SPEC §1, in JSON-ready form (times as CloudTrail writes them)."""
        return {
            "signal_id": self.signal_id,
            "account_id": self.account_id,
            "identity": self.identity,
            "identity_type": self.identity_type,
            "arn": self.arn,
            "first_seen": format_time(self.first_seen),
            "last_seen": format_time(self.last_seen),
            "event_names": list(self.event_names),
            "event_count": self.event_count,
            "regions": list(self.regions),
            "source_ips": list(self.source_ips),
            "user_agents": list(self.user_agents),
            "access_key_ids": list(self.access_key_ids),
            "error_codes": list(self.error_codes),
            "severity": self.severity,
            "reasons": self.reasons,
            "event_ids": list(self.event_ids),
            "status": self.status,
        }


def _insert(values: list[str], value: str) -> None:
    """Keep `values` sorted and unique; empty values are not facts."""
    if value and value not in values:
        values.append(value)
        values.sort()
