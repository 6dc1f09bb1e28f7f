"""SESGUARD_OWNER_TAGS and SESGUARD_KNOWN_NETWORKS (SPEC §10): their defaults, their form, and one line naming
the setting when an entry is wrong."""

from __future__ import annotations

import ipaddress

import pytest

from bot.config.errors import SettingsError
from bot.config.networks import parse_networks
from tests.support.local_aws import worker_settings


def test_the_defaults():
    settings = worker_settings()
    assert settings.owner_tags == ["owner", "email", "contact"] and settings.known_networks == []


def test_known_networks_with_and_without_labels_most_specific_first():
    settings = worker_settings(SESGUARD_KNOWN_NETWORKS=" 10.0.0.0/8 , 10.1.0.0/16=Berlin office,2001:db8::/32=VPN ,"
                                                     "192.0.2.7")
    networks = parse_networks(settings.known_networks)
    assert [(str(n.network), n.label) for n in networks] == [
        ("192.0.2.7/32", None), ("10.1.0.0/16", "Berlin office"), ("10.0.0.0/8", None), ("2001:db8::/32", "VPN")]
    assert networks[1].contains(ipaddress.ip_address("10.1.2.3"))
    assert not networks[3].contains(ipaddress.ip_address("10.1.2.3"))


@pytest.mark.parametrize("value, problem", [
    ("10.0.0.0/8,not-a-network", "entry 2: is not a CIDR"),
    ("10.0.0.0/33=x", "entry 1: is not a CIDR"),
    ("10.0.0.0/8=<!channel>", "entry 1: its label must be 1 to 80 characters"),
    ("10.0.0.0/8=" + "x" * 81, "entry 1: its label must be"),
    ("10.0.0.0/8=", "entry 1: its label must be"),
])
def test_a_bad_known_network_stops_start_up_naming_the_setting_and_the_entry(value, problem):
    with pytest.raises(SettingsError) as raised:
        worker_settings(SESGUARD_KNOWN_NETWORKS=value)
    assert f"invalid setting SESGUARD_KNOWN_NETWORKS: {problem}" in raised.value.message


def test_owner_tags_are_iam_tag_keys():
    assert worker_settings(SESGUARD_OWNER_TAGS="Owner, cost:owner-email,Contact Person").owner_tags == [
        "Owner", "cost:owner-email", "Contact Person"]
    with pytest.raises(SettingsError) as raised:
        worker_settings(SESGUARD_OWNER_TAGS="owner,<!channel>")
    assert "invalid setting SESGUARD_OWNER_TAGS: entry 2 is not an IAM tag key" in raised.value.message
