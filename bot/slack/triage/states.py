"""The one state table of triage: which action applies from which status.

The store's changes refuse an action from any other status, and the alert shows exactly the buttons
that still apply (SPEC §4), both read from here.
"""

from __future__ import annotations

from bot.slack.ids import Action
from detection.signals import Status

APPLIES_FROM: dict[Action, frozenset[Status]] = {
    Action.ESCALATE: frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED}),
    Action.CONTACT_USER: frozenset({Status.NEW, Status.ESCALATED}),
    Action.SUPPRESS: frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED, Status.ESCALATED, Status.CLOSED}),
    Action.NOT_AN_ISSUE: frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED, Status.ESCALATED}),
}


def applies(action: Action, status: str) -> bool:
    return status in APPLIES_FROM[action]


def buttons_for(status: str) -> tuple[Action, ...]:
    """The alert's buttons in this status, in the order the table lists them."""
    return tuple(action for action, statuses in APPLIES_FROM.items() if status in statuses)
