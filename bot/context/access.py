"""The AWS sessions the triage context reads through: the signal's account, as polling reaches it (SPEC §10).

One place asks for them, `Accounts.session`, and it goes through the poll's own account access
(`detection.sources.lookup.AccountAccess`: the credentials' own account, a role of SESGUARD_ROLE_ARNS, or the
organisation's role with SESGUARD_ORG_ROLE_NAME; a role assumed with STS and renewed before it expires). The
Identity Store is read with the credentials' own session (`own`): IAM Identity Center lives in the
organisation's management or delegated administrator account, which is where sesguard's own role is.

An `Accounts` lives for one gathering pass: alerts are rare, and a role assumed once per pass and account
costs one STS call, while no credential outlives the work it was assumed for.
"""

from __future__ import annotations

import re
import threading

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.config.settings import Settings
from detection.sources.lookup import AccountAccess, lookup_pacer, role_account
from detection.sources.organizations import member_role_arn
from detection.sources.pulled import SourceError, describe_aws_error
from detection.store import Store

# Lookups are few and the alert is posted already: fail in seconds rather than hang a gathering pass.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15,
                       user_agent_extra="sesguard")


class NoAccess(RuntimeError):
    """sesguard has no credentials for this account, or cannot get them (the reason is the message)."""


class Accounts:
    def __init__(self, settings: Settings, store: Store):
        self.settings, self.store = settings, store
        self.base = boto3.Session()
        self.region = self.base.region_name or settings.aws_regions[0]
        self._own: tuple[str, str] | None = None  # (account, partition)
        self._access: dict[str, AccountAccess] = {}
        self._lock = threading.RLock()  # `session` asks `_identity` while holding it

    def own(self) -> tuple[str, boto3.Session]:
        """The credentials' own account and session."""
        account, _ = self._identity()
        return account, self.base

    def session(self, account_id: str) -> boto3.Session:
        """A session acting in `account_id`; NoAccess saying why there is none."""
        with self._lock:
            access = self._access.get(account_id)
            if access is None:
                access = self._access[account_id] = self._new_access(account_id)
        try:
            return access.session()
        except SourceError as exc:  # the role cannot be assumed
            raise NoAccess(str(exc)) from None

    def _new_access(self, account_id: str) -> AccountAccess:
        own, partition = self._identity()
        pacer = lookup_pacer(self.store)  # paces CloudTrail clients only; the context's IAM calls are paced apart
        if account_id == own:
            return AccountAccess(self.base, self.region, pacer, account_id=own)
        role_arn = next((arn for arn in self.settings.role_arns if role_account(arn) == account_id), None)
        if role_arn is None and self.settings.org_role_name and account_id not in self.settings.accounts_exclude:
            if not re.fullmatch(r"\d{12}", account_id):
                raise NoAccess(f"{account_id[:40]!r} is not an AWS account ID")
            role_arn = member_role_arn(partition, account_id, self.settings.org_role_name)
        if role_arn is None:
            raise NoAccess(f"no access to account {account_id[:40]}: neither the credentials' own ({own}) nor "
                           "reached through a role")
        return AccountAccess(self.base, self.region, pacer, role_arn, account_id)

    def _identity(self) -> tuple[str, str]:
        with self._lock:
            if self._own is None:
                try:
                    answer = self.base.client("sts", region_name=self.region,
                                              config=CLIENT_CONFIG).get_caller_identity()
                except (ClientError, BotoCoreError) as exc:
                    raise NoAccess(f"cannot identify sesguard's own account (sts:GetCallerIdentity): "
                                   f"{describe_aws_error(exc)}") from None
                partition = re.match(r"arn:(aws(?:-[a-z]+)*):", str(answer.get("Arn") or ""))
                self._own = (str(answer.get("Account")), partition[1] if partition else "aws")
            return self._own
