"""The follow-on playbook of SPEC §6: what an attacker who enumerated SES does next, as data.

SES enumeration is reconnaissance; the abuse comes after it: sending phishing and spam, leaving the SES
sandbox, verifying sender identities, then keeping the access (new keys, users, policies) and covering
the tracks (CloudTrail). A call of this list by the same identity after its enumeration makes the signal
`critical`. Each entry names its event source as well as its name, as the detection rule does: only the
service's own call counts (`SendEmail` is SES's, `CreateAccessKey` IAM's).
"""

from __future__ import annotations

from dataclasses import dataclass

SES, IAM, CLOUDTRAIL = "ses.amazonaws.com", "iam.amazonaws.com", "cloudtrail.amazonaws.com"


@dataclass(frozen=True)
class Move:
    event_source: str
    event_name: str
    why: str  # what the call does for an attacker, in a few words


PLAYBOOK: tuple[Move, ...] = (
    # Abuse of SES (v1 and v2 both log ses.amazonaws.com)
    Move(SES, "SendEmail", "sends mail"),
    Move(SES, "SendRawEmail", "sends mail"),
    Move(SES, "SendBulkEmail", "sends mail in bulk"),
    Move(SES, "UpdateAccountSendingEnabled", "switches sending on"),
    Move(SES, "PutAccountDetails", "asks to leave the SES sandbox"),
    Move(SES, "CreateEmailIdentity", "adds a sender identity"),
    Move(SES, "VerifyEmailIdentity", "adds a sender address"),
    Move(SES, "VerifyDomainIdentity", "adds a sender domain"),
    Move(SES, "PutAccountSendingAttributes", "changes the account's sending"),
    # Persistence: access that survives the stolen key being revoked
    Move(IAM, "CreateAccessKey", "creates an access key"),
    Move(IAM, "CreateUser", "creates a user"),
    Move(IAM, "CreateLoginProfile", "gives a user a console password"),
    Move(IAM, "UpdateLoginProfile", "changes a console password"),
    Move(IAM, "AttachUserPolicy", "grants a user a policy"),
    Move(IAM, "PutUserPolicy", "writes a user's inline policy"),
    Move(IAM, "AttachRolePolicy", "grants a role a policy"),
    Move(IAM, "UpdateAssumeRolePolicy", "changes who may assume a role"),
    # Defence evasion: the audit trail itself
    Move(CLOUDTRAIL, "StopLogging", "stops a trail"),
    Move(CLOUDTRAIL, "DeleteTrail", "deletes a trail"),
)

_BY_CALL = {(move.event_source, move.event_name): move for move in PLAYBOOK}


def move_of(event_source: str, event_name: str) -> Move | None:
    """The playbook entry of a call, or None when the call is not a follow-on move."""
    return _BY_CALL.get((event_source, event_name))
