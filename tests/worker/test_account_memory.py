"""Memory of a poll over many accounts (SPEC §7): it must not grow with every account read.

Each poll runs in a process of its own (as `sesguard poll --once` does), against the CloudTrail/STS
stand-in over real HTTP, every account but the own one through an assumed role; the process reports the
memory Python holds after the pass (tracemalloc) and how many AWS clients it built. A boto3 Session and a
client per account and region cost about 10 MB an account; the shared loader and the per-region clients
cost nothing more per account than its credentials and its rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.local_aws import subprocess_env

pytestmark = pytest.mark.processes

REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
ROOT = Path(__file__).resolve().parents[2]

POLL = """
import json, sys, tracemalloc
from bot.store.schema import migrate
from bot.worker.ingest.poll import poll_once
from detection.sources.lookup import LookupSource, lookup_pacer
from detection.store import Store
from tests.support.local_aws import worker_settings

tracemalloc.start()  # after the imports, which it would slow down tenfold
database, regions, roles = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
store = Store(database)
migrate(store)
settings = worker_settings(database_url=database, aws_regions=regions, role_arns=roles, poll_concurrency=8,
                           backfill_days=1)
source = LookupSource(regions, roles, store, pacer=lookup_pacer(store, limit=50))
result = poll_once(settings, store, source, notify=False)
print(json.dumps({"ok": result.ok, "places": len(result.places), "bytes": tracemalloc.get_traced_memory()[0],
                  "clients": source.clients.built, "kept": source.clients.clients_kept()}))
"""


def account(number: int) -> str:
    return f"{400000000000 + number:012d}"


def role(number: int) -> str:
    return f"arn:aws:iam::{account(number)}:role/sesguard-reader"


def poll_in_a_process(aws, tmp_path, accounts: int) -> dict:
    roles = [role(number) for number in range(1, accounts)]
    database = f"sqlite:///{tmp_path / f'poll-{accounts}.db'}"
    done = subprocess.run([sys.executable, "-c", POLL, database, ",".join(REGIONS), ",".join(roles)],
                          cwd=ROOT, env=subprocess_env(aws.env), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_memory_does_not_grow_with_the_accounts_polled(aws, tmp_path):
    aws.api.limit = 50  # the pace is not the subject here
    for number in range(1, 24):
        aws.api.add_role(role(number))

    few = poll_in_a_process(aws, tmp_path, 6)
    many = poll_in_a_process(aws, tmp_path, 24)

    assert few["ok"] and many["ok"]
    assert (few["places"], many["places"]) == (6 * len(REGIONS), 24 * len(REGIONS))
    # One CloudTrail client per region, whatever the number of accounts (and an STS client per AssumeRole,
    # made and let go by botocore).
    assert few["clients"] == many["clients"] == len(REGIONS)
    per_account = (many["bytes"] - few["bytes"]) / 18
    assert per_account < 512 * 1024, f"{per_account / 2**20:.1f} MB more per account ({few}, {many})"
