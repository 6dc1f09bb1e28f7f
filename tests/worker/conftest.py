"""Fixtures the worker's SQS source tests share (test_sqs.py and test_backfill.py): moto's SQS and S3 server."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def moto_url(s3_endpoint):
    """moto's server serves every service it knows: the session's S3 one serves SQS too (queues and buckets
    are named per test)."""
    return s3_endpoint


@pytest.fixture
def sqs_env(aws, moto_url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    return moto_url
