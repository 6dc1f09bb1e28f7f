"""The accounts of an AWS organisation (SPEC §7): `organizations:ListAccounts`, from the management account
or a delegated administrator, every page, ACTIVE accounts only; and the role sesguard assumes in each.

ListAccounts answers at most 20 accounts a page (its documented maximum) and is throttled at a few
requests a second per organisation, so botocore's standard retry mode (with its back-off) is kept here:
these are not LookupEvents requests and do not count against its pace.
What comes back is checked before anything is built from it: an `Id` that is not 12 digits is skipped
and counted (it would go into a role ARN sent to STS).
No endpoint is named here: boto3 honours AWS_ENDPOINT_URL_ORGANIZATIONS.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from detection.sources.pulled import SourceError, describe_aws_error

log = logging.getLogger(__name__)

PAGE_SIZE = 20  # ListAccounts' MaxResults maximum
ACTIVE = "ACTIVE"
_ACCOUNT = re.compile(r"\d{12}")
_PARTITION = re.compile(r"aws(-[a-z]+)*")
_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30,
                 user_agent_extra="sesguard")


@dataclass
class Listing:
    active: list[str] = field(default_factory=list)  # account IDs, in the order AWS listed them
    inactive: int = 0  # SUSPENDED, PENDING_CLOSURE, …: not read
    bad: int = 0  # entries without a usable Id


def list_active_accounts(session: boto3.Session, region: str) -> Listing:
    """Every ACTIVE account of the organisation the credentials can list; SourceError when they cannot."""
    client = session.client("organizations", region_name=region, config=_CONFIG)
    listing = Listing()
    try:
        for page in client.get_paginator("list_accounts").paginate(PaginationConfig={"PageSize": PAGE_SIZE}):
            for account in page.get("Accounts") or []:
                _add(listing, account)
    except (ClientError, BotoCoreError) as exc:
        raise SourceError(f"cannot list the organisation's accounts (organizations:ListAccounts): "
                          f"{describe_aws_error(exc)}") from exc
    if listing.bad:
        log.warning("organizations:ListAccounts: %d entries without a 12-digit account Id skipped", listing.bad)
    return listing


def _add(listing: Listing, account: object) -> None:
    if not isinstance(account, dict):
        listing.bad += 1
        return
    account_id = account.get("Id")
    if not isinstance(account_id, str) or not _ACCOUNT.fullmatch(account_id):
        listing.bad += 1
        return
    # `Status` is deprecated in favour of `State` (2025); an answer may carry either or both.
    states = {account.get(name) for name in ("State", "Status") if account.get(name) is not None}
    if states == {ACTIVE}:
        if account_id not in listing.active:
            listing.active.append(account_id)
    else:
        listing.inactive += 1


def member_role_arn(partition: str, account_id: str, role_name: str) -> str:
    """`arn:<partition>:iam::<account>:role/<name>`; the name was checked by the settings."""
    if not _PARTITION.fullmatch(partition) or not _ACCOUNT.fullmatch(account_id):
        raise SourceError(f"cannot build a role ARN for account {account_id[:20]} in partition {partition[:20]}")
    return f"arn:{partition}:iam::{account_id}:role/{role_name}"
