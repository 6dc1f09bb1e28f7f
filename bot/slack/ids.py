"""Every identifier the Slack app shares with Slack: action, modal, block and metadata IDs.

Buttons and modals are matched on these, so they live in one place and never change meaning. The triage
states are `detection.signals.Status` (the store writes them too).
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """`action_id` of each button."""

    ESCALATE = "sesguard.escalate"
    CONTACT_USER = "sesguard.contact_user"
    SUPPRESS = "sesguard.suppress"
    NOT_AN_ISSUE = "sesguard.not_an_issue"
    ANSWER_YES = "sesguard.answer_yes"  # in the DM to the contacted person
    ANSWER_NO = "sesguard.answer_no"
    # containment (SPEC §6, with SESGUARD_RESPONSE_ACTIONS)
    DEACTIVATE_ACCESS_KEY = "sesguard.deactivate_access_key"
    REVOKE_ROLE_SESSIONS = "sesguard.revoke_role_sessions"
    # investigation (SPEC §6)
    INVESTIGATE = "sesguard.investigate"
    # the triage desk (SPEC §8): a closed or suppressed alert back to new
    REOPEN = "sesguard.reopen"
    EXTEND_SUPPRESSION = "sesguard.extend_suppression"  # in the reminder DM to a suppression's author


class View(StrEnum):
    """`callback_id` of each modal."""

    SUPPRESS = "sesguard.suppress_modal"
    PICK_PERSON = "sesguard.pick_person_modal"


class Field(StrEnum):
    """`block_id` (and `action_id`) of each input in the modals."""

    SCOPE = "scope"
    DURATION = "duration"
    REASON = "reason"
    PERSON = "person"
    REMEMBER = "remember"


SCOPE_ACCOUNT = "account"  # this identity in this account
SCOPE_EVERYWHERE = "everywhere"  # this identity in every account

# Suppression durations offered in the modal, in days (None: no expiry).
DURATIONS: dict[str, float | None] = {"1d": 1, "7d": 7, "30d": 30, "never": None}

# Slack message metadata of an alert: finds a post again after its answer was lost.
ALERT_EVENT_TYPE = "sesguard_alert"
# … and of an investigation's messages in the alert's thread (its summary, its escalation line).
INVESTIGATION_EVENT_TYPE = "sesguard_investigation"

COMMAND = "/sesguard"
