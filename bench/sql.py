"""History on a SQL engine (SPEC §9): what the rule pushed into SQL brings back, and what checking it costs.

    python bench/sql.py                                   # 100,000 records over a year, 0.5% SES/quota candidates
    python bench/sql.py --records 20000 --share 0.02 --window-days 30

A generated trail (tests/support/sql_trails.py: every kind of caller, look-alike APIs, hostile ARNs, times with offsets
or broken, records delivered twice or a day late) is loaded into DuckDB tables of the engines' shapes and served
by the Athena and CloudTrail Lake stand-ins (tests/fakes/sql_engines.py) over real HTTP. For each engine the rule
query runs through its real protocol (start, poll, pages of 1,000), and the figures are printed: rows in the table,
rows returned, result pages, bytes scanned (the stand-in's model: the JSON size of the rows in the partitions the
query names — Athena prunes by the `timestamp` partition, Lake reads the whole store), and the wall time. Then the
equivalence check as the tests run it: the Python rule over the records as a JSON Lines file against the SQL over
the table in DuckDB, each timed, and their matches compared (the script fails when they differ).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402

from detection.sources.sql import engine, query, rows  # noqa: E402
from detection.sources.sql.running import Limits  # noqa: E402
from tests.fakes import cloudtrail_tables as tables  # noqa: E402
from tests.fakes.sql_engines import SqlEngines  # noqa: E402
from tests.support import sql_trails as trails  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--share", type=float, default=0.005, help="share of SES/quota candidates among records")
    parser.add_argument("--days", type=int, default=365, help="days the trail spans")
    parser.add_argument("--window-days", type=float, default=90, help="days the query asks for (the latest ones)")
    parser.add_argument("--seed", type=int, default=20250101)
    args = parser.parse_args()

    started = time.perf_counter()
    records, late = trails.generated_trail(args.seed, args.records, days=args.days, matching_share=args.share)
    print(f"trail: {len(records):,} records over {args.days} days, {sum(late.values()):,} delivered a day late "
          f"(generated in {time.perf_counter() - started:.1f} s)")
    until = trails.T0 + timedelta(days=args.days)
    since = until - timedelta(days=args.window_days)

    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    stand_in = SqlEngines()
    os.environ["AWS_ENDPOINT_URL_ATHENA"] = os.environ["AWS_ENDPOINT_URL_CLOUDTRAIL"] = stand_in.start()
    try:
        stand_in.load_athena(trails.TABLE, records, late)
        stand_in.load_lake(trails.STORE, records)
        table_bytes = stand_in.duck.execute(f"SELECT sum(strlen(to_json(t)::VARCHAR)) FROM {trails.TABLE} AS t"
                                            ).fetchone()[0]
        settings = engine.EngineSettings("primary", "s3://bench-results/", Limits(first_wait=0.01, longest_wait=0.05))
        found = {}
        for url in (f"athena://{trails.TABLE}", f"lake://{trails.STORE}"):
            began = time.perf_counter()
            scanned = engine.rule_scan(engine.parse(url), since, until, settings)
            elapsed = time.perf_counter() - began
            if scanned.error:
                print(f"{url}: {scanned.error}")
                return 1
            figures = scanned.figures
            found[url] = set(scanned.calls)
            print(f"{url}: {figures.rows:,} rows returned of {len(records):,} in the table "
                  f"({figures.rows / max(1, len(records)):.3%}), {figures.pages} result pages, "
                  f"{figures.bytes_scanned / 1e6:.1f} MB scanned of {table_bytes / 1e6:.1f} MB, "
                  f"{len(set(scanned.calls)):,} calls, {scanned.summarised:,} excluded callers' calls summarised; "
                  f"{elapsed:.2f} s through the stand-in")
    finally:
        stand_in.stop()

    began = time.perf_counter()
    calls, excluded = trails.python_rule(records, since, until)
    python_seconds = time.perf_counter() - began
    began = time.perf_counter()
    connection = duckdb.connect()
    tables.athena_table(connection, trails.TABLE, [(rec, tables.delivery_day(rec, late.get(i, 0)))
                                                   for i, rec in enumerate(records)])
    loaded = time.perf_counter()
    sql = query.athena_rule_query(trails.TABLE, since, until)
    names, result = tables.run_trino(connection, sql.text, sql.parameters)
    scanned = rows.scan_rows("duckdb", [dict(zip(names, row)) for row in result], "principal", since, until)
    queried = time.perf_counter()
    sql_calls, sql_excluded = set(scanned.calls), {s.account_id for s in scanned.sightings}
    same = ((sql_calls, sql_excluded) == (calls, excluded)
            and all(found_calls == calls for found_calls in found.values()))
    print(f"equivalence check over {args.window_days:g} days: Python rule over the records as JSON Lines "
          f"{python_seconds:.2f} s ({len(calls):,} calls); SQL in DuckDB {queried - loaded:.2f} s, transpiling and "
          f"rows to calls included ({len(result):,} rows), after loading the table in {loaded - began:.2f} s: "
          f"{'the same matches' if same else 'THE MATCHES DIFFER'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
