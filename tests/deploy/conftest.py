"""The deploy/ templates on moto's CloudFormation (the session's moto server, which serves every service on one
port): each test deploys into accounts and names of its own, so tests never meet on the shared server."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import boto3
import pytest

from tests.support.deploy_stacks import MOTO_SERVICES
from tests.support.local_aws import use_moto


@pytest.fixture
def moto_aws(s3_endpoint, monkeypatch, tmp_path) -> str:
    """The environment boto3 reads, every service sesguard and the templates use pointed at moto's server."""
    use_moto(monkeypatch, tmp_path, s3_endpoint, MOTO_SERVICES)
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
