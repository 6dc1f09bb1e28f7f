"""Slack-side latency: `/sesguard history` on a store of 1,000,000 matching events over 100,000 identities.

    python bench/history.py                          # SQLite (bench/data/history.db) and PostgreSQL
    python bench/history.py --backends sqlite --events 200000 --identities 20000
    python bench/history.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The store is filled the way years of polling fill it: 25 accounts; IAM users, CI and application roles
(keyed by role, the session in the ARN), SSO people; a skewed number of calls per identity (most call a
few times, a CI role every few minutes for months: thousands of rows); corporate NAT addresses shared by
many identities; four months of time, so that the 90-day window cuts. A signal for one identity in five.
Then `detection.history.identity_history` is timed for random terms of each kind the slash command takes
(identity or caller ARN, a user/role/session name, an IP address) and for the heaviest identity and the
busiest address, and the two backends must give the same answers. The PostgreSQL database
`sesguard_bench_history` is created (and dropped at the end) on the server of --postgres or
TEST_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.store.schema import migrate  # noqa: E402
from detection.history import identity_history  # noqa: E402
from detection.store import EventRow, SignalRow, Store, name_of  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
ACCOUNTS = [f"{100000000000 + n * 7919:012d}" for n in range(25)]
CALLS = ["GetSendQuota", "ListIdentities", "GetAccountSendingEnabled", "GetIdentityVerificationAttributes",
         "GetAccount", "ListEmailIdentities", "ListServiceQuotas"]
REGIONS = ["us-east-1", "us-east-1", "eu-west-1", "us-west-2", "ap-southeast-2"]
BATCH = 20_000
BENCH_DATABASE = "sesguard_bench_history"


class Population:
    """The identities and how often each calls; deterministic for a seed."""

    def __init__(self, identities: int, events: int, seed: int = 7):
        self.seed = seed
        rng = random.Random(seed)
        self.nat = [f"198.51.{n // 256}.{n % 256}" for n in range(200)]  # corporate egress, shared
        self.people = []
        for n in range(identities):
            account = rng.choice(ACCOUNTS)
            kind = rng.random()
            if kind < 0.3:
                arn = f"arn:aws:iam::{account}:user/svc-{n}"
                identity, session_arn, identity_type = arn, None, "IAMUser"
            elif kind < 0.8:
                role = f"app-role-{n}"
                identity = f"arn:aws:iam::{account}:role/{role}"
                session_arn, identity_type, arn = f"arn:aws:sts::{account}:assumed-role/{role}/", "AssumedRole", None
            else:
                arn = f"arn:aws:sts::{account}:assumed-role/AWSReservedSSO_Admin_0a1b/person-{n}@example.com"
                identity, session_arn, identity_type = arn, None, "AssumedRole"
            ips = [rng.choice(self.nat) if rng.random() < 0.3 else
                   f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                   for _ in range(rng.randint(1, 3))]
            self.people.append((account, identity, arn, session_arn, identity_type, ips))
        # Skewed activity: a Pareto weight each, scaled to the wanted total (at least one call each).
        weights = [rng.paretovariate(1.1) for _ in range(identities)]
        scale = (events - identities) / sum(weights)
        self.counts = [1 + int(weight * scale) for weight in weights]
        self.counts[0] += events - sum(self.counts)  # exact total

    def events(self):
        rng = random.Random(self.seed + 1)  # the same events every time they are listed
        number = 0
        for (account, identity, arn, session_arn, identity_type, ips), count in zip(self.people, self.counts):
            for _ in range(count):
                number += 1
                caller = arn or (f"{session_arn}{rng.choice(('i-0', 'run-', 'botocore-session-'))}"
                                 f"{rng.getrandbits(40):x}")
                yield {
                    "event_id": f"bench-{number:09d}", "account_id": account, "identity": identity,
                    "identity_type": identity_type, "arn": caller, "identity_name": name_of(identity),
                    "arn_name": name_of(caller), "event_time": NOW - timedelta(seconds=rng.randrange(120 * 86400)),
                    "event_source": "ses.amazonaws.com", "event_name": rng.choice(CALLS), "region": rng.choice(REGIONS),
                    "source_ip": rng.choice(ips), "user_agent": "aws-cli/2.15.30", "access_key_id": "",
                    "error_code": "", "from_console": False, "signal_id": None,
                }

    def signals(self):
        rng = random.Random(11)
        for number, (account, identity, arn, _, identity_type, ips) in enumerate(self.people):
            if number % 5:
                continue
            first = NOW - timedelta(seconds=rng.randrange(120 * 86400))
            yield SignalRow(**{
                "signal_id": f"bench-signal-{number:07d}", "account_id": account, "identity": identity,
                "identity_type": identity_type, "arn": arn or identity, "first_seen": first,
                "last_seen": first + timedelta(minutes=5), "event_names": ["GetSendQuota"], "event_count": 1,
                "regions": ["us-east-1"], "source_ips": ips[:1], "user_agents": [], "access_key_ids": [],
                "error_codes": [], "event_ids": [], "severity": "medium", "reasons": ["new identity"],
                "status": "closed",
            }).model_dump()  # with the model's defaults for the columns not named here


def fill(store: Store, population: Population) -> float:
    started = time.perf_counter()
    with store.engine.begin() as connection:
        for table in (EventRow.__table__, SignalRow.__table__):
            connection.execute(table.delete())
    for table, rows in ((EventRow.__table__, population.events()), (SignalRow.__table__, population.signals())):
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                _insert(store, table, batch)
                batch = []
        if batch:
            _insert(store, table, batch)
    with store.engine.begin() as connection:  # fresh planner statistics, as autovacuum / a DBA would keep them
        connection.execute(sa.text("ANALYZE"))
    return time.perf_counter() - started


def _insert(store: Store, table: sa.Table, rows: list[dict]) -> None:
    with store.engine.begin() as connection:
        connection.execute(table.insert(), rows)


def terms(population: Population, count: int) -> list[tuple[str, str]]:
    """(kind, term) pairs as people type them: ARNs, names, IPs; each drawn from identities at random."""
    rng = random.Random(3)
    picked = []
    for _ in range(count):
        account, identity, arn, session_arn, _, ips = rng.choice(population.people)
        kind = rng.choice(["identity ARN", "name", "IP address"])
        if kind == "identity ARN":
            picked.append((kind, identity))
        elif kind == "name":
            picked.append((kind, name_of(identity).upper() if rng.random() < 0.2 else name_of(identity)))
        else:
            picked.append((kind, rng.choice(ips)))
    return picked


def heaviest(population: Population) -> list[tuple[str, str]]:
    top = max(range(len(population.counts)), key=population.counts.__getitem__)
    calls_from: dict[str, int] = {}
    for person, count in zip(population.people, population.counts):
        for ip in person[5]:
            calls_from[ip] = calls_from.get(ip, 0) + count
    busiest_ip = max(calls_from, key=calls_from.__getitem__)
    return [("heaviest identity", population.people[top][1]), ("busiest NAT address", busiest_ip)]


def time_queries(store: Store, queries: list[tuple[str, str]]) -> tuple[dict[str, list[float]], dict]:
    timings: dict[str, list[float]] = {}
    answers = {}
    for kind, term in queries:
        started = time.perf_counter()
        answer = identity_history(store, term, days=90, now=NOW)
        timings.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
        answers[term] = None if answer is None else (answer.event_count, answer.first_seen, answer.last_seen,
                                                      answer.calls, answer.source_ips, answer.regions,
                                                      answer.identities, answer.accounts,
                                                      [s.signal_id for s in answer.signals])
    return timings, answers


def report(backend: str, timings: dict[str, list[float]], answers: dict) -> None:
    every = [ms for kind, values in timings.items() if kind in ("identity ARN", "name", "IP address") for ms in values]
    found = sum(1 for answer in answers.values() if answer)
    print(f"\n{backend}: {len(every)} random look-ups ({found} with calls in the last 90 days)")
    print(f"  {'kind':<22} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}  rows in the answer")
    for kind, values in timings.items():
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        rows = [answers[term][0] for k, term in QUERIES if k == kind and answers.get(term)]
        shown = f"{statistics.median(rows):,.0f} (median)" if len(rows) > 1 else (f"{rows[0]:,}" if rows else "-")
        print(f"  {kind:<22} {statistics.median(values):>10.1f} {p95:>8.1f} {values[-1]:>8.1f}  {shown}")
    print(f"  {'all random look-ups':<22} {statistics.median(every):>10.1f}")


QUERIES: list[tuple[str, str]] = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--identities", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=300, help="random look-ups timed per backend")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--sqlite", type=Path, default=DATA / "history.db",
                        help="the SQLite file (default %(default)s)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep bench/data/history.db when it already holds this many events (SQLite only)")
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL",
                                                             "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                        help="a PostgreSQL server URL; the bench makes its own database there")
    args = parser.parse_args(argv)

    population = Population(args.identities, args.events)
    print(f"store: {args.events:,} matching events over {args.identities:,} identities in {len(ACCOUNTS)} accounts; "
          f"calls per identity: median {statistics.median(population.counts):.0f}, max {max(population.counts):,}")
    QUERIES[:] = terms(population, args.lookups) + heaviest(population)
    results = {}
    for backend in args.backends:
        url, cleanup = _backend_url(backend, args.postgres, args.reuse, args.sqlite)
        try:
            store = Store(url)
            migrate(store)
            if _event_count(store) == args.events and args.reuse:
                print(f"{backend}: reusing the store filled by an earlier run")
            else:
                print(f"{backend}: filled in {fill(store, population):.0f} s")
            time_queries(store, QUERIES[:20])  # warm the caches, as a running bot has them
            timings, answers = time_queries(store, QUERIES)
            report(backend, timings, answers)
            results[backend] = answers
            store.engine.dispose()
        finally:
            cleanup()
    if len(results) == 2:
        same = results["sqlite"] == results["postgres"]
        print(f"\nSQLite and PostgreSQL gave {'the same answers' if same else 'DIFFERENT answers'} for every term")
        return 0 if same else 1
    return 0


def _event_count(store: Store) -> int:
    with store.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(EventRow.__table__)).scalar_one()


def _backend_url(backend: str, server: str, reuse: bool, path: Path):
    if backend == "sqlite":
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(path.name + "*") if not reuse else []:
            stale.unlink()
        return f"sqlite:///{path}", lambda: None
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{BENCH_DATABASE}"'))

    def drop():
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
        admin.dispose()

    url = sa.make_url(server).set(database=BENCH_DATABASE).render_as_string(hide_password=False)
    return url, drop


if __name__ == "__main__":
    sys.exit(main())
