"""Fixtures the worker's SQS source tests share (test_sqs.py and test_backfill.py): moto's SQS and S3 server."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sqs_env(aws, moto_url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    return moto_url
