"""PagerDuty's Events API v2: the events sesguard sends, and one POST of one event (no retries here).

Plain `urllib` on purpose: one JSON POST needs no client library, and retrying belongs to the pager's
outbox (`bot.page.pager`), which stores every attempt; a library that retries on its own (the
`pagerduty` package does, on 429 and 5xx) would retry where the store cannot see it.

What PagerDuty documents and the events respect: `routing_key` (32 characters), `event_action`
`trigger` or `resolve`, `dedup_key` at most 255 characters (a signal ID is 19), and for a trigger a
`payload` with `summary` (at most 1,024 characters), `source` and `severity` (`critical`, `error`,
`warning` or `info`). Events are limited to 512 KB: the lists in `custom_details` are capped.
"""

from __future__ import annotations

import http.client
import json
import socket
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bot import __version__
from detection.rule import METADATA

TIMEOUT_SECONDS = 10
SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255
LIST_LIMIT = 20  # items of each list in custom_details
VALUE_LIMIT = 2048  # characters of each value in custom_details (an ARN has at most 2,048)

# sesguard's severity → PagerDuty's.
SEVERITIES = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
# What is unreachable, overloaded or dropping: try again later.
CONNECTION_ERRORS = (urllib.error.URLError, OSError, http.client.HTTPException, socket.timeout)


@dataclass(frozen=True)
class Answer:
    """PagerDuty's answer to one event."""

    status: int
    body: dict
    retry_after: float | None = None

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def rejected(self) -> bool:
        """400: the event itself is invalid; sending it again would be refused again."""
        return self.status == 400

    @property
    def throttled(self) -> bool:
        return self.status == 429

    def describe(self) -> str:
        errors = self.body.get("errors")
        details = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
        message = str(self.body.get("message") or self.body.get("status") or "")
        return f"HTTP {self.status} {message}{': ' + details if details else ''}"[:1000]


def post_event(url: str, event: dict, timeout: float = TIMEOUT_SECONDS) -> Answer:
    """Send one event. Raises one of CONNECTION_ERRORS when PagerDuty cannot be reached."""
    request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json", "User-Agent": f"sesguard/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, _json(response.read()))
    except urllib.error.HTTPError as exc:  # a status outside 2xx: PagerDuty answered
        return Answer(exc.code, _json(exc.read()), _seconds(exc.headers.get("Retry-After")))


def _json(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date instead of seconds: the pager's own backoff applies
        return None


# ── the events ───────────────────────────────────────────────────────────────────────────────────────


def _plain(value: Any, limit: int) -> str:
    """A CloudTrail value for PagerDuty: control and bidi characters shown as `?`, cut to `limit`."""
    shown = "".join("?" if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in str(value))
    return shown if len(shown) <= limit else shown[:limit - 1] + "…"


def _capped(values: list) -> list[str]:
    shown = [_plain(value, VALUE_LIMIT) for value in values[:LIST_LIMIT]]
    return shown + [f"… {len(values) - LIST_LIMIT} more"] if len(values) > LIST_LIMIT else shown


def trigger_event(routing_key: str, signal: Any, why: str, step: Any, link: str | None) -> dict:
    """The trigger of one history step (`step`: its SignalHistory row) of a stored signal (`SignalRow`)."""
    severity = str(signal.severity)
    summary = f"{why}: {METADATA['title']} — {signal.identity} in AWS account {signal.account_id} ({severity})"
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": signal.signal_id[:DEDUP_KEY_LIMIT],
        "payload": {
            "summary": _plain(summary, SUMMARY_LIMIT),
            "source": _plain(f"aws:{signal.account_id}", 255),
            "severity": SEVERITIES.get(severity, "warning"),
            "timestamp": step.at.isoformat(),
            "component": "ses",
            "group": _plain(signal.account_id, 255),
            "class": METADATA["id"],
            "custom_details": {
                "why": why,
                "step": _plain(step.action, 200),
                "by": _plain(step.actor, 200),
                "detail": _plain(step.detail, VALUE_LIMIT),
                "signal_id": signal.signal_id,
                "identity": _plain(signal.identity, VALUE_LIMIT),
                "arn": _plain(signal.arn, VALUE_LIMIT),
                "account_id": _plain(signal.account_id, 64),
                "identity_type": _plain(signal.identity_type, 64),
                "severity": severity,
                "reasons": _capped(signal.reasons),
                "status": signal.status,
                "first_seen": signal.first_seen.isoformat(),
                "last_seen": signal.last_seen.isoformat(),
                "api_calls": _capped(signal.event_names),
                "event_count": signal.event_count,
                "regions": _capped(signal.regions),
                "source_ips": _capped(signal.source_ips),
                "access_key_ids": _capped(signal.access_key_ids),
                "slack_alert": link,
            },
        },
        "client": "sesguard",
    }
    if link:
        event["links"] = [{"href": link, "text": "The alert in Slack"}]
        event["client_url"] = link
    return event


def resolve_event(routing_key: str, signal_id: str) -> dict:
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": signal_id[:DEDUP_KEY_LIMIT]}
