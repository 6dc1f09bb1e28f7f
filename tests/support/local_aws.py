"""The local CloudTrail/STS endpoint in the environment boto3 reads (the `aws` fixture, in tests/conftest.py),
records timed relative to now (the worker polls up to the present), and settings without a `.env`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config.settings import Settings, load_settings
from tests.fakes.cloudtrail_api import FakeCloudTrail
from tests.support import records

OWN_ACCOUNT = "111111111111"
OWN_KEY = "AKIAFAKEOWNACCOUNT01"
# Distinctive, so that the reliability tests can look for it in every output (it must never show up).
OWN_SECRET = "AwSsEcReTkEyNeVeRlOgGeD0123456789abcdefXY"
ROLE_ACCOUNT = "222222222222"
ROLE_ARN = f"arn:aws:iam::{ROLE_ACCOUNT}:role/sesguard-reader"

# What boto3 could otherwise pick up from the machine: profiles, config files, instance metadata.
AWS_NOISE = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ROLE_ARN",
              "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_REGION")


def use_moto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str, services: tuple[str, ...]) -> None:
    """boto3 in this test talks to moto's server for `services` (AWS_ENDPOINT_URL_<SERVICE> names), with test
    credentials and nothing else from the environment or the user's files."""
    for name in AWS_NOISE:
        monkeypatch.delenv(name, raising=False)
    for service in services:
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", endpoint)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)


@dataclass
class LocalAws:
    api: FakeCloudTrail
    url: str
    env: dict[str, str]  # what a subprocess needs to reach it


def subprocess_env(*parts: dict[str, str]) -> dict[str, str]:
    """The test process's environment without AWS leftovers, plus the given variables."""
    env = {k: v for k, v in os.environ.items() if k not in AWS_NOISE and not k.startswith(("SESGUARD_", "SLACK_"))}
    for part in parts:
        env.update(part)
    return env


def worker_settings(**overrides) -> Settings:
    """Settings as the worker reads them, from the given values only (never a developer's `.env`)."""
    return load_settings(_env_file=None, **overrides)


def now() -> datetime:
    return datetime.now(UTC)


def ago(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> str:
    """A CloudTrail eventTime this long before now."""
    moment = now() - timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ses_calls(identity: dict, count: int = 1, *, account: str = OWN_ACCOUNT, region: str = "us-east-1",
              days_ago: float = 0, minutes_ago: float = 1, event_name: str = "GetSendQuota") -> list[dict]:
    """`count` calls one second apart, the newest `minutes_ago` (plus `days_ago`) before now."""
    return [
        records.record(identity, event_name, account=account, region=region,
                       time=ago(days=days_ago, minutes=minutes_ago, seconds=index))
        for index in range(count)
    ]


def user(name: str, account: str = OWN_ACCOUNT) -> dict:
    return records.iam_user(name, account=account)
