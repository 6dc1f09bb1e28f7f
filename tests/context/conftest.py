"""IAM, STS, IAM Identity Center's admin API and the Identity Store on the session's moto server, over real HTTP,
in the environment boto3 reads; and the Slack app with the Slack stand-in (the `bot` fixture)."""

from __future__ import annotations

import boto3
import pytest

from tests.support.iam_admin import IamAdmin
from tests.support.local_aws import use_moto

OTHER = "222233334444"  # reached through a role in SESGUARD_ROLE_ARNS
READER_ROLE = f"arn:aws:iam::{OTHER}:role/sesguard-reader"


class Aws(IamAdmin):
    """IAM and the Identity Store as an administrator sets them up."""

    def identity_store_user(self, user_name: str, *emails: str) -> None:
        [instance] = boto3.client("sso-admin").list_instances()["Instances"]
        boto3.client("identitystore").create_user(
            IdentityStoreId=instance["IdentityStoreId"], UserName=user_name, DisplayName=user_name,
            Name={"GivenName": user_name, "FamilyName": "Example"},
            Emails=[{"Value": email, "Primary": index == 0, "Type": "work"} for index, email in enumerate(emails)])


@pytest.fixture
def aws(iam_endpoint, monkeypatch, tmp_path):
    use_moto(monkeypatch, tmp_path, iam_endpoint, ("IAM", "STS", "SSO_ADMIN", "IDENTITYSTORE"))
    return Aws()
