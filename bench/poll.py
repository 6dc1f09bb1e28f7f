"""Poll passes over N accounts × R regions behind a slow CloudTrail (SPEC §7): wall time, the poller's CPU per
LookupEvents request and its peak memory, for this checkout and, side by side in the same run, another.

    python bench/poll.py                                   # 60 accounts × 6 regions, 150 ms, concurrency 16
    python bench/poll.py --accounts 500 --regions 17 --concurrency 64
    python bench/poll.py --compare /tmp/sesguard-before    # also a checkout of the code before a change
    python bench/poll.py --floor                           # also without sesguard's own work: botocore's share
    python bench/poll.py --database postgresql+psycopg://postgres@127.0.0.1:5432/bench

The CloudTrail stand-in of the tests (`tests/fakes/cloudtrail_api.py`: SigV4 checked on every request,
AssumeRole, 2 accepted requests a second per account and region, ThrottlingException beyond) runs in a
process of its own and answers each LookupEvents request after `--latency` seconds. The credentials' own
account and `--accounts − 1` roles (SESGUARD_ROLE_ARNS, assumed through STS) each have a few known
identities' calls in every region, two of them inside the look-back, so every read brings a page back;
in the last account a new identity appears after the backfill, and must be found by the first steady pass.

Each poller runs in a process of its own, started from the checkout it measures, with the worker's own
pacer (the real 2 requests a second): first a process that backfills a fresh store (untimed), then one
that makes `--passes` steady passes. Its first pass is what `sesguard poll --once` does on a backfilled
store (a fresh process: clients, credentials, roles assumed); the others are a running worker's. The
checkouts' steady passes are taken in turns (a pass of each, then the next round), so that a machine whose
speed drifts during the run weighs on each alike. Printed
per checkout and concurrency: the passes' wall time, the poller's CPU per LookupEvents request (its own
process: not the stand-in's), its peak resident memory, the pacer's database bookings (where the code
counts them), throttled requests, the most requests one account and region saw in any second, and whether
the new identity was found. Nothing here is a test: the figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and "--child" not in sys.argv:
    sys.path.insert(0, str(HERE))

REGIONS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-west-3",
           "eu-central-1", "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
           "ap-southeast-1", "ap-southeast-2", "ca-central-1", "sa-east-1"]
OWN_ACCOUNT = "111111111111"  # tests/support/local_aws.py's
PAUSE_SECONDS = 3.0  # between passes: the last pass's bookings (a spacing or two per place) age out


def account_ids(count: int) -> list[str]:
    return [OWN_ACCOUNT] + [f"{300000000000 + number:012d}" for number in range(1, count)]


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/sesguard-reader"


# ── the stand-in, in its own process ─────────────────────────────────────────────────────────────────


def serve_stand_in(connection, accounts: list[str], regions: list[str], latency: float) -> None:
    """The child process: the stand-in with its accounts, roles and events; answers "stats", "newcomer"
    (a new identity's call in the last account) and "stop"."""
    sys.path.insert(0, str(HERE))
    from tests.fakes.cloudtrail_api import FakeCloudTrail
    from tests.support.local_aws import OWN_KEY, OWN_SECRET, ses_calls, user

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
        if command.startswith("newcomer:"):
            last = accounts[-1]
            api.add_events(*ses_calls(user(command.split(":", 1)[1], last), 1, account=last, region=regions[-1],
                                      minutes_ago=1))
            connection.send("ok")
            continue
        with api._lock:
            lookups = api.lookups()
            stats = {"lookups": len(lookups), "throttled": sum(r.error == "ThrottlingException" for r in lookups),
                     "busiest": api.busiest_window(),
                     "sts": sum(r.service == "sts" for r in api.requests)}
        api.forget_requests()  # the next pass starts counting afresh
        connection.send(stats)


class StandIn:
    def __init__(self, accounts: list[str], regions: list[str], latency: float):
        self.connection, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=serve_stand_in, args=(child, accounts, regions, latency),
                                               daemon=True)
        self.process.start()
        if not self.connection.poll(300):
            raise SystemExit("the CloudTrail stand-in did not start")
        self.url = self.connection.recv()

    def ask(self, command: str):
        self.connection.send(command)
        return self.connection.recv()

    def stop(self) -> None:
        self.connection.send("stop")
        self.process.join(10)


# ── the poller, in a process of its own, from the checkout it measures ───────────────────────────────


def child(arguments: dict) -> None:
    """Backfill (`passes` 0) or steady passes: a JSON line once ready (its start-up's seconds), then a pass for
    each line on stdin, and a JSON line of figures after each."""
    import resource

    started_process = time.monotonic()
    sys.path.insert(0, arguments["code"])
    from sqlmodel import select

    from bot.worker.ingest.poll import poll_once
    from detection.sources.lookup import LookupSource
    from detection.store import SignalRow, Store
    from tests.support.local_aws import worker_settings

    store = Store(arguments["database"])
    if arguments["passes"] == 0:
        migrate(store)
    settings = worker_settings(database_url=store.url, aws_regions=arguments["regions"],
                               poll_concurrency=arguments["concurrency"], role_arns=arguments["roles"],
                               backfill_days=30)
    source = LookupSource(settings.aws_regions, settings.role_arns, store)
    if arguments.get("floor") and arguments["passes"]:
        without_own_work(source)
    print(json.dumps({"ready": time.monotonic() - started_process}), flush=True)
    for _ in range(max(1, arguments["passes"])):
        sys.stdin.readline()  # its turn
        started, cpu = time.monotonic(), time.process_time()
        result = poll_once(settings, store, source, notify=False)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        with store.session() as session:
            found = any(identity.endswith(f"/{arguments['newcomer']}")
                        for identity in session.exec(select(SignalRow.identity)))
        failed = [line for line in result.lines() if "FAILED" in line][:5]
        print(json.dumps({"seconds": seconds, "cpu": cpu, "ok": result.ok, "failed": failed, "found": found,
                          "bookings": getattr(source.pacer, "bookings", None),
                          "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def without_own_work(source) -> None:
    """`--floor`: the steady passes without the pace's bookings, the accounts' leases and detection with its
    store, so that what is left is botocore's and the read path's share of a request. Never a way to run."""
    import bot.worker.ingest.poll as poll
    from bot.store.lease import Lease

    source.pacer.wait_turn = lambda key: 0.0
    poll._detect_and_store = lambda *arguments, **keywords: None
    Lease.acquire, Lease.keep_alive = lambda self: True, lambda self: True
    Lease.release = lambda self: None


def poller(code: str, arguments: dict, environment: dict) -> subprocess.Popen:
    """This script as the poller, importing sesguard from `code` (the checkout measured)."""
    return subprocess.Popen([sys.executable, __file__, "--child", json.dumps(arguments)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=environment, cwd=code)


def in_turns(processes: list[subprocess.Popen], stand_in: StandIn, count: int) -> list[dict]:
    """`count` passes of each poller, taken in turns (a pass of each, then the next round), so that a machine
    whose speed drifts during the run weighs on every checkout alike; per poller, its start-up's seconds and
    each pass's figures with the stand-in's."""
    def line_of(process: subprocess.Popen) -> dict:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"the poller stopped (exit {process.wait()})")
        return json.loads(line)

    measured = [{"ready": line_of(process)["ready"], "passes": []} for process in processes]
    for _ in range(count):
        for process, figures in zip(processes, measured):
            assert process.stdin is not None
            process.stdin.write("\n")
            process.stdin.flush()
            figures["passes"].append({**line_of(process), **stand_in.ask("stats")})
            time.sleep(PAUSE_SECONDS)  # the pass's last bookings (a spacing or two per place) age out
    for process in processes:
        process.wait(60)
    return measured


def fresh_store(database: str | None, folder: Path):
    """A fresh store's URL (bench/sqs.py uses this too): a new SQLite file, or the PostgreSQL schema emptied."""
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


def migrate(store) -> None:
    """The schema, as the checkout measured builds it (`bot.store.schema` since the tables moved there)."""
    try:
        from bot.store.schema import migrate as migrate_store
    except ImportError:  # an older checkout (--compare)
        store.migrate()
    else:
        migrate_store(store)


def store_url(database: str | None, folder: Path, index: int) -> str:
    """A fresh store for one poller: a new SQLite file, or a PostgreSQL database of its own beside `database`
    (created, its public schema emptied), as the pollers of one round keep theirs side by side."""
    if database is None:
        return f"sqlite:///{folder / f'bench-{time.monotonic_ns()}.db'}"
    import sqlalchemy as sa

    url = sa.engine.make_url(database)
    own = url.set(database=f"{url.database}_poll_{index}")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if not connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                  {"name": own.database}).first():
            connection.execute(sa.text(f'CREATE DATABASE "{own.database}"'))
    engine.dispose()
    return fresh_store(own.render_as_string(hide_password=False), folder).url


def measure(variants: list[tuple[str, bool]], concurrency: int, accounts: list[str], regions: list[str],
            stand_in: StandIn, count: int, database: str | None, folder: Path, environment: dict) -> list[dict]:
    """Each (checkout, floor) variant: a backfill of its own fresh store, then its steady passes, in turns
    with the other variants'."""
    newcomer = f"newcomer-{time.monotonic_ns()}"
    arguments = [{"code": code, "floor": floor, "database": store_url(database, folder, index), "regions": regions,
                  "concurrency": concurrency, "roles": [role_arn(account) for account in accounts[1:]],
                  "passes": 0, "newcomer": newcomer} for index, (code, floor) in enumerate(variants)]
    backfills = [in_turns([poller(each["code"], each, environment)], stand_in, 1)[0]["passes"][0]
                 for each in arguments]
    stand_in.ask(f"newcomer:{newcomer}")
    steady = in_turns([poller(each["code"], {**each, "passes": count}, environment) for each in arguments],
                      stand_in, count)
    return [{"code": each["code"], "floor": each["floor"], "concurrency": concurrency, "backfill": backfill,
             "ready": figures["ready"], "steady": figures["passes"]}
            for each, backfill, figures in zip(arguments, backfills, steady)]


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=60)
    parser.add_argument("--regions", type=int, default=6, help=f"1 to {len(REGIONS)}")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds each LookupEvents answer takes")
    parser.add_argument("--concurrency", default="16", help="comma-separated SESGUARD_POLL_CONCURRENCY values")
    parser.add_argument("--passes", type=int, default=3, help="steady passes per poller process")
    parser.add_argument("--compare", action="append", default=[], help="another checkout to measure alongside")
    parser.add_argument("--floor", action="store_true",
                        help="also this checkout's steady passes without the pace's bookings, leases and detection")
    parser.add_argument("--database", help="a PostgreSQL URL: each poller gets a database of its own beside it, "
                        "named after it with _poll_<n> (made, its public schema emptied); default: SQLite")
    args = parser.parse_args()
    regions = REGIONS[:max(1, min(args.regions, len(REGIONS)))]
    accounts = account_ids(args.accounts)
    folder = Path(tempfile.mkdtemp(prefix="sesguard-bench-poll-"))
    from tests.support.local_aws import AWS_NOISE, OWN_KEY, OWN_SECRET

    stand_in = StandIn(accounts, regions, args.latency)
    environment = {name: value for name, value in os.environ.items() if name not in AWS_NOISE}
    environment.update({"AWS_ENDPOINT_URL_CLOUDTRAIL": stand_in.url, "AWS_ENDPOINT_URL_STS": stand_in.url,
                        "AWS_ACCESS_KEY_ID": OWN_KEY, "AWS_SECRET_ACCESS_KEY": OWN_SECRET,
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(folder / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "none"), "AWS_EC2_METADATA_DISABLED": "true"})
    places = len(accounts) * len(regions)
    print(f"{len(accounts)} accounts ({len(accounts) - 1} through AssumeRole) × {len(regions)} regions = {places} "
          f"account/region pairs; LookupEvents answers after {args.latency * 1000:.0f} ms; "
          f"store: {'PostgreSQL' if args.database else 'SQLite'}; load average before: {os.getloadavg()[0]:.1f}")
    rows = []
    try:
        # side by side: each concurrency measured for every checkout, their passes in turns
        variants = [(code, False) for code in [str(HERE), *args.compare]] + [(str(HERE), True)] * args.floor
        for concurrency in [int(value) for value in args.concurrency.split(",")]:
            rows += measure(variants, concurrency, accounts, regions, stand_in, args.passes, args.database, folder,
                            environment)
    finally:
        stand_in.stop()
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print()
    print("| code | concurrency | fresh process, first pass (`poll --once`) | later passes (median) | CPU per request "
          "| peak memory | LookupEvents a pass | bookings a pass | throttled | most in one second per place "
          "| new identity found in the first pass |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        first, later = row["steady"][0], row["steady"][1:] or row["steady"]
        cpu = statistics.median(s["cpu"] / max(1, s["lookups"]) for s in row["steady"])
        throttled = sum(s["throttled"] for s in row["steady"]) + row["backfill"]["throttled"]
        busiest = max([s["busiest"] for s in row["steady"]] + [row["backfill"]["busiest"]])
        bookings = [b - a for a, b in zip([0] + [s["bookings"] for s in row["steady"]],
                                          [s["bookings"] for s in row["steady"]])] \
            if first["bookings"] is not None else None
        ok = all(s["ok"] for s in row["steady"]) and row["backfill"]["ok"]
        code = "this" if row["code"] == str(HERE) else row["code"]
        found = "n/a (no detection)" if row["floor"] else "yes" if first["found"] else "NO"
        print(f"| {code}{' --floor' if row['floor'] else ''} | {row['concurrency']} "
              f"| {first['seconds']:.1f} s ({row['ready'] + first['seconds']:.1f} s with start-up) "
              f"| {statistics.median(s['seconds'] for s in later):.1f} s | {cpu * 1000:.2f} ms "
              f"| {max(s['peak_mb'] for s in row['steady']):.0f} MB | {first['lookups']} "
              f"| {f'{statistics.median(bookings):.0f}' if bookings else 'n/a'} | {throttled} | {busiest} "
              f"| {found}{'' if ok else ' (a pass FAILED)'} |")
        for s in [row["backfill"], *row["steady"]]:
            for line in s["failed"]:
                print(f"  {line[:300]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
