"""The password rules: the built-in list of common passwords, and what the policy refuses."""

from __future__ import annotations

import pytest

from hds_auth.passwords.policy import check_password_policy, common_passwords
from hds_common.errors import UnprocessableContent


def test_common_password_list() -> None:
    passwords = common_passwords()
    assert len(passwords) >= 300
    assert "password123" in passwords
    assert all(p == p.lower() for p in passwords)


@pytest.mark.parametrize(
    ("password", "slug"),
    [
        ("123456789", "password-too-short"),
        ("x" * 1025, "password-too-long"),
        ("QwertyUiop", "password-too-common"),
        ("iloveyou123", "password-too-common"),
        ("someone.long@example.org", "password-too-common"),
    ],
)
def test_password_policy(password: str, slug: str) -> None:
    with pytest.raises(UnprocessableContent) as caught:
        check_password_policy(password, min_length=10, email="someone.long@example.org")
    assert caught.value.slug == slug


def test_a_reasonable_password_passes() -> None:
    check_password_policy("grey lantern over the bay", min_length=10, email="a@example.org")
