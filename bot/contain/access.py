"""An IAM client in the signal's account: with the credentials' own account, or through its role in
SESGUARD_ROLE_ARNS or, with SESGUARD_ORG_ROLE_NAME, the organisation's role (assumed with STS for the one
action, as the poll reaches that account).

No endpoint is named here: boto3 honours AWS_ENDPOINT_URL_IAM and AWS_ENDPOINT_URL_STS. IAM is global
within a partition; the first of AWS_REGIONS (or the credentials' region) picks the partition's endpoint.
"""

from __future__ import annotations

import boto3
from botocore.config import Config

from bot.config.settings import Settings
from detection.sources.lookup import role_account
from detection.sources.organizations import member_role_arn
from detection.sources.pulled import SourceError

SESSION_NAME = "sesguard-respond"
SESSION_SECONDS = 900  # the minimum: the credentials serve one action
# A containment click waits for these calls: fail in seconds rather than hang, and say so in the thread.
_CONFIG = Config(retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=15,
                 user_agent_extra="sesguard")


class NoAccess(RuntimeError):
    """sesguard has no credentials for the signal's account."""


def iam_client(account_id: str, settings: Settings):
    """A boto3 IAM client acting in `account_id`, or NoAccess saying why there is none."""
    base = boto3.Session()
    region = base.region_name or settings.aws_regions[0]
    identity = base.client("sts", region_name=region, config=_CONFIG).get_caller_identity()
    own = identity["Account"]
    if account_id == own:
        return base.client("iam", region_name=region, config=_CONFIG)
    role_arn = next((arn for arn in settings.role_arns if role_account(arn) == account_id), None)
    if role_arn is None and settings.org_role_name and account_id not in settings.accounts_exclude:
        # an organisation's member account (SPEC §7) is reached through the role the poll assumes there
        partition = str(identity.get("Arn", "arn:aws:")).split(":")[1] or "aws"
        try:
            role_arn = member_role_arn(partition, account_id, settings.org_role_name)
        except SourceError as exc:
            raise NoAccess(str(exc)) from None
    if role_arn is None:
        raise NoAccess(f"sesguard has no access to account {account_id}: its credentials are account {own}'s, "
                       f"and no role in SESGUARD_ROLE_ARNS is in account {account_id}")
    credentials = base.client("sts", region_name=region, config=_CONFIG).assume_role(
        RoleArn=role_arn, RoleSessionName=SESSION_NAME, DurationSeconds=SESSION_SECONDS)["Credentials"]
    session = boto3.Session(aws_access_key_id=credentials["AccessKeyId"],
                            aws_secret_access_key=credentials["SecretAccessKey"],
                            aws_session_token=credentials["SessionToken"], region_name=region)
    return session.client("iam", config=_CONFIG)
