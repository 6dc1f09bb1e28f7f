"""The triage figures (`/sesguard stats`, the daily digest) on a store of a busy year, SQLite and PostgreSQL.

    python bench/stats.py                              # 100,000 signals, SQLite and PostgreSQL
    python bench/stats.py --signals 20000 --backends sqlite

The store is filled with `--signals` signals over 365 days (severities and outcomes in realistic shares,
nine in ten acted on by a person after seconds to hours, a suppression covering one in ten) and three
history rows each, and a contact question for one in twenty. Then `figures()` is timed for 1, 7, 30 and
365 days, and both backends must give the same figures. The PostgreSQL database `sesguard_bench_stats` is
created (and dropped at the end) on the server of --postgres or TEST_DATABASE_URL.
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

from bot.contact.tables import Contact  # noqa: E402
from bot.desk.digest.figures import figures  # noqa: E402
from bot.store.schema import migrate  # noqa: E402
from detection.store import SignalHistory, SignalRow, Store, SuppressionRow  # noqa: E402

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DATA = Path(__file__).resolve().parent / "data"
BENCH_DATABASE = "sesguard_bench_stats"
SEVERITIES = ["low"] * 3 + ["medium"] * 4 + ["high"] * 2 + ["critical"]
OUTCOMES = ["closed"] * 5 + ["suppressed"] * 2 + ["escalated", "confirmed", "new"]
BATCH = 10_000


def fill(store: Store, signals: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    with store.session() as session:
        suppressions = [SuppressionRow(identity=f"arn:aws:iam::111122223333:user/s{n}", author="U1", reason="r",
                                       created_at=NOW - timedelta(days=400)) for n in range(20)]
        session.add_all(suppressions)
        session.commit()
        ids = [s.id for s in suppressions]
    rows, history, contacts = [], [], []

    def flush() -> None:
        with store.engine.begin() as connection:
            for model, values in ((SignalRow, rows), (SignalHistory, history), (Contact, contacts)):
                if values:
                    connection.execute(sa.insert(model.__table__), values)
        rows.clear(), history.clear(), contacts.clear()

    for n in range(signals):
        created = NOW - timedelta(seconds=rng.uniform(0, 365 * 86400))
        status = rng.choice(OUTCOMES)
        signal_id = f"sg-{n:016x}"
        rows.append({"signal_id": signal_id, "account_id": "111122223333", "identity": f"arn:aws:iam::1:user/u{n}",
                     "identity_type": "IAMUser", "arn": f"arn:aws:iam::1:user/u{n}", "first_seen": created,
                     "last_seen": created, "severity": rng.choice(SEVERITIES), "status": status,
                     "created_at": created, "updated_at": created, "event_names": [], "regions": [],
                     "source_ips": [], "user_agents": [], "access_key_ids": [], "error_codes": [], "event_ids": [],
                     "reasons": [], "long_term_keys_outside_console": [], "follow_on_abuse": [],
                     "suppression_id": rng.choice(ids) if status == "suppressed" else None,
                     "root_caller": False, "all_from_console": False, "exercise_tool": False, "event_count": 1})
        history.append({"signal_id": signal_id, "actor": "sesguard", "action": "detected", "status": "new",
                        "at": created, "detail": ""})
        if rng.random() < 0.9:
            first = created + timedelta(seconds=rng.lognormvariate(6, 1.5))
            history += [{"signal_id": signal_id, "actor": "U1", "action": "a step", "status": status, "at": first,
                         "detail": ""},
                        {"signal_id": signal_id, "actor": "U2", "action": "a later step", "status": status,
                         "at": first + timedelta(hours=2), "detail": ""}]
        if rng.random() < 0.05:
            contacts.append({"signal_id": signal_id, "slack_user_id": "U3", "asked_by": "U1", "asked_at": created,
                             "deadline": created + timedelta(hours=2),
                             "answer": rng.choice(["yes", "no", "timeout", "yes", None])})
        if len(rows) >= BATCH:
            flush()
    flush()


def timed(store: Store, days: float, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = figures(store, days, now=NOW)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signals", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--sqlite", type=Path, default=DATA / "stats.db")
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    answers, admin = {}, None
    for backend in args.backends:
        if backend == "sqlite":
            args.sqlite.parent.mkdir(parents=True, exist_ok=True)
            args.sqlite.unlink(missing_ok=True)
            url = f"sqlite:///{args.sqlite}"
        else:
            if not args.postgres:
                print("postgres: skipped (no --postgres and no TEST_DATABASE_URL)")
                continue
            admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}"'))
                connection.execute(sa.text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
            url = sa.make_url(args.postgres).set(database=BENCH_DATABASE).render_as_string(hide_password=False)
        store = Store(url)
        migrate(store)
        started = time.perf_counter()
        fill(store, args.signals)
        print(f"{backend}: {args.signals:,} signals stored in {time.perf_counter() - started:.1f} s")
        answers[backend] = []
        for days in (1, 7, 30, 365):
            seconds, result = timed(store, days, args.runs)
            answers[backend].append((result.signals, result.by_outcome, result.acted_on, result.median_seconds,
                                     result.p90_seconds, result.answered, result.top_suppressions))
            print(f"{backend}: stats {days:>3} days: {seconds * 1000:8.1f} ms (median of {args.runs}); "
                  f"{result.signals:,} signals, median {result.median_seconds or 0:.0f} s, "
                  f"p90 {result.p90_seconds or 0:.0f} s")
        store.engine.dispose()
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}"'))
        admin.dispose()
    if len(answers) == 2:
        same = all(a[:3] + a[5:] == b[:3] + b[5:] and abs((a[3] or 0) - (b[3] or 0)) < 0.01
                   and abs((a[4] or 0) - (b[4] or 0)) < 0.01 for a, b in zip(answers["sqlite"], answers["postgres"]))
        print("both backends gave the same figures" if same else "THE BACKENDS DISAGREE")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
