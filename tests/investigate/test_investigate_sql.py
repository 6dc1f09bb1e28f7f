"""`/sesguard investigate` with a SQL engine configured (SPEC §6, §9), through the signed HTTP endpoint: an ARN's
activity and an address's whole traffic come from one Athena query (the stand-in, real HTTP), not LookupEvents."""

from __future__ import annotations

import json
import time

import pytest

from tests.fakes.sql_engines import SqlEngines
from tests.support import sql_trails as trails
from tests.support.attack_story import IP, KEY, NEW_KEY, attack
from tests.support.local_aws import OWN_ACCOUNT
from tests.support.slack_harness import TRIAGER, Harness

MALLORY = f"arn:aws:iam::{OWN_ACCOUNT}:user/mallory"


@pytest.fixture
def engines(aws):
    stand_in = SqlEngines()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def harness_options(aws, engines, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_ATHENA", engines.start())
    return {"auto_investigate": "off", "athena_table": trails.TABLE, "athena_output": "s3://results/"}


def _command(bot: Harness, text: str) -> dict:
    name = f"investigate-{time.monotonic_ns()}"
    assert bot.sender.command(text, TRIAGER, bot.slack.response_url(name)).status == 200
    bot.settle()
    answers = [body for key, body in bot.slack.responses if key == name]
    return answers[-1]


def _text(answer: dict) -> str:
    return answer.get("text", "") + json.dumps(answer.get("blocks", []), ensure_ascii=False)


def test_an_address_is_answered_with_its_whole_traffic_from_the_engine(bot, aws, engines):
    story = attack()
    engines.load_athena(trails.TABLE, story.everything)
    body = _text(_command(bot, f"investigate {IP} 5"))
    assert KEY in body and NEW_KEY in body and "ses:SendEmail" in body
    assert "SQL engine" not in body  # the note that one would help is not needed
    assert aws.api.lookups() == []
    started, = engines.bodies("StartQueryExecution")
    assert IP not in started["QueryString"] and f"'{IP}'" in started["ExecutionParameters"]


def test_an_arn_is_read_from_the_engine_in_every_region(bot, aws, engines):
    story = attack(second_region="ap-south-1")
    engines.load_athena(trails.TABLE, story.everything)
    body = _text(_command(bot, f"investigate {MALLORY} 2"))
    assert "iam:CreateAccessKey ×1" in body and "ap-south-1" in body
    assert aws.api.lookups() == []
