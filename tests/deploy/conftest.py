"""The deploy/ templates on moto's CloudFormation (the session's moto server, which serves every service on one
port): each test deploys into accounts and names of its own, so tests never meet on the shared server."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import boto3
import pytest

from tests.support.deploy_stacks import MOTO_SERVICES


@pytest.fixture
def moto_aws(s3_endpoint, monkeypatch, tmp_path) -> str:
    """The environment boto3 reads, every service sesguard and the templates use pointed at moto's server."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for service in MOTO_SERVICES:
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", s3_endpoint)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def fresh_account(moto_aws) -> str:
    """An account nobody else on the shared server uses (moto acts in the account of an assumed role)."""
    return str(random.randrange(10**11, 10**12))


@pytest.fixture
def deploy_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture
def admin_session(fresh_account) -> boto3.Session:
    from tests.support.deploy_stacks import session_in

    return session_in(fresh_account, "deployer")
