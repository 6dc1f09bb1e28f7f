"""Containment in an organisation's member account (SPEC §6 with §7): the IAM client acts there through
SESGUARD_ORG_ROLE_NAME, as the poll reads there; moto's IAM and STS over real HTTP."""

from __future__ import annotations

import uuid

import boto3
import pytest

from bot.contain.access import NoAccess, iam_client
from tests.support.local_aws import worker_settings

OWN = "123456789012"  # moto's default account: the credentials' own
MEMBER = "444455556666"


@pytest.fixture
def moto_iam(iam_endpoint, monkeypatch, tmp_path):
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ENDPOINT_URL_IAM": iam_endpoint, "AWS_ENDPOINT_URL_STS": iam_endpoint,
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)


def test_a_member_account_is_reached_through_the_organisation_role(moto_iam):
    settings = worker_settings(org_role_name="sesguard-responder")
    name = f"made-in-member-{uuid.uuid4().hex[:8]}"
    iam_client(MEMBER, settings).create_user(UserName=name)
    member_users = [u["UserName"] for u in iam_client(MEMBER, settings).list_users()["Users"]]
    own_users = [u["UserName"] for u in boto3.client("iam").list_users()["Users"]]
    assert name in member_users and name not in own_users
    assert boto3.client("sts").get_caller_identity()["Account"] == OWN


def test_an_excluded_account_or_no_organisation_role_means_no_access(moto_iam):
    for settings in (worker_settings(org_role_name="sesguard-responder", accounts_exclude=MEMBER), worker_settings()):
        with pytest.raises(NoAccess, match=f"no access to account {MEMBER}"):
            iam_client(MEMBER, settings)
