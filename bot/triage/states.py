"""The one state table of triage: which action applies from which status.

The store's changes refuse an action from any other status, and the alert (and the App Home, SPEC §8)
shows exactly the buttons that still apply (SPEC §4), both read from here. Containment (SPEC §6) applies
while an alert is open; its buttons are the respond room's (`bot.contain.blocks`), shown with
SESGUARD_RESPONSE_ACTIONS.
"""

from __future__ import annotations

from bot.slack.ids import Action
from detection.signals import Status

OPEN = frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED, Status.ESCALATED})

APPLIES_FROM: dict[Action, frozenset[Status]] = {
    Action.ESCALATE: frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED}),
    Action.CONTACT_USER: frozenset({Status.NEW, Status.ESCALATED}),
    Action.SUPPRESS: frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED, Status.ESCALATED, Status.CLOSED}),
    Action.NOT_AN_ISSUE: frozenset({Status.NEW, Status.CONTACTING, Status.CONFIRMED, Status.ESCALATED}),
    Action.DEACTIVATE_ACCESS_KEY: OPEN,
    Action.REVOKE_ROLE_SESSIONS: OPEN,
    # Investigating changes no status, and a closed alert's identity may still be abusing the account:
    # what it finds must reach the channel. A suppression, though, says "stop telling us" (and a
    # suppressed alert shows no buttons): its identity is still reached by /sesguard investigate.
    Action.INVESTIGATE: frozenset(set(Status) - {Status.SUPPRESSED}),
    # Back to `new` (SPEC §8), from where triage ended; the suppression that covered it stays as it is.
    Action.REOPEN: frozenset({Status.CLOSED, Status.SUPPRESSED}),
}
CONTAINMENT = frozenset({Action.DEACTIVATE_ACCESS_KEY, Action.REVOKE_ROLE_SESSIONS})


def applies(action: Action, status: str) -> bool:
    return status in APPLIES_FROM[action]


def buttons_for(status: str) -> tuple[Action, ...]:
    """The alert's triage buttons in this status, in the order the table lists them."""
    return tuple(action for action, statuses in APPLIES_FROM.items()
                 if status in statuses and action not in CONTAINMENT)
