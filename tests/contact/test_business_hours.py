"""Business hours for the contact time-out (SPEC §8): the clock runs only inside them, DST-correct."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from slack_sdk import WebClient
from sqlmodel import select

from bot.config.business_hours import contact_deadline, parse
from bot.contact.questions import ask, escalate_overdue
from bot.contact.tables import Contact
from tests.support.slack_harness import (
    CHANNEL,
    TOKEN,
    TRIAGER,
    cloudtrail_record,
    sso_identity,
    store_signals,
)

BERLIN = "Mon-Fri 09:00-18:00 Europe/Berlin"
ALICE = "UALICE001"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_time_out_skips_the_weekend_across_the_autumn_clock_change():
    # Friday 23 October 2026, 17:30 in Berlin (summer time, UTC+2); the clocks go back on Sunday the 25th.
    asked = utc(2026, 10, 23, 15, 30)
    # 30 minutes on Friday, 90 on Monday from 09:00 winter time (UTC+1): 10:30 in Berlin, 09:30 UTC.
    assert parse(BERLIN).deadline(asked, 120) == utc(2026, 10, 26, 9, 30)


def test_a_time_out_skips_the_weekend_across_the_spring_clock_change():
    # Friday 27 March 2026, 17:00 in Berlin (winter time, UTC+1); summer time from Sunday the 29th.
    assert parse(BERLIN).deadline(utc(2026, 3, 27, 16, 0), 120) == utc(2026, 3, 30, 8, 0)  # Monday 10:00 UTC+2


@pytest.mark.parametrize("asked, minutes, due", [
    (utc(2026, 6, 2, 5, 0), 30, utc(2026, 6, 2, 7, 30)),  # before opening: counts from 09:00 local
    (utc(2026, 6, 2, 17, 0), 60, utc(2026, 6, 3, 8, 0)),  # after closing: the next morning
    (utc(2026, 6, 6, 12, 0), 1, utc(2026, 6, 8, 7, 1)),  # Saturday: Monday
    (utc(2026, 6, 2, 8, 0), 540 * 2, utc(2026, 6, 4, 8, 0)),  # 8 h on Tuesday, 9 on Wednesday, 1 on Thursday
])
def test_time_counts_only_inside_the_window(asked, minutes, due):
    assert parse(BERLIN).deadline(asked, minutes) == due


def test_without_business_hours_the_time_out_is_plain_minutes():
    assert contact_deadline(None, utc(2026, 6, 6, 12, 0), 90) == utc(2026, 6, 6, 13, 30)


def test_days_wrap_and_lists_and_midnight():
    assert parse("Fri-Mon 00:00-24:00 UTC").weekdays == {4, 5, 6, 0}
    assert parse("mon,Wed-thursday 08:00-12:00 America/New_York").weekdays == {0, 2, 3}
    assert parse("Sat-Sun 00:00-24:00 UTC").deadline(utc(2026, 6, 5, 23, 0), 120) == utc(2026, 6, 6, 2, 0)


@pytest.mark.parametrize("value", ["Mon-Fri", "Mon-Fri 09:00-18:00 Mars/Olympus", "Mon-Fri 18:00-09:00 UTC",
                                   "Mo-Fr 09:00-18:00 UTC", "Mon-Fri 09:00-18:60 UTC", "Mon-Fri 09:00-18:00 ../etc/x",
                                   "Mon-Tue-Wed 09:00-18:00 UTC", ""])
def test_a_bad_value_is_refused_in_words(value):
    with pytest.raises(ValueError):
        parse(value)


@pytest.fixture
def harness_options():
    return {"business_hours": BERLIN, "contact_timeout_minutes": 120}


@pytest.fixture
def slack_people():
    return {"alice@example.com": ALICE}


def test_an_unanswered_question_asked_on_friday_evening_escalates_on_monday(bot):
    [signal_id] = store_signals(bot.store, cloudtrail_record(identity=sso_identity("alice@example.com")))
    bot.post_alerts()
    client = WebClient(token=TOKEN, base_url=bot.slack.api_url)
    asked = ask(bot.store, bot.settings, client, signal_id, ALICE, TRIAGER, now=utc(2026, 10, 23, 15, 30))
    assert asked.new
    with bot.store.session() as session:
        [question] = session.exec(select(Contact)).all()
    assert question.deadline == utc(2026, 10, 26, 9, 30)
    ts = bot.alert(signal_id).slack_ts
    asked_line = bot.slack.replies(CHANNEL, ts)[-1].text
    assert "120 minutes of business hours (Mon-Fri 09:00-18:00 Europe/Berlin)" in asked_line
    assert "2026-10-26 09:30:00 UTC" in asked_line
    for quiet in (utc(2026, 10, 23, 16, 1), utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 23, 0),
                  utc(2026, 10, 26, 9, 29)):
        assert escalate_overdue(bot.store, bot.settings, client, now=quiet) == 0
    assert bot.alert(signal_id).status == "contacting"
    assert escalate_overdue(bot.store, bot.settings, client, now=utc(2026, 10, 26, 9, 30)) == 1
    assert bot.alert(signal_id).status == "escalated"
    assert bot.slack.replies(CHANNEL, ts)[-1].text.startswith("<!channel> :hourglass:")
    assert "within 120 minutes of business hours" in bot.slack.replies(CHANNEL, ts)[-1].text
