"""What one ``GET /auth/v1/me`` asks of other services: storage once, for the usage, and
of its answer only ``used_bytes`` (the quota is this service's own; storage no longer has
to ask it back)."""

from __future__ import annotations

from tests.auth.support import Accounts, AuthApp, StorageStandIn, bearer

MIB = 1024 * 1024


async def test_me_asks_storage_once_and_reads_only_the_used_bytes(
    auth: AuthApp, accounts: Accounts, storage_stand_in: StorageStandIn
) -> None:
    account = await accounts.active()
    storage_stand_in.usage[account.id] = 4_321
    tokens = await accounts.login(account)
    usage_path = f"GET /internal/v1/usage/{account.id}"

    # The first request with a new token also checks the token's key session at storage
    # (every authenticated route does; the answer is remembered for a few seconds).
    storage_stand_in.received.clear()
    first = await auth.client.get("/auth/v1/me", headers=bearer(tokens))
    assert first.status_code == 200, first.text
    assert storage_stand_in.received.count(usage_path) == 1
    assert len(storage_stand_in.received) == 2
    assert storage_stand_in.received[0].startswith("GET /internal/v1/key-sessions/")

    # With the session check remembered, /me itself is exactly one call to storage.
    storage_stand_in.received.clear()
    second = await auth.client.get("/auth/v1/me", headers=bearer(tokens))
    assert second.status_code == 200, second.text
    assert storage_stand_in.received == [usage_path]

    # Storage answers {"used_bytes": n} and nothing else; the quota comes from here.
    me = second.json()
    assert me["used_bytes"] == 4_321
    assert me["quota_bytes"] == 1024 * MIB
