"""What containment lets through to IAM: AWS's documented patterns, and the alert's own account."""

from __future__ import annotations

import pytest

from bot.contain import names

ACCOUNT = "111122223333"


@pytest.mark.parametrize("arn, name", [
    (f"arn:aws:iam::{ACCOUNT}:user/alice", "alice"),
    (f"arn:aws:iam::{ACCOUNT}:user/division_abc/subdivision_xyz/Bob+Smith=x,y.z@example-1",
     "Bob+Smith=x,y.z@example-1"),
    (f"arn:aws-us-gov:iam::{ACCOUNT}:user/ci", "ci"),
    (f"arn:aws-cn:iam::{ACCOUNT}:user/{'a' * 64}", "a" * 64),
])
def test_valid_user_arns_name_their_user(arn, name):
    assert names.iam_user(arn, ACCOUNT).name == name


@pytest.mark.parametrize("arn", [
    f"arn:aws:iam::{ACCOUNT}:user/{'a' * 65}",  # longer than IAM allows
    f"arn:aws:iam::{ACCOUNT}:user/al ice",
    f"arn:aws:iam::{ACCOUNT}:user/alice?Action=DeleteUser",
    f"arn:aws:iam::{ACCOUNT}:user/al\u0130ce",  # not ASCII: Python's \\w would let it through
    f"arn:aws:iam::{ACCOUNT}:user/",
    f"arn:aws:iam::{ACCOUNT}:user/alice\n",
    f"arn:aws:iam::{ACCOUNT}:root",
    f"arn:aws:sts::{ACCOUNT}:assumed-role/r/s",
    "arn:aws:iam::1111222233334:user/alice",
    f"arn:evil:iam::{ACCOUNT}:user/alice",
    f"arn:aws:iam::{ACCOUNT}:user/{'p/' * 300}alice",  # a path over 512 characters
])
def test_anything_else_is_refused(arn):
    with pytest.raises(names.Refused):
        names.iam_user(arn, ACCOUNT)


def test_the_arn_must_be_in_the_alerts_account():
    with pytest.raises(names.Refused, match=f"belongs to account {ACCOUNT}, not to the alert's account 999988887777"):
        names.iam_user(f"arn:aws:iam::{ACCOUNT}:user/alice", "999988887777")
    with pytest.raises(names.Refused, match="not a 12-digit AWS account ID"):
        names.iam_user(f"arn:aws:iam::{ACCOUNT}:user/alice", "1111-2222-3333")


def test_only_well_formed_long_term_keys_are_taken_and_temporary_ones_are_left_out():
    keys = ["ASIAEXAMPLE", "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", ""]
    assert names.long_term_keys(keys) == ["AKIAIOSFODNN7EXAMPLE"]
    for forged in ("AKIAIOSFODNN7EXAMPLE1", "AKIAiosfodnn7example", "AKIA<!channel>XAMPLE"):
        with pytest.raises(names.Refused, match="is not an AWS access key ID"):
            names.long_term_keys([forged])


def test_the_role_of_a_session_is_read_from_the_session_and_checked_against_the_role_arn():
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-deploy/i-0abc123"
    assert names.iam_role(f"arn:aws:iam::{ACCOUNT}:role/service/ci-deploy", session, ACCOUNT).name == "ci-deploy"
    assert names.iam_role(session, session, ACCOUNT).name == "ci-deploy"  # identity key `arn`
    with pytest.raises(names.Refused, match="does not name the role of the session"):
        names.iam_role(f"arn:aws:iam::{ACCOUNT}:role/admin", session, ACCOUNT)
    with pytest.raises(names.Refused, match="is not an assumed-role ARN"):
        names.iam_role(f"arn:aws:iam::{ACCOUNT}:role/ci", f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/../admin/s", ACCOUNT)


def test_identity_center_roles_are_recognised():
    role = "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/alice@example.com"
    assert names.is_identity_center_role(session, session)
    assert names.is_identity_center_role(f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/{role}", session)
    assert not names.is_identity_center_role(f"arn:aws:iam::{ACCOUNT}:role/ci",
                                             f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/s")
