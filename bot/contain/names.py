"""The names containment sends to IAM, read from a signal and checked against AWS's documented patterns.

Every one of them came from CloudTrail, and CloudTrail input can be forged (a writable trail bucket, a
hostile file given to `scan --db`). So no user name, role name, access key ID or account ID reaches an
IAM call unless it matches what IAM itself allows (IAM API reference: `userNameType` and `roleNameType`
`[\\w+=,.@-]+`, 1–64 characters; `pathType` `/` or `/…/` of printable ASCII, at most 512; `accessKeyIdType`;
account IDs of 12 digits), and unless it names the account the alert is about. Anything else is
`Refused`, with a message that says what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from detection.record import is_identity_center_identity

# ASCII only: IAM's `\w` is [A-Za-z0-9_], not Python's Unicode `\w`.
_NAME = r"[A-Za-z0-9_+=,.@-]{1,64}"
_PATH = r"/(?:[\x21-\x7e]*/)?"
_PARTITION = r"aws(?:-cn|-us-gov|-iso(?:-[a-z])?|-eusc)?"
ACCOUNT_ID = re.compile(r"\d{12}")
LONG_TERM_ACCESS_KEY_ID = re.compile(r"AKIA[A-Z0-9]{16}")
_IAM = rf"arn:(?P<partition>{_PARTITION}):iam::(?P<account>\d{{12}})"
USER_ARN = re.compile(rf"{_IAM}:user(?P<path>{_PATH})(?P<name>{_NAME})")
ROLE_ARN = re.compile(rf"{_IAM}:role(?P<path>{_PATH})(?P<name>{_NAME})")
ASSUMED_ROLE_ARN = re.compile(rf"arn:(?P<partition>{_PARTITION}):sts::(?P<account>\d{{12}}):assumed-role/"
                              rf"(?P<name>{_NAME})/(?P<session>[A-Za-z0-9_+=,.@-]{{2,64}})")
PATH_LIMIT = 512


class Refused(ValueError):
    """A value from CloudTrail that no IAM call may carry; the message says which and why."""


@dataclass(frozen=True)
class IamUser:
    partition: str
    account_id: str
    name: str


@dataclass(frozen=True)
class IamRole:
    partition: str
    account_id: str
    name: str


def _shown(value: str, limit: int = 120) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


def account_of_alert(account_id: str) -> str:
    if not ACCOUNT_ID.fullmatch(account_id):
        raise Refused(f"the alert's account {_shown(account_id, 40)!r} is not a 12-digit AWS account ID")
    return account_id


def _same_account(arn_account: str, alert_account: str, what: str) -> None:
    if arn_account != alert_account:
        raise Refused(f"the {what} belongs to account {arn_account}, not to the alert's account {alert_account}")


def iam_user(arn: str, alert_account: str) -> IamUser:
    """The IAM user an `arn:…:iam::<account>:user/<path/><name>` names, in the alert's account."""
    account = account_of_alert(alert_account)
    match = USER_ARN.fullmatch(arn)
    if match is None or len(match["path"]) > PATH_LIMIT:
        raise Refused(f"{_shown(arn)!r} is not an IAM user ARN with a valid user name "
                      f"(1 to 64 of A-Z a-z 0-9 _+=,.@-)")
    _same_account(match["account"], account, "user")
    return IamUser(match["partition"], account, match["name"])


def long_term_keys(access_key_ids: list[str]) -> list[str]:
    """The signal's long-term keys (`AKIA…`), each checked; temporary `ASIA…` keys are not the user's to deactivate."""
    keys = sorted({key for key in access_key_ids if isinstance(key, str) and key.startswith("AKIA")})
    for key in keys:
        if not LONG_TERM_ACCESS_KEY_ID.fullmatch(key):
            raise Refused(f"{_shown(key, 40)!r} is not an AWS access key ID (AKIA and 16 of A-Z 0-9)")
    return keys


def iam_role(identity: str, arn: str, alert_account: str) -> IamRole:
    """The role behind an assumed-role identity: from its session ARN
    (`arn:…:sts::<account>:assumed-role/<name>/<session>`), cross-checked with the role ARN the identity
    key holds (`arn:…:iam::<account>:role/<path/><name>`)."""
    account = account_of_alert(alert_account)
    session = ASSUMED_ROLE_ARN.fullmatch(arn)
    if session is None:
        raise Refused(f"{_shown(arn)!r} is not an assumed-role ARN with a valid role name "
                      f"(1 to 64 of A-Z a-z 0-9 _+=,.@-)")
    _same_account(session["account"], account, "role")
    if identity.startswith("arn:") and ":role/" in identity:
        role = ROLE_ARN.fullmatch(identity)
        if role is None or len(role["path"]) > PATH_LIMIT:
            raise Refused(f"{_shown(identity)!r} is not an IAM role ARN with a valid role name")
        if (role["account"], role["name"]) != (session["account"], session["name"]):
            raise Refused(f"the role ARN {_shown(identity)!r} does not name the role of the session {_shown(arn)!r}")
    return IamRole(session["partition"], account, session["name"])


def is_identity_center_role(identity: str, arn: str) -> bool:
    """By the role's path when the identity is the role's ARN, as detection decides (a name is not a path)."""
    return is_identity_center_identity(identity, arn)
