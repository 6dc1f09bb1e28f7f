"""§6's investigations on a SQL engine (SPEC §9): the subject's other activity, every event source and region, in one
query over the Athena and Lake stand-ins; the same summary as from the records themselves; hostile subjects never
reach the SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.investigate.reader import SharedReader
from detection.investigate import Subject, signal_window, summarise
from detection.sources.sql.activity import EngineActivityReader
from detection.sources.sql.engine import EngineInput, EngineSettings
from detection.sources.sql.running import Limits
from tests.fakes.sql_engines import SqlEngines
from tests.support import attack_story as story
from tests.support import sql_trails as trails
from tests.support.local_aws import OWN_ACCOUNT, worker_settings

pytestmark = pytest.mark.processes

NOW = datetime.now(UTC).replace(microsecond=0)
MALLORY = f"arn:aws:iam::{OWN_ACCOUNT}:user/mallory"
SETTINGS = EngineSettings("primary", "s3://results/", Limits(first_wait=0.001, longest_wait=0.001))


@pytest.fixture
def engines(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    stand_in = SqlEngines()
    endpoint = stand_in.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_ATHENA", endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", endpoint)
    yield stand_in
    stand_in.stop()


def _subject(**more) -> Subject:
    values = {"label": MALLORY, "account_id": OWN_ACCOUNT, "identity": MALLORY, "identity_type": "IAMUser",
              "access_keys": (story.KEY, story.NEW_KEY), "usernames": ("mallory",),
              "enumeration_start": NOW - timedelta(minutes=50)}
    values.update(more)
    return Subject(**values)


@pytest.mark.parametrize("engine", ["athena", "lake"])
def test_an_investigation_reads_every_region_in_one_query_and_finds_the_follow_on_abuse(engines, engine):
    attack = story.attack(NOW, second_region="ap-south-1")
    name = trails.TABLE if engine == "athena" else trails.STORE
    (engines.load_athena if engine == "athena" else engines.load_lake)(name, attack.everything)
    window = signal_window(NOW - timedelta(minutes=50), NOW - timedelta(minutes=49.8), 24, NOW)
    reader = EngineActivityReader(EngineInput(engine, name), SETTINGS, max_rows=500)
    summary = reader.investigate(_subject(), window, ["us-east-1"])
    expected = summarise(attack.everything, _subject(), window)
    found, wanted = summary.to_dict(), expected.to_dict()
    found.pop("reading"), wanted.pop("reading")
    assert found == wanted  # the summary of the records themselves
    assert summary.follow_on_names and "ap-south-1" in str(found)  # a region AWS_REGIONS does not name
    assert summary.reading.problems == [] and summary.reading.pages == 1
    started = engines.bodies("StartQueryExecution" if engine == "athena" else "StartQuery")
    assert len(started) == 1


def test_the_row_cap_is_said(engines):
    attack = story.attack(NOW)
    engines.load_athena(trails.TABLE, attack.everything)
    window = signal_window(NOW - timedelta(minutes=50), NOW - timedelta(minutes=49.8), 24, NOW)
    summary = EngineActivityReader(EngineInput("athena", trails.TABLE), SETTINGS, max_rows=3).investigate(
        _subject(), window)
    assert summary.reading.capped and summary.reading.complete_since is not None


@pytest.mark.parametrize("hostile", [{"identity": "arn:aws:iam::111122223333:user/x' OR '1'='1"},
                                     {"access_keys": ("AKIA' OR 1=1 --",)},
                                     {"account_id": "1 OR 1=1"}])
def test_a_hostile_subject_never_reaches_the_sql(engines, hostile):
    engines.load_athena(trails.TABLE, story.attack(NOW).everything)
    window = signal_window(NOW - timedelta(minutes=50), NOW - timedelta(minutes=49.8), 24, NOW)
    summary = EngineActivityReader(EngineInput("athena", trails.TABLE), SETTINGS, 500).investigate(
        _subject(**hostile), window)
    assert summary.reading.problems and summary.reading.problems[0].startswith("athena://cloudtrail.logs: not ")
    assert engines.requests == []


def test_with_an_athena_table_configured_investigations_read_the_engine(store):
    settings = worker_settings(database_url=store.url, athena_table=trails.TABLE)
    reader = SharedReader(settings, store)()
    assert isinstance(reader, EngineActivityReader) and reader.source.url == f"athena://{trails.TABLE}"
    assert reader.max_rows == settings.investigate_max_pages * 50


@pytest.mark.parametrize("engine", ["athena", "lake"])
def test_an_address_is_answered_with_its_whole_traffic_whoever_called(engines, engine):
    attack = story.attack(NOW)
    stranger = story.call(story.mallory("eve", key="AKIAEVEKEY0000000001"), "ListBuckets", NOW, 20,
                          source="s3.amazonaws.com", ip=story.IP)
    records = [*attack.everything, stranger]
    name = trails.TABLE if engine == "athena" else trails.STORE
    (engines.load_athena if engine == "athena" else engines.load_lake)(name, records)
    window = signal_window(NOW - timedelta(hours=5), NOW, 0, NOW)
    summary = EngineActivityReader(EngineInput(engine, name), SETTINGS, 500).address(story.IP, window)
    from_there = [rec for rec in records if rec["sourceIPAddress"] == story.IP and
                  NOW - timedelta(hours=5) - timedelta(hours=1) <= datetime.fromisoformat(rec["eventTime"])]
    assert summary.calls == len(from_there) and summary.reading.problems == []
    assert "AKIAEVEKEY0000000001" in str(summary.to_dict()) and story.KEY in str(summary.to_dict())


def test_a_hostile_address_never_reaches_the_sql(engines):
    engines.load_athena(trails.TABLE, story.attack(NOW).everything)
    window = signal_window(NOW - timedelta(hours=5), NOW, 0, NOW)
    summary = EngineActivityReader(EngineInput("athena", trails.TABLE), SETTINGS, 500).address(
        "198.51.100.66' OR '1'='1", window)
    assert summary.reading.problems and engines.requests == []


def test_sesguard_investigate_an_address_shows_its_traffic_from_the_engine(engines, tmp_path):
    from tests.support import records as r

    engines.load_athena(trails.TABLE, story.attack(NOW).everything)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL_ATHENA": engines.endpoint, "SESGUARD_ATHENA_TABLE": trails.TABLE,
           "SESGUARD_ATHENA_OUTPUT": "s3://results/", "DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    done = r.sesguard("investigate", story.IP, "--hours", "5", "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    import json

    answer = json.loads(done.stdout)
    assert answer["address"] == story.IP and answer["traffic"]["calls"] > 10 and "note" not in answer
