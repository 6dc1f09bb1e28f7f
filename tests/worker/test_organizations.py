"""AWS Organizations (SPEC §7): moto's Organizations over real HTTP lists the accounts, the CloudTrail
stand-in answers STS AssumeRole and LookupEvents for each of them."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from sqlmodel import select

from bot.health.report import FAILING_AFTER_INTERVALS, health
from bot.worker.ingest.poll import poll_once
from bot.worker.ingest.sources import make_source
from bot.worker.tables import PollState
from detection.sources.lookup import Backoff, LookupSource, lookup_pacer
from detection.sources.organizations import Listing, _add, member_role_arn
from detection.store import SignalRow
from tests.support.cuttable_link import CuttableLink
from tests.support.local_aws import OWN_ACCOUNT, ROLE_ARN, ses_calls, user, worker_settings

ROLE_NAME = "OrganizationAccountAccessRole"
FAST = Backoff(base=0.01, cap=0.05)
RELAXED_LIMIT = 20  # the pace is not the subject here (tests/worker/test_lookup.py proves it)


@pytest.fixture(autouse=True)
def relaxed_endpoint(aws):
    aws.api.limit = RELAXED_LIMIT


@pytest.fixture
def organizations(aws, monkeypatch):
    """moto's server for Organizations, with no organisation yet (moto keeps its state per process, shared
    by every server it runs: only the Organizations part of it is emptied)."""
    from moto.organizations.models import organizations_backends
    from moto.server import ThreadedMotoServer

    organizations_backends.reset()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_ORGANIZATIONS", url)
    client = boto3.client("organizations", region_name="us-east-1", endpoint_url=url)
    client.server_address = (host, port)
    yield client
    server.stop()


def new_account(organizations, name: str) -> str:
    status = organizations.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]
    return status["AccountId"]


def management_account(organizations) -> str:
    return organizations.describe_organization()["Organization"]["MasterAccountId"]


def settings_for(store, **overrides):
    values = {"database_url": store.url, "backfill_days": 30, "learning_days": 7, "lookback_minutes": 20,
              "aws_regions": ["us-east-1"], "org_role_name": ROLE_NAME, "poll_concurrency": 4}
    values.update(overrides)
    return worker_settings(**values)


def source_for(settings, store) -> LookupSource:
    return LookupSource(settings.aws_regions, settings.role_arns, store, backoff=FAST,
                        pacer=lookup_pacer(store, limit=RELAXED_LIMIT), org_role_name=settings.org_role_name,
                        exclude=settings.accounts_exclude)


def signals(store) -> list[SignalRow]:
    with store.session() as session:
        return list(session.exec(select(SignalRow).order_by(SignalRow.first_seen)))


def states(store) -> dict[str, PollState]:
    with store.session() as session:
        return {row.account_id: row for row in session.exec(select(PollState).where(PollState.region == "us-east-1"))}


def test_every_active_account_is_read_through_its_role_and_a_new_one_is_backfilled_from_the_next_pass(
        aws, organizations, store):
    organizations.create_organization(FeatureSet="ALL")
    first, second = new_account(organizations, "first"), new_account(organizations, "second")
    closed = new_account(organizations, "closed")
    organizations.close_account(AccountId=closed)  # SUSPENDED: never read
    for account in (first, second, closed):
        aws.api.add_role(member_role_arn("aws", account, ROLE_NAME))
    aws.api.add_events(*ses_calls(user("alice", first), 2, account=first, days_ago=9))
    settings = settings_for(store, accounts_exclude=[management_account(organizations)])
    source = source_for(settings, store)

    backfill = poll_once(settings, store, source, notify=False)
    assert backfill.ok, backfill.lines()
    assert sorted(o.place.account_id for o in backfill.places) == sorted([OWN_ACCOUNT, first, second])
    assert all(o.backfill for o in backfill.places)
    assumed = sorted(r.params["RoleArn"] for r in aws.api.requests if r.action == "AssumeRole")
    assert assumed == sorted(f"arn:aws:iam::{account}:role/{ROLE_NAME}" for account in (first, second))
    assert {r.account for r in aws.api.lookups()} == {OWN_ACCOUNT, first, second}

    # An account joins the organisation between two passes, with history of its own.
    joined = new_account(organizations, "joined")
    aws.api.add_role(member_role_arn("aws", joined, ROLE_NAME))
    aws.api.add_events(*ses_calls(user("bob", joined), 2, account=joined, days_ago=9),
                       *ses_calls(user("mallory", first), 1, account=first))
    after = poll_once(settings, store, source, notify=False)
    assert after.ok, after.lines()
    by_account = {o.place.account_id: o for o in after.places}
    assert by_account[joined].backfill and not by_account[first].backfill
    assert [s.identity for s in signals(store)] == [f"arn:aws:iam::{first}:user/mallory"]  # bob was learned

    aws.api.add_events(*ses_calls(user("eve", joined), 1, account=joined))
    assert poll_once(settings, store, source, notify=False).ok
    assert sorted(s.identity for s in signals(store)) == sorted([
        f"arn:aws:iam::{first}:user/mallory", f"arn:aws:iam::{joined}:user/eve"])
    # Each role was assumed once: its credentials live on between passes.
    assert len([r for r in aws.api.requests if r.action == "AssumeRole"]) == 3


def test_an_account_whose_role_cannot_be_assumed_is_a_health_error_of_that_account_alone(aws, organizations, store):
    organizations.create_organization(FeatureSet="ALL")
    readable, locked = new_account(organizations, "readable"), new_account(organizations, "locked")
    aws.api.add_role(member_role_arn("aws", readable, ROLE_NAME))  # `locked` has no such role
    settings = settings_for(store, accounts_exclude=[management_account(organizations)])
    result = poll_once(settings, store, source_for(settings, store), notify=False)

    assert not result.ok and result.source_error is None
    errors = {o.place.account_id: o.error for o in result.places}
    assert errors[OWN_ACCOUNT] is None and errors[readable] is None
    assert "AccessDenied" in errors[locked] and f"arn:aws:iam::{locked}:role/{ROLE_NAME}" in errors[locked]
    rows = states(store)
    assert rows[readable].last_success_at is not None and rows[readable].last_error is None
    assert rows[locked].last_success_at is None and "AccessDenied" in rows[locked].last_error
    report = {s.account_id: s for s in health(store, settings).sources}
    assert "AccessDenied" in (report[locked].last_error or "")
    assert report[readable].last_error is None and report[OWN_ACCOUNT].last_error is None


def test_accounts_are_listed_page_by_page_and_excluded_ones_are_skipped(aws, organizations, store):
    organizations.create_organization(FeatureSet="ALL")
    accounts = [new_account(organizations, f"member{number}") for number in range(24)]  # two pages of 20
    skipped = accounts[:2]
    for account in accounts:
        aws.api.add_role(member_role_arn("aws", account, ROLE_NAME))
    settings = settings_for(store, accounts_exclude=[management_account(organizations), *skipped],
                            poll_concurrency=16)
    result = poll_once(settings, store, source_for(settings, store), notify=False)
    assert result.ok, result.lines()
    assert sorted(o.place.account_id for o in result.places) == sorted([OWN_ACCOUNT, *accounts[2:]])
    assert not {r.account for r in aws.api.lookups()} & set(skipped)


def test_a_listing_that_fails_fails_the_source_and_the_accounts_listed_before_are_still_read(
        aws, organizations, store, monkeypatch):
    organizations.create_organization(FeatureSet="ALL")
    member = new_account(organizations, "member")
    aws.api.add_role(member_role_arn("aws", member, ROLE_NAME))
    aws.api.add_role(ROLE_ARN)
    with CuttableLink(*organizations.server_address) as link:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ORGANIZATIONS", f"http://127.0.0.1:{link.port}")
        settings = settings_for(store, role_arns=[ROLE_ARN], accounts_exclude=[management_account(organizations)])
        source = source_for(settings, store)
        assert poll_once(settings, store, source, notify=False).ok
        read = sorted([OWN_ACCOUNT, ROLE_ARN.split(":")[4], member])
        with store.session() as session:
            listed_at = session.get(PollState, ("lookup", "*", "*")).last_success_at

        link.cut()  # Organizations unreachable: the accounts listed last time are read meanwhile
        result = poll_once(settings, store, source, notify=False)
        assert not result.ok and "organizations:ListAccounts" in result.source_error
        assert sorted(o.place.account_id for o in result.places) == read
        assert all(o.error is None and not o.backfill for o in result.places)
        with store.session() as session:
            whole = session.get(PollState, ("lookup", "*", "*"))
        assert whole.consecutive_failures == 1 and "ListAccounts" in whole.last_error
        assert whole.last_success_at == listed_at  # a failed listing is no success of the source
        later = listed_at + timedelta(seconds=settings.poll_seconds * (FAILING_AFTER_INTERVALS + 1))
        assert any(source.whole_source and source.failing for source in health(store, settings, now=later).sources)
        assert states(store)[member].retired_at is None

        link.restore()
        again = poll_once(settings, store, source, notify=False)
        assert again.ok and sorted(o.place.account_id for o in again.places) == read


def test_the_worker_source_is_built_from_the_settings(aws, organizations, store):
    settings = settings_for(store, accounts_exclude=["333333333333"])
    source = make_source(settings, store)
    assert source.org_role_name == ROLE_NAME and source.exclude == {"333333333333"}


def test_a_listing_entry_without_a_usable_id_is_skipped_and_counted():
    listing = Listing()
    for entry in ({"Id": "123456789012", "Status": "ACTIVE"}, {"Id": "arn:aws:iam::x", "Status": "ACTIVE"},
                  {"Id": "1234567890123", "Status": "ACTIVE"}, "garbage", {"Id": 123456789012, "Status": "ACTIVE"},
                  {"Id": "210987654321", "State": "SUSPENDED", "Status": "ACTIVE"},
                  {"Id": "111122223333", "State": "ACTIVE"}, {"Id": "123456789012", "Status": "ACTIVE"}):
        _add(listing, entry)
    assert listing.active == ["123456789012", "111122223333"] and listing.bad == 4 and listing.inactive == 1


def test_the_settings_refuse_a_role_name_or_an_account_that_could_not_be_sent_to_iam():
    from bot.config.errors import SettingsError

    for bad in ({"org_role_name": "reader:*"}, {"org_role_name": "a" * 65}, {"accounts_exclude": "12345"},
                {"accounts_exclude": "123456789012,<!channel>"}):
        with pytest.raises(SettingsError):
            worker_settings(**bad)
    assert worker_settings(org_role_name="security/sesguard-reader").org_role_name == "security/sesguard-reader"
    assert worker_settings(accounts_exclude="123456789012, 210987654321").accounts_exclude == [
        "123456789012", "210987654321"]
