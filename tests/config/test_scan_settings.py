"""`scan` reads its detection settings through the one settings model's detection part: same names, defaults, ranges
and errors as the full settings, and no Slack setting needed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config.errors import SettingsError
from bot.config.scan_settings import scan_settings
from bot.config.settings import load_settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("SESGUARD_LEARNING_DAYS", "SESGUARD_FORGET_DAYS", "SESGUARD_GROUP_MINUTES", "SESGUARD_IDENTITY_KEY",
                 "SESGUARD_EXERCISE_USER_AGENTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults_are_those_of_the_full_settings(clean_env):
    tuning, identity_key = scan_settings()
    settings = load_settings()
    assert tuning == settings.tuning and identity_key == settings.identity_key == "principal"


def test_the_default_exercise_tool_is_stratus_red_team(clean_env):
    tuning, _ = scan_settings()
    assert tuning.exercise_user_agents == ("stratus-red-team_",) == tuple(load_settings().exercise_user_agents)


@pytest.mark.parametrize("value, prefixes", [
    ("pacu/", ("pacu/",)),
    (" stratus-red-team_ , pacu/,", ("stratus-red-team_", "pacu/")),
    ("", ()),  # set but empty: no exercise tool at all
])
def test_exercise_user_agents_are_comma_separated_prefixes(clean_env, value, prefixes):
    clean_env.setenv("SESGUARD_EXERCISE_USER_AGENTS", value)
    tuning, _ = scan_settings()
    assert tuning.exercise_user_agents == prefixes == load_settings().tuning.exercise_user_agents


def test_dot_env_is_read_and_the_environment_wins(clean_env, tmp_path):
    (tmp_path / ".env").write_text("SESGUARD_LEARNING_DAYS=0.5\nSESGUARD_GROUP_MINUTES=5\nSESGUARD_IDENTITY_KEY=arn\n")
    clean_env.setenv("SESGUARD_GROUP_MINUTES", "15")
    tuning, identity_key = scan_settings()
    assert tuning.learning == timedelta(hours=12) and tuning.group == timedelta(minutes=15)
    assert identity_key == "arn"
    assert (tuning, identity_key) == (load_settings().tuning, load_settings().identity_key)


@pytest.mark.parametrize("name, value", [
    ("SESGUARD_LEARNING_DAYS", "seven"), ("SESGUARD_LEARNING_DAYS", "-1"), ("SESGUARD_FORGET_DAYS", "0"),
    ("SESGUARD_GROUP_MINUTES", "nan"), ("SESGUARD_IDENTITY_KEY", "session"), ("SESGUARD_LEARNING_DAYS", "inf"),
    ("SESGUARD_FORGET_DAYS", "1e12"),  # would overflow the date arithmetic
])
def test_an_invalid_setting_is_one_line_naming_it(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        scan_settings()
    assert raised.value.message.startswith(f"sesguard: invalid setting {name}:")
    assert raised.value.code == 2
    with pytest.raises(SettingsError):  # the full settings refuse it too
        load_settings()
