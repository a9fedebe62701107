"""Archive downloads are planned once: resumed (Range / If-Range) and repeated downloads
reuse the cached ZIP plan, and any change to the planned rows (or another key) plans
anew, so a stale plan is never served. The archive path skips the server-side CRC-32 pass
(the AEAD authenticates every byte); a wrong CRC-32 in the index still shows in the
client's unzip."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable

import pytest
from sqlalchemy import text

from hds_common.pdi import ZipEntrySpec, ZipPlan, plan_zip
from hds_common.testing.dicom import make_pdf, make_study
from hds_storage.downloads import responses as delivery
from hds_storage.downloads.index import ArchiveContent
from hds_storage.downloads.plans import ArchivePlans, plan_size
from tests.storage.support import StorageEnv, multipart_files


@pytest.fixture
def plans_built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fingerprints of the archives planned from scratch (cache misses), in order."""
    built: list[str] = []
    plan: Callable[[ArchiveContent], ZipPlan] = delivery._plan

    def counting(content: ArchiveContent) -> ZipPlan:
        built.append(content.fingerprint)
        return plan(content)

    monkeypatch.setattr(delivery, "_plan", counting)
    return built


async def _published(env: StorageEnv) -> tuple[str, dict[str, str]]:
    """A complete package of a study (4 instances) and a report."""
    institution = env.institution()
    package_id = await env.publish(institution, make_study(4), complete=False)
    uploaded = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("r.pdf", make_pdf())], patient_id="PID-1", title="Befund"),
    )
    assert uploaded.status_code == 201, uploaded.text
    await env.complete(institution, package_id)
    package_key = await env.package_key(institution, package_id)
    grant = {**env.service(), "X-HDS-Grant": env.package_grant(package_id, package_key)}
    return package_id, grant


async def test_resumed_and_repeated_downloads_reuse_the_plan(
    env: StorageEnv, plans_built: list[str]
) -> None:
    package_id, grant = await _published(env)
    url = f"/internal/v1/packages/{package_id}/archive"

    full = await env.client.get(url, headers=grant)
    etag = full.headers["etag"]
    resumed = await env.client.get(
        url, headers={**grant, "Range": f"bytes={len(full.content) // 3}-", "If-Range": etag}
    )
    again = await env.client.get(url, headers=grant)
    items = await env.client.get(f"/internal/v1/packages/{package_id}/items", headers=grant)
    study_id = next(item["id"] for item in items.json() if item["kind"] == "study")
    one_item = await env.client.get(url, params={"item": study_id}, headers=grant)
    one_again = await env.client.get(url, params={"item": study_id}, headers=grant)

    assert full.status_code == 200, full.text
    assert resumed.status_code == 206
    assert resumed.content == full.content[len(full.content) // 3 :]
    assert again.content == full.content
    assert again.headers["etag"] == etag
    assert one_item.status_code == 200
    assert one_again.content == one_item.content
    assert "IHE_PDI/REPORT01.PDF" not in zipfile.ZipFile(io.BytesIO(one_item.content)).namelist()
    # The package and the one-item selection: two plans, each built once.
    assert len(plans_built) == 2
    assert len(env.app.state.runtime.plans) == 2


async def test_changed_rows_are_never_served_from_a_cached_plan(
    env: StorageEnv, plans_built: list[str]
) -> None:
    package_id, grant = await _published(env)
    url = f"/internal/v1/packages/{package_id}/archive"
    before = await env.client.get(url, headers=grant)
    assert zipfile.ZipFile(io.BytesIO(before.content)).testzip() is None
    async with env.engine.begin() as connection:
        object_id = (
            await connection.execute(
                text("SELECT id FROM instances WHERE package_id = :p ORDER BY id LIMIT 1"),
                {"p": package_id},
            )
        ).scalar_one()
        await connection.execute(
            text("UPDATE instances SET crc32 = crc32 # 1 WHERE id = :i")
            if env.settings.database_url.startswith("postgresql")
            else text("UPDATE instances SET crc32 = (crc32 | 1) - (crc32 & 1) WHERE id = :i"),
            {"i": object_id},
        )

    after = await env.client.get(url, headers=grant)

    assert len(plans_built) == 2
    assert after.headers["etag"] != before.headers["etag"]
    # The plan carries the index's CRC-32; the member bytes are the authenticated
    # plaintext. Any unzip notices the disagreement.
    archive = zipfile.ZipFile(io.BytesIO(after.content))
    assert archive.testzip() is not None

    async with env.engine.begin() as connection:
        meta = (
            await connection.execute(
                text("SELECT meta FROM instances WHERE id = :i"), {"i": object_id}
            )
        ).scalar_one()
        await connection.execute(
            text("UPDATE instances SET meta = :m WHERE id = :i"),
            {"m": bytes(meta[:-1]) + bytes([meta[-1] ^ 1]), "i": object_id},
        )

    tampered = await env.client.get(url, headers=grant)

    assert tampered.status_code == 500
    assert tampered.json()["type"] == "urn:hds:problem:integrity-error"
    assert len(plans_built) == 3


async def test_holdings_archive_is_planned_with_the_accounts_key(
    env: StorageEnv, plans_built: list[str]
) -> None:
    institution = env.institution()
    files = make_study(3)
    package_id = await env.publish(institution, files)
    package_key = await env.package_key(institution, package_id)
    patient = env.account()
    assert (await env.import_package(patient, package_id, package_key)).status_code == 200
    (study,) = (await env.client.get("/storage/v1/studies", headers=env.auth(patient))).json()
    url = f"/storage/v1/studies/{study['id']}/archive"

    first = await env.client.get(url, headers=env.auth(patient))
    second = await env.client.get(url, headers={**env.auth(patient), "Range": "bytes=0-99"})

    assert first.status_code == 200, first.text
    assert second.status_code == 206
    assert second.content == first.content[:100]
    names = zipfile.ZipFile(io.BytesIO(first.content)).namelist()
    assert sum(name.startswith("DICOM/") for name in names) == 3
    assert len(plans_built) == 1


def _plan(members: int, inline: bytes = b"") -> ZipPlan:
    """A plan of ``members`` stored objects (and an inline file)."""
    entries = [ZipEntrySpec(f"M{n}", 10, 1, f"object-{n}", None) for n in range(1, members + 1)]
    if inline:
        entries.append(ZipEntrySpec("INLINE", len(inline), zlib.crc32(inline), None, inline))
    return plan_zip(entries)


def test_plan_cache_is_an_lru_bounded_in_entries_and_bytes() -> None:
    plans = ArchivePlans(max_entries=2, max_bytes=1 << 20)
    a, b, c = _plan(1), _plan(2), _plan(3)
    plans.put("a", a)
    plans.put("b", b)
    assert plans.get("a") is a  # now the most recently used
    plans.put("c", c)

    assert plans.get("b") is None
    assert plans.get("a") is a
    assert plans.get("c") is c
    assert plans.bytes == plan_size(a) + plan_size(c)

    big = _plan(1, inline=b"x" * (1 << 19))  # more than a quarter of the budget
    plans.put("big", big)
    assert plans.get("big") is None
    assert len(plans) == 2

    by_bytes = ArchivePlans(max_entries=10, max_bytes=4 * plan_size(_plan(1, b"y" * 900)))
    for name in "pqrst":
        by_bytes.put(name, _plan(1, b"y" * 900))
    assert len(by_bytes) == 4
    assert by_bytes.get("p") is None
    assert by_bytes.bytes <= by_bytes.max_bytes


def test_plan_cache_forgets_plans_after_their_ttl() -> None:
    plans = ArchivePlans(ttl_seconds=0.0)
    plans.put("a", _plan(1))
    plans.expire()
    assert len(plans) == 0
    assert plans.bytes == 0
    assert plans.get("a") is None
