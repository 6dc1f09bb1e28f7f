"""Deactivate access key: the signal's long-term access keys (`AKIA…`) of an IAM user, set to Inactive.

IAM calls (in the user's account): `iam:ListAccessKeys` on the user, to see which keys are already
inactive (those are said so, not redone), then `iam:UpdateAccessKey` with `Status=Inactive` for each
active one. The user name is the last segment of the user's ARN. A key that is not among the user's
keys (deleted since, or not theirs) is reported and left alone; IAM would refuse it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from bot.contain import names
from bot.contain.action import ALREADY, DONE, FAILED, TEXT_LIMIT, Confirmation, HistoryActions, Outcome
from detection.sources.pulled import describe_aws_error

KEY = "deactivate_access_key"
HISTORY = HistoryActions(done="access key deactivated", already="access key already inactive",
                         failed="access key deactivation failed")


@dataclass(frozen=True)
class Keys:
    user: names.IamUser
    key_ids: tuple[str, ...]

    def describe(self) -> str:
        """e.g. "access key AKIA… of IAM user alice in account 111122223333"."""
        keys = " and ".join(self.key_ids) if len(self.key_ids) <= 2 else ", ".join(self.key_ids)
        noun = "access key" if len(self.key_ids) == 1 else "access keys"
        return f"{noun} {keys} of IAM user {self.user.name} in account {self.user.account_id}"


def applies(signal) -> bool:
    """An IAM user's signal with at least one long-term key (before any check of the values)."""
    return signal.identity_type == "IAMUser" and any(str(key).startswith("AKIA") for key in signal.access_key_ids)


def target(signal) -> Keys:
    """The user and keys to deactivate, checked (`names.Refused` when a value is not what IAM allows)."""
    return Keys(names.iam_user(signal.arn, signal.account_id), tuple(names.long_term_keys(signal.access_key_ids)))


def confirmation(keys: Keys) -> Confirmation:
    title = "Deactivate access key?" if len(keys.key_ids) == 1 else f"Deactivate {len(keys.key_ids)} access keys?"
    text = (f"Sets {keys.describe()} to Inactive (iam:UpdateAccessKey). Calls signed with "
            f"{'it' if len(keys.key_ids) == 1 else 'them'} fail from then on; IAM can make "
            f"{'it' if len(keys.key_ids) == 1 else 'them'} active again.")
    if len(text) > TEXT_LIMIT:  # many keys: name the user and account, the alert lists the keys
        text = (f"Sets all {len(keys.key_ids)} access keys in the alert's Access keys field, of IAM user "
                f"{keys.user.name} in account {keys.user.account_id}, to Inactive (iam:UpdateAccessKey). "
                f"Calls signed with them fail from then on.")
    return Confirmation(title, text, "Deactivate")


def contain(keys: Keys, iam, now: datetime) -> Outcome:
    """Deactivate the keys that are active; say which were inactive already, and which are not the user's."""
    user = keys.user.name
    try:
        status = {key["AccessKeyId"]: key["Status"]
                  for page in iam.get_paginator("list_access_keys").paginate(UserName=user)
                  for key in page["AccessKeyMetadata"]}
    except (ClientError, BotoCoreError) as exc:
        return Outcome(FAILED, f"Could not list the access keys of IAM user {user} in account {keys.user.account_id} "
                               f"(iam:ListAccessKeys): {describe_aws_error(exc)}. Nothing was changed.")
    deactivated: list[str] = []
    inactive: list[str] = []
    unknown: list[str] = []
    for key in keys.key_ids:
        if key not in status:
            unknown.append(key)
        elif status[key] == "Inactive":
            inactive.append(key)
        else:
            try:
                iam.update_access_key(UserName=user, AccessKeyId=key, Status="Inactive")
            except (ClientError, BotoCoreError) as exc:
                done = _sentences(keys, deactivated, inactive, unknown)
                return Outcome(FAILED, f"Could not deactivate {key} of IAM user {user} (iam:UpdateAccessKey): "
                                       f"{describe_aws_error(exc)}.{' ' + done if done else ''}")
            deactivated.append(key)
    kind = DONE if deactivated else ALREADY if inactive else FAILED
    return Outcome(kind, _sentences(keys, deactivated, inactive, unknown))


def _sentences(keys: Keys, deactivated: list[str], inactive: list[str], unknown: list[str]) -> str:
    user, account = keys.user.name, keys.user.account_id
    said = []
    if deactivated:
        said.append(f"{' and '.join(deactivated)} of IAM user {user} in account {account} "
                    f"{'is' if len(deactivated) == 1 else 'are'} now Inactive.")
    if inactive:
        said.append(f"{' and '.join(inactive)} of IAM user {user} {'was' if len(inactive) == 1 else 'were'} "
                    f"already inactive; nothing was changed there.")
    if unknown:
        said.append(f"{' and '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not among the access keys "
                    f"of IAM user {user} in account {account} (deleted since?); left alone.")
    return " ".join(said)
