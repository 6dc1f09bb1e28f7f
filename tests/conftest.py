"""Shared fixtures: a migrated store on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL; the local
CloudTrail/STS endpoint (`aws`); the Slack app behind its signed endpoint with the Slack stand-in (`bot`).

Each test session works in a database of its own (created from TEST_DATABASE_URL and dropped at the
end), so that several runs on one server never see each other's rows.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from bot.store.schema import migrate
from detection.store import Store
from tests.fakes.cloudtrail_api import FakeCloudTrail
from tests.support.local_aws import AWS_NOISE, OWN_ACCOUNT, OWN_KEY, OWN_SECRET, LocalAws
from tests.support.postgres import empty_postgres
from tests.support.slack_harness import Harness, migrated_sqlite


def _admin_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a fresh PostgreSQL database for this test session (skipped without TEST_DATABASE_URL)."""
    admin_url = _admin_url()
    if not admin_url:
        pytest.skip("TEST_DATABASE_URL is not set: no PostgreSQL to test against")
    name = f"sesguard_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name})
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def blank_url(request, tmp_path):
    """A database URL with no schema yet: a SQLite file, then the PostgreSQL test database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sesguard.db'}"
    url = request.getfixturevalue("postgres_url")
    empty_postgres(url)
    return url


@pytest.fixture
def store_url(blank_url):
    """A database URL with the schema applied, on either database."""
    migrate(Store(blank_url))
    return blank_url


@pytest.fixture
def store(store_url):
    store = Store(store_url)
    yield store
    store.engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'sesguard.db'}")
    migrate(store)
    yield store
    store.engine.dispose()


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 over real HTTP on a free local port, for the s3:// input and the S3 source."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def iam_endpoint():
    """moto's IAM and STS over real HTTP on a free local port, for containment (moto's default account is
    123456789012; a role assumed in another account acts in that account)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def postgres_store(postgres_url):
    """A migrated, empty PostgreSQL store, for the behaviours only PostgreSQL has (row locks)."""
    empty_postgres(postgres_url)
    store = Store(postgres_url)
    migrate(store)
    yield store
    store.engine.dispose()


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """The CloudTrail/STS stand-in over real HTTP, in the environment boto3 reads (tests/support/local_aws.py)."""
    api = FakeCloudTrail()
    api.add_account(OWN_ACCOUNT, OWN_KEY, OWN_SECRET)
    url = api.start()
    env = {
        "AWS_ENDPOINT_URL_CLOUDTRAIL": url, "AWS_ENDPOINT_URL_STS": url,
        "AWS_ACCESS_KEY_ID": OWN_KEY, "AWS_SECRET_ACCESS_KEY": OWN_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in AWS_NOISE:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield LocalAws(api, url, env)
    api.stop()


# ── the Slack app, as Slack reaches it ──────────────────────────────────────────────────────────────


@pytest.fixture
def harness_store(tmp_path):
    """The store `bot` runs on: a fresh migrated SQLite file. A module on SQLite and PostgreSQL overrides it
    with the `store` fixture."""
    return migrated_sqlite(tmp_path)


@pytest.fixture
def harness_options():
    """Settings `bot` overrides (keyword arguments of `Harness`); a module overrides this fixture to set them."""
    return {}


@pytest.fixture
def slack_people():
    """Emails the Slack stand-in knows (email: user ID), for users.lookupByEmail; a module overrides it."""
    return {}


@pytest.fixture
def bot(harness_store, harness_options, slack_people):
    """The Slack app behind its signed HTTP endpoint, with the Slack stand-in (tests/support/slack_harness.py)."""
    with Harness(harness_store, **harness_options) as harness:
        harness.slack.users_by_email.update(slack_people)
        yield harness
