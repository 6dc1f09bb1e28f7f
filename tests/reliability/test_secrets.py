"""Secrets never appear in error messages (SPEC §5: a bad setting is one line naming it, never its value).

The processes of the other reliability tests run with every secret set (Slack tokens, signing secret,
AWS secret key, a database password) and each test greps their whole output for them. Here: the start-up
errors, where a secret is most likely to be echoed — a database URL that cannot be parsed, and a secret
pasted into the wrong setting.
"""

from __future__ import annotations

import pytest

from bot.cli.commands import main
from tests.support.sesguard_processes import (
    APP_TOKEN,
    BOT_TOKEN,
    DB_PASSWORD,
    SIGNING_SECRET,
    leaked_secrets,
    sesguard_env,
)

pytestmark = pytest.mark.slow

BAD_URLS = {
    "port not a number": f"postgresql+psycopg://sesguard:{DB_PASSWORD}@db.internal:notaport/sesguard",
    "unknown driver": f"postgresql+nosuchdriver://sesguard:{DB_PASSWORD}@db.internal/sesguard",
    "not a URL at all": DB_PASSWORD,
    "password with separators": f"postgresql+psycopg://sesguard:{DB_PASSWORD}:@x@db.internal:5432/sesguard",
}
MISPLACED = {  # a secret pasted into a setting that is checked: the setting is named, the value is not
    "SLACK_ALERT_CHANNEL": BOT_TOKEN,
    "SESGUARD_POLL_SECONDS": SIGNING_SECRET,
    "SESGUARD_ROLE_ARNS": APP_TOKEN,
    "SESGUARD_IDENTITY_KEY": DB_PASSWORD,
}


@pytest.fixture
def deployed_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env of a developer's
    for name, value in sesguard_env({}, "http://127.0.0.1:9/api/", f"sqlite:///{tmp_path / 'x.db'}").items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize("case", BAD_URLS)
def test_an_unusable_database_url_is_one_line_without_its_password(deployed_environment, capsys, case):
    deployed_environment.setenv("DATABASE_URL", BAD_URLS[case])
    status = main(["poll", "--once"])
    err = capsys.readouterr().err
    assert status in (1, 2) and len(err.strip().splitlines()) == 1, err
    assert err.startswith("sesguard: ") and leaked_secrets(err) == {}


@pytest.mark.parametrize("setting", MISPLACED)
def test_a_secret_in_the_wrong_setting_is_named_never_shown(deployed_environment, capsys, setting):
    deployed_environment.setenv(setting, MISPLACED[setting])
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and setting in err and leaked_secrets(err) == {}
