"""Revoke role sessions: deny every session of the role behind an assumed-role identity issued before now.

Exactly what the IAM console's "Revoke active sessions" does: an inline policy named
`AWSRevokeOlderSessions` on the role, denying every action on every resource when `aws:TokenIssueTime`
is before the moment of revocation (`DateLessThan`). Sessions started afterwards are not affected.
IAM calls (in the role's account): `iam:GetRolePolicy`, to see whether the role is already revoked
(a policy of exactly the console's shape with a time at or after the signal's last call covers every
session that made those calls: said so, not redone), then `iam:PutRolePolicy`, which replaces an older
revocation, or a policy of that name in any other shape (a decoy), as the console does.

IAM Identity Center's roles cannot be changed in IAM (their sessions are revoked in Identity Center),
and service-linked roles cannot be revoked at all (sesguard never alerts on those): the action does
not apply to either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError

from bot.contain import names
from bot.contain.action import ALREADY, DONE, FAILED, Confirmation, HistoryActions, Outcome
from detection.record import BadRecord, parse_time
from detection.sources.pulled import describe_aws_error

KEY = "revoke_role_sessions"
HISTORY = HistoryActions(done="role sessions revoked", already="role sessions already revoked",
                         failed="role session revocation failed")
POLICY_NAME = "AWSRevokeOlderSessions"
CONDITION_KEY = "aws:TokenIssueTime"


@dataclass(frozen=True)
class Sessions:
    role: names.IamRole
    last_call: datetime  # the signal's last call: a revocation at or after it covers every session that made it

    def describe(self, first_word: str = "role") -> str:
        return f"{first_word} {self.role.name} in account {self.role.account_id}"


def applies(signal) -> bool:
    """An assumed role's signal, unless the role is IAM Identity Center's."""
    return signal.identity_type == "AssumedRole" and not names.is_identity_center_role(signal.identity, signal.arn)


def target(signal) -> Sessions:
    return Sessions(names.iam_role(signal.identity, signal.arn, signal.account_id), signal.last_seen)


def confirmation(sessions: Sessions) -> Confirmation:
    return Confirmation(
        "Revoke role sessions?",
        f"Adds the inline policy {POLICY_NAME} to {sessions.describe()} (iam:PutRolePolicy): every session of "
        f"the role issued before now is denied every action. Sessions started afterwards work as before.",
        "Revoke sessions",
    )


def policy_time(moment: datetime) -> str:
    """`2024-10-10T09:43:48.085Z`, as the console writes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def revocation_policy(moment: datetime) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {CONDITION_KEY: policy_time(moment)}},
        }],
    }


def revoked_before(document: dict | str) -> datetime | None:
    """The time before which a revocation policy denies sessions; None when the document is not one.

    Only the exact shape the console writes is a revocation: one statement (a Sid allowed) denying `*` on
    `*` with the single condition `DateLessThan` on `aws:TokenIssueTime` and one time. Whoever may put inline
    policies on the role may plant a policy of that name with a late date and a second condition that never
    holds (or another operator, key or element): read by its date alone it looked like a revocation, and the
    sessions kept working. Anything else is no revocation, and is overwritten."""
    if isinstance(document, str):  # the API's URL-encoded JSON, when the SDK has not decoded it
        try:
            document = json.loads(unquote(document))
        except ValueError:
            return None
    if not isinstance(document, dict) or not set(document) <= {"Version", "Statement"}:
        return None
    statements = document.get("Statement")
    statements = [statements] if isinstance(statements, dict) else statements
    if not isinstance(statements, list) or len(statements) != 1:
        return None
    [statement] = statements
    if not isinstance(statement, dict) or not set(statement) - {"Sid"} == {"Effect", "Action", "Resource", "Condition"}:
        return None
    if statement["Effect"] != "Deny" or not (_everything(statement["Action"]) and _everything(statement["Resource"])):
        return None
    condition = statement["Condition"]
    if not isinstance(condition, dict) or list(condition) != ["DateLessThan"]:
        return None
    before = condition["DateLessThan"]
    if not isinstance(before, dict) or len(before) != 1:
        return None
    [(key, value)] = before.items()
    if not isinstance(key, str) or key.lower() != CONDITION_KEY.lower():
        return None
    value = value[0] if isinstance(value, list) and len(value) == 1 else value
    try:
        return parse_time(value)
    except BadRecord:
        return None


def _everything(value) -> bool:
    return value == "*" or value == ["*"]


def contain(sessions: Sessions, iam, now: datetime) -> Outcome:
    role = sessions.role.name
    try:
        existing = iam.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)["PolicyDocument"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
            return _failed(sessions, "iam:GetRolePolicy", exc)
        existing = None
    except BotoCoreError as exc:
        return _failed(sessions, "iam:GetRolePolicy", exc)
    cutoff = revoked_before(existing) if existing is not None else None
    if cutoff is not None and cutoff >= sessions.last_call:
        return Outcome(ALREADY, f"{sessions.describe('Role')} already denies every session issued before "
                                f"{_when(cutoff)} ({POLICY_NAME}), which covers the alert's last call at "
                                f"{_when(sessions.last_call)}. Nothing was changed.")
    try:
        iam.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(revocation_policy(now)))
    except (ClientError, BotoCoreError) as exc:
        return _failed(sessions, "iam:PutRolePolicy", exc)
    replaced = f" It replaces the earlier {POLICY_NAME}, which covered sessions issued before {_when(cutoff)}." \
        if cutoff is not None else f" It replaces an earlier {POLICY_NAME} that was not a revocation." \
        if existing is not None else ""
    return Outcome(DONE, f"{sessions.describe('Role')} now denies every session issued before {_when(now)}: "
                         f"inline policy {POLICY_NAME} (aws:TokenIssueTime, DateLessThan).{replaced}")


def _failed(sessions: Sessions, call: str, error: Exception) -> Outcome:
    return Outcome(FAILED, f"Could not revoke the sessions of {sessions.describe()} ({call}): "
                           f"{describe_aws_error(error)}. Nothing was changed.")


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
