"""The reliability tests' deployment: the stand-ins, a migrated store and real sesguard processes."""

from __future__ import annotations

import pytest

from tests.support.sesguard_processes import deployed
from tests.support.slack_harness import migrated_sqlite


@pytest.fixture
def deployment(aws, tmp_path):
    """The stand-ins, a migrated SQLite store, and the environment a deployment would have."""
    with deployed(aws, tmp_path, migrated_sqlite(tmp_path)) as running:
        yield running
