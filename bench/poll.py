"""A steady-state poll pass over N accounts × R regions behind a slow CloudTrail (SPEC §7), sequential
against parallel.

    python bench/poll.py                                   # 60 accounts × 6 regions, 150 ms, concurrency 1 and 16
    python bench/poll.py --accounts 100 --regions 17 --concurrency 16,64
    python bench/poll.py --database postgresql+psycopg://postgres@127.0.0.1:5432/bench

The CloudTrail stand-in of the tests (`tests/fakes/cloudtrail_api.py`: SigV4 checked on every request,
AssumeRole, 2 accepted requests a second per account and region, ThrottlingException beyond) runs in a
process of its own, so that its work does not share the poller's interpreter, and answers each
LookupEvents request after `--latency` seconds. The credentials' own account and `--accounts − 1` roles
(SESGUARD_ROLE_ARNS, assumed through STS) each have a few known identities' calls in every region, two
of them inside the look-back, so every read brings a page back. For each concurrency: a fresh store, the
first pass (the backfill, untimed), then `--passes` steady-state passes, timed, with the worker's own
pacer (the real 2 requests a second). Printed per concurrency: the pass time, LookupEvents requests and
requests per second, throttled requests and the most requests one account and region saw in any second.
Nothing here is a test: the figures go to docs/organisation.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.store.schema import migrate  # noqa: E402
from tests.support.local_aws import OWN_ACCOUNT, OWN_KEY, OWN_SECRET

REGIONS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-west-3",
           "eu-central-1", "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
           "ap-southeast-1", "ap-southeast-2", "ca-central-1", "sa-east-1"]
GOAL_SECONDS = 15.0


def account_ids(count: int) -> list[str]:
    return [OWN_ACCOUNT] + [f"{300000000000 + number:012d}" for number in range(1, count)]


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/sesguard-reader"


# ── the stand-in, in its own process ─────────────────────────────────────────────────────────────────


def serve_stand_in(connection, accounts: list[str], regions: list[str], latency: float) -> None:
    """The child process: the stand-in with its accounts, roles and events; answers "stats" and "stop"."""
    from tests.fakes.cloudtrail_api import FakeCloudTrail
    from tests.support.local_aws import ses_calls, user

    api = FakeCloudTrail(latency=latency)
    api.add_account(OWN_ACCOUNT, OWN_KEY, OWN_SECRET)
    for account in accounts[1:]:
        api.add_role(role_arn(account))
    for account in accounts:
        for region in regions:
            api.add_events(*ses_calls(user("alice", account), 3, account=account, region=region, days_ago=5),
                           *ses_calls(user("ci", account), 2, account=account, region=region, minutes_ago=5))
    connection.send(api.start())
    while True:
        command = connection.recv()
        if command == "stop":
            api.stop()
            return
        with api._lock:
            lookups = api.lookups()
            stats = {"lookups": len(lookups), "throttled": sum(r.error == "ThrottlingException" for r in lookups),
                     "busiest": api.busiest_window(),
                     "sts": sum(r.service == "sts" for r in api.requests)}
            api.requests.clear()  # the next pass starts counting afresh (passes are more than a second apart)
        connection.send(stats)


class StandIn:
    def __init__(self, accounts: list[str], regions: list[str], latency: float):
        self.connection, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=serve_stand_in, args=(child, accounts, regions, latency),
                                               daemon=True)
        self.process.start()
        if not self.connection.poll(120):
            raise SystemExit("the CloudTrail stand-in did not start")
        self.url = self.connection.recv()

    def stats(self) -> dict:
        self.connection.send("stats")
        return self.connection.recv()

    def stop(self) -> None:
        self.connection.send("stop")
        self.process.join(10)


# ── the passes ───────────────────────────────────────────────────────────────────────────────────────


def fresh_store(database: str | None, folder: Path):
    import sqlalchemy as sa

    from detection.store import Store

    if database is None:
        url = f"sqlite:///{folder / f'bench-{time.monotonic_ns()}.db'}"
    else:
        url = database
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text("DROP SCHEMA public CASCADE"))
            connection.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    store = Store(url)
    migrate(store)
    return store


def run(concurrency: int, accounts: list[str], regions: list[str], stand_in: StandIn, passes: int,
        database: str | None, folder: Path) -> dict:
    from bot.worker.ingest.poll import poll_once
    from detection.sources.lookup import LookupSource
    from tests.support.local_aws import worker_settings

    store = fresh_store(database, folder)
    settings = worker_settings(database_url=store.url, aws_regions=regions, poll_concurrency=concurrency,
                               role_arns=[role_arn(account) for account in accounts[1:]], backfill_days=30)
    source = LookupSource(settings.aws_regions, settings.role_arns, store)
    started = time.monotonic()
    first = poll_once(settings, store, source, notify=False)
    backfill = {"seconds": time.monotonic() - started, "ok": first.ok, **stand_in.stats()}
    steady = []
    for _ in range(passes):
        # Real passes are minutes apart: let the last pass's bookings (1.2 s apart per place) age out first.
        time.sleep(2.0)
        started, cpu = time.monotonic(), time.process_time()  # this process only: not the stand-in's
        result = poll_once(settings, store, source, notify=False)
        seconds = time.monotonic() - started
        steady.append({"seconds": seconds, "cpu": time.process_time() - cpu, "ok": result.ok, **stand_in.stats()})
        if not result.ok:
            print("\n".join(line for line in result.lines() if "FAILED" in line)[:2000], file=sys.stderr)
    store.engine.dispose()
    return {"concurrency": concurrency, "backfill": backfill, "steady": steady}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=60)
    parser.add_argument("--regions", type=int, default=6, help=f"1 to {len(REGIONS)}")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds each LookupEvents answer takes")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated SESGUARD_POLL_CONCURRENCY values")
    parser.add_argument("--passes", type=int, default=2, help="steady-state passes timed per concurrency")
    parser.add_argument("--database", help="a PostgreSQL URL (its public schema is emptied); default: SQLite")
    args = parser.parse_args()
    regions = REGIONS[:max(1, min(args.regions, len(REGIONS)))]
    accounts = account_ids(args.accounts)
    folder = Path(tempfile.mkdtemp(prefix="sesguard-bench-poll-"))
    stand_in = StandIn(accounts, regions, args.latency)
    os.environ.update({"AWS_ENDPOINT_URL_CLOUDTRAIL": stand_in.url, "AWS_ENDPOINT_URL_STS": stand_in.url,
                       "AWS_ACCESS_KEY_ID": OWN_KEY, "AWS_SECRET_ACCESS_KEY": OWN_SECRET,
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(folder / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(folder / "none"), "AWS_EC2_METADATA_DISABLED": "true"})
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        os.environ.pop(name, None)
    places = len(accounts) * len(regions)
    print(f"{len(accounts)} accounts ({len(accounts) - 1} through AssumeRole) × {len(regions)} regions = {places} "
          f"account/region pairs; LookupEvents answers after {args.latency * 1000:.0f} ms; "
          f"store: {'PostgreSQL' if args.database else 'SQLite'}")
    rows = []
    try:
        for concurrency in [int(value) for value in args.concurrency.split(",")]:
            rows.append(run(concurrency, accounts, regions, stand_in, args.passes, args.database, folder))
    finally:
        stand_in.stop()
    print()
    print("| SESGUARD_POLL_CONCURRENCY | first pass (backfill) | steady-state pass | the poller's CPU "
          "| LookupEvents requests | requests/s | throttled | most in one second per place |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        steady = row["steady"]
        seconds = statistics.median(s["seconds"] for s in steady)
        lookups = statistics.median(s["lookups"] for s in steady)
        throttled = sum(s["throttled"] for s in steady) + row["backfill"]["throttled"]
        busiest = max([s["busiest"] for s in steady] + [row["backfill"]["busiest"]])
        ok = all(s["ok"] for s in steady) and row["backfill"]["ok"]
        cpu = statistics.median(s["cpu"] for s in steady)
        print(f"| {row['concurrency']} | {row['backfill']['seconds']:.1f} s | {seconds:.1f} s | {cpu:.1f} s "
              f"| {lookups:.0f} | {lookups / seconds:.0f} | {throttled} | {busiest} "
              f"|{'' if ok else ' (a pass FAILED)'}")
    best = min(statistics.median(s["seconds"] for s in row["steady"]) for row in rows)
    per_place = best / places
    print()
    print(f"fastest steady-state pass: {best:.1f} s, {per_place * 1000:.1f} ms per account/region; "
          f"at that rate 500 accounts × 17 regions would take {per_place * 500 * 17:.0f} s")
    if (len(accounts), len(regions), args.latency) == (60, 6, 0.15):
        print(f"goal for 60 × 6 at 150 ms: ≤ {GOAL_SECONDS:.0f} s: {'met' if best <= GOAL_SECONDS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
