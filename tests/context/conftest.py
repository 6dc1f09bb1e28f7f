"""IAM, STS, IAM Identity Center's admin API and the Identity Store on the session's moto server, over real HTTP,
in the environment boto3 reads; and the Slack app with the Slack stand-in (the `bot` fixture)."""

from __future__ import annotations

import uuid

import boto3
import pytest

from tests.support.local_aws import AWS_NOISE

OWN = "123456789012"  # moto's default account: the credentials' own
OTHER = "222233334444"  # reached through a role in SESGUARD_ROLE_ARNS
READER_ROLE = f"arn:aws:iam::{OTHER}:role/sesguard-reader"


class Aws:
    """IAM and the Identity Store as an administrator sets them up, in the own account or another."""

    def __init__(self) -> None:
        self.iam = boto3.client("iam")

    def iam_in(self, account: str):
        if account == OWN:
            return self.iam
        credentials = boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/admin",
                                                      RoleSessionName="test-admin")["Credentials"]
        return boto3.Session(aws_access_key_id=credentials["AccessKeyId"],
                             aws_secret_access_key=credentials["SecretAccessKey"],
                             aws_session_token=credentials["SessionToken"]).client("iam")

    def user(self, tags: dict[str, str] | None = None, account: str = OWN) -> tuple[str, str]:
        """A new IAM user with one access key: (name, key ID)."""
        name = f"alice-{uuid.uuid4().hex[:8]}"
        iam = self.iam_in(account)
        iam.create_user(UserName=name, Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()])
        return name, iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]

    def role(self, tags: dict[str, str] | None = None, account: str = OWN) -> str:
        name = f"ci-deploy-{uuid.uuid4().hex[:8]}"
        self.iam_in(account).create_role(RoleName=name, AssumeRolePolicyDocument='{"Version": "2012-10-17"}',
                                         Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()])
        return name

    def identity_store_user(self, user_name: str, *emails: str) -> None:
        [instance] = boto3.client("sso-admin").list_instances()["Instances"]
        boto3.client("identitystore").create_user(
            IdentityStoreId=instance["IdentityStoreId"], UserName=user_name, DisplayName=user_name,
            Name={"GivenName": user_name, "FamilyName": "Example"},
            Emails=[{"Value": email, "Primary": index == 0, "Type": "work"} for index, email in enumerate(emails)])


@pytest.fixture
def aws(iam_endpoint, monkeypatch, tmp_path):
    for name in AWS_NOISE:
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ENDPOINT_URL_IAM": iam_endpoint, "AWS_ENDPOINT_URL_STS": iam_endpoint,
                        "AWS_ENDPOINT_URL_SSO_ADMIN": iam_endpoint, "AWS_ENDPOINT_URL_IDENTITYSTORE": iam_endpoint,
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    return Aws()
