"""Many people behind one address (a hospital's NAT), one of them guessing, as deployed:
the five services as processes behind the gateway, the gateway behind an ingress whose
X-Forwarded-For it believes (``HDS_GATEWAY_TRUSTED_PROXIES``; the e2e suite's own address
plays the ingress), DLX clients asking for tokens, the production Argon2id cost.

A guesser behind the shared address must not lock the others out of their right
answers; the per-code lockout still stops guessing one code, from any number of
addresses.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from hds_common.testing.dicom import make_study, write_study
from tests.e2e.support import RunningSuite, publish

pytestmark = pytest.mark.slow

HOSPITAL = "198.51.100.7"  # the one public address of a hospital's NAT
BIRTH_DATE = "19650412"


def publish_one(suite: RunningSuite, folder: Path) -> str:
    write_study(folder, make_study(1, series=1, patient_id=f"NAT-{folder.name}"))
    code: str = publish(suite, folder, BIRTH_DATE)["code"]
    return code


def token(client: httpx.Client, code: str, answer: str, *, address: str) -> httpx.Response:
    """A DLX client behind ``address`` (as the ingress reports it) answers for ``code``."""
    return client.post(
        f"/dlx/v1/tokentfa/{code}",
        json={"tfaAnswer": [{"questionId": "1", "answer": answer}]},
        headers={"X-Forwarded-For": address},
    )


def unknown_code() -> str:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    raw = "".join(secrets.choice(alphabet) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def test_a_guesser_behind_a_shared_address_does_not_lock_out_the_others(
    suite: RunningSuite, tmp_path: Path
) -> None:
    victims_code = publish_one(suite, tmp_path / "victim")
    with httpx.Client(base_url=suite.gateway_url, timeout=120) as client:
        # 20 wrong answers from behind the hospital's address, on codes that do not exist.
        for _ in range(20):
            assert token(client, unknown_code(), "19000101", address=HOSPITAL).status_code == 401
        # Another patient behind the same address answers right for her own code.
        answer = token(client, victims_code, BIRTH_DATE, address=HOSPITAL)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/jwt")


def test_the_guesses_on_one_code_stay_at_five_from_any_number_of_addresses(
    suite: RunningSuite, tmp_path: Path
) -> None:
    code = publish_one(suite, tmp_path / "target")
    with httpx.Client(base_url=suite.gateway_url, timeout=120) as client:
        # Wrong birth dates, each from an address of its own: the code locks after five.
        for number in range(6):
            wrong = f"1970{1 + number:02d}01"
            address = f"203.0.113.{10 + number}"
            assert token(client, code, wrong, address=address).status_code == 401
        # Locked for 15 minutes: the right answer is refused too, from anywhere, and
        # looks like any refused answer.
        refused = token(client, code, BIRTH_DATE, address="203.0.113.99")
        unknown = token(client, unknown_code(), BIRTH_DATE, address="203.0.113.98")
        assert refused.status_code == unknown.status_code == 401
        assert without_request_id(refused) == without_request_id(unknown)


def without_request_id(response: httpx.Response) -> object:
    body = response.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
    return body
