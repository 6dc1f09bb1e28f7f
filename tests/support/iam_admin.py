"""IAM on moto's server as an administrator sets it up for a test: users with keys, roles, tags, in the
credentials' own account or another one (through moto's `admin` role), and the CloudTrail records such
identities leave. Shared by the containment and triage-context tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import boto3

from tests.support.slack_harness import cloudtrail_record

OWN = "123456789012"  # moto's default account: the credentials' own


class IamAdmin:
    """IAM on moto, as an administrator sees it: set-up and checks, in the own account or another."""

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
        iam.create_user(UserName=name, Tags=_tags(tags))
        return name, iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]

    def user_allowed(self, actions: list[str]) -> tuple[str, dict[str, str]]:
        """A new IAM user allowed only `actions` (an inline policy): (name, its access key)."""
        name = f"reader-{uuid.uuid4().hex[:8]}"
        self.iam.create_user(UserName=name)
        self.iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": actions}]}))
        return name, self.iam.create_access_key(UserName=name)["AccessKey"]

    def role(self, tags: dict[str, str] | None = None, account: str = OWN) -> str:
        name = f"ci-deploy-{uuid.uuid4().hex[:8]}"
        self.iam_in(account).create_role(RoleName=name, Tags=_tags(tags),
                                         AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17",
                                                                              "Statement": []}))
        return name


def _tags(tags: dict[str, str] | None) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in (tags or {}).items()]


def user_record(name: str, key: str, account: str = OWN, **fields) -> dict:
    """A CloudTrail record of the IAM user `name` calling with its long-term key `key`."""
    identity = {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": f"arn:aws:iam::{account}:user/{name}",
                "accountId": account, "accessKeyId": key, "userName": name}
    fields.setdefault("when", datetime.now(UTC))
    return cloudtrail_record(identity=identity, account=account, **fields)


def role_record(role: str, account: str = OWN, session: str = "ci-run-42", path: str = "/", **fields) -> dict:
    """A CloudTrail record of a session of the role `role` (at `path`)."""
    identity = {
        "type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}", "accountId": account,
        "accessKeyId": "ASIAEXAMPLE", "sessionContext": {"sessionIssuer": {
            "type": "Role", "principalId": "AROAEXAMPLE", "accountId": account, "userName": role,
            "arn": f"arn:aws:iam::{account}:role{path}{role}"}},
    }
    fields.setdefault("when", datetime.now(UTC))
    return cloudtrail_record(identity=identity, account=account, **fields)
