"""The store failing under real processes (SPEC §2–§3).

- Unreachable (or unusable) at start: every command that uses the store stops with one clear line, a
  non-zero exit status, and no password in it.
- Lost while `worker` and `serve` run (PostgreSQL behind a link the test cuts, with events pulled but not
  yet stored): the worker keeps retrying, `/healthz` says 503, nothing is half-written; once the store is
  back, every event is stored once and every alert is posted once.

`sesguard demo` is not here: it works in a store of its own (a fresh temporary SQLite file), never
DATABASE_URL.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from bot.cli.commands import main
from bot.store.schema import migrate
from detection.store import EventRow, SignalHistory, Store
from tests.support.cuttable_link import CuttableLink
from tests.support.local_aws import ses_calls, user
from tests.support.postgres import empty_postgres as _empty_postgres
from tests.support.records import FIXTURES
from tests.support.sesguard_processes import (
    DB_PASSWORD,
    TRIAGER,
    closed_port,
    deployed,
    leaked_secrets,
    run,
    sesguard_env,
    wait_for,
)
from tests.support.slack_signing import get

pytestmark = [pytest.mark.processes, pytest.mark.slow]

COMMANDS = {
    "scan --db": ["scan", str(FIXTURES), "--db", "{url}"],
    "poll --once": ["poll", "--once"],
    "worker": ["worker"],
    "serve": ["serve", "--port", "0"],
    "socket": ["socket"],
}
UNUSABLE = {
    "PostgreSQL refusing connections": f"postgresql+psycopg://sesguard:{DB_PASSWORD}@127.0.0.1:{{closed}}/sesguard",
    "SQLite file in a missing folder": "sqlite:////nonexistent-sesguard-folder/sesguard.db",
}


def unusable(store: str) -> str:
    return UNUSABLE[store].format(closed=closed_port())


def arguments(command: str, url: str) -> list[str]:
    return [part.format(url=url) for part in COMMANDS[command]]


def assert_one_clear_line(status: int, stderr: str, store: str) -> None:
    lines = stderr.strip().splitlines()
    assert status == 1 and len(lines) == 1, (status, lines)
    assert lines[0].startswith("sesguard: cannot use the database "), lines
    if "PostgreSQL" in store:
        assert "sesguard:***@127.0.0.1" in lines[0], lines  # the URL is named, its password hidden
    assert leaked_secrets(stderr) == {}


@pytest.mark.parametrize("store", UNUSABLE)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_stops_with_one_line_when_the_store_is_unusable_at_start(command, store, aws, tmp_path,
                                                                                monkeypatch, capsys):
    """Through `bot.cli.commands.main`, as `python -m bot` runs it (the processes themselves: the test below)."""
    url = unusable(store)
    for name, value in sesguard_env(aws.env, "http://127.0.0.1:9/api/", url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    status = main(arguments(command, url))
    captured = capsys.readouterr()
    assert_one_clear_line(status, captured.err, store)
    assert captured.out == ""


def test_serve_and_worker_processes_exit_1_with_one_line_when_the_store_is_unreachable(aws, tmp_path):
    store = "PostgreSQL refusing connections"
    env = sesguard_env(aws.env, "http://127.0.0.1:9/api/", unusable(store))
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda command: run(arguments(command, env["DATABASE_URL"]), env, tmp_path),
                             ["serve", "worker"]))
    for process in done:
        assert_one_clear_line(process.returncode, process.stderr, store)


def test_the_store_lost_mid_run_loses_nothing_and_half_writes_nothing(aws, tmp_path, postgres_url):
    _empty_postgres(postgres_url)
    store = Store(postgres_url)
    migrate(store)
    upstream = sa.make_url(postgres_url)
    with CuttableLink(upstream.host or "127.0.0.1", upstream.port or 5432) as link:
        through_link = upstream.set(host="127.0.0.1", port=link.port, password=DB_PASSWORD)
        with deployed(aws, tmp_path, store, through_link.render_as_string(hide_password=False)) as deployment:
            api = deployment.aws.api
            api.add_events(*ses_calls(user("alice"), 3, days_ago=12))
            worker = deployment.worker()
            served = deployment.serve()
            wait_for(deployment.watermark, "the backfill", [worker])
            watermark = deployment.watermark()

            held = api.inject("hold")  # the next LookupEvents request waits for the test
            new = ses_calls(user("mallory"), 3) + ses_calls(user("oscar"), 2)
            api.add_events(*new)
            wait_for(held.reached.is_set, "the worker's request to be held", [worker])
            link.cut()  # the store goes away while the events are pulled, before they are stored
            held.release.set()
            wait_for(lambda: worker.output().count("OperationalError") >= 3, "the worker meeting the outage", [worker])
            assert get(f"{served.base}/healthz").status == 503
            # Without the store no request can be checked against replays: it fails closed (Slack shows an error).
            assert served.command("status", TRIAGER, deployment.slack.response_url("during")).status == 500

            link.restore()
            wait_for(lambda: len(deployment.alerts_in_channel()) == 2, "both alerts after the outage", [worker])
            wait_for(lambda: get(f"{served.base}/healthz").status == 200, "/healthz recovered", [served.running])
            assert worker.terminate() == 0

            deployment.assert_each_alert_once()
            assert deployment.watermark() > watermark
            stored = [row.event_id for row in deployment.rows(EventRow)]
            assert len(stored) == len(set(stored)) == 3 + len(new)
            for row in deployment.signals():  # whole signals: their calls and their "detected" line, once
                calls = [e for e in deployment.rows(EventRow) if e.signal_id == row.signal_id]
                detected = [h for h in deployment.rows(SignalHistory)
                            if h.signal_id == row.signal_id and h.action == "detected"]
                assert len(calls) == row.event_count and len(detected) == 1, row.identity
            assert leaked_secrets(*deployment.outputs()) == {}
