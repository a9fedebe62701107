"""DICOM uploads: each part is checked by content (:mod:`hds_storage.ingest.probe`),
streamed into the blob store unless the same SOP Instance UID was stored before with the
same bytes, and indexed (patient, study, series, instance) in the run's final transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from hds_common.db import utcnow
from hds_common.row_views import view_of
from hds_storage.downloads.repository import IndexRepository
from hds_storage.errors import (
    InstanceConflict,
    NoFiles,
)
from hds_storage.holdings.repository import HoldingsRepository
from hds_storage.holdings.service import holding_row
from hds_storage.ingest.multipart import Part
from hds_storage.ingest.probe import DicomHeader, DicomProbe, load_dicom_parser
from hds_storage.ingest.repository import IngestRepository
from hds_storage.ingest.rows import add_new_row, sealed_row
from hds_storage.ingest.run import (
    UploadRun,
    patient_for,
    patient_mismatch,
    start_run,
)
from hds_storage.ingest.schemas import (
    InstanceStored,
    InstancesUploaded,
)
from hds_storage.ingest.writer import StoredObject, hash_only, store_object
from hds_storage.keyring import KeyHolder
from hds_storage.models import (
    Instance,
    Series,
    Study,
)
from hds_storage.runtime import Runtime
from hds_storage.transactions import workflow_transaction

__all__ = ["DicomIngest"]


@dataclass
class PendingInstance:
    part: Part
    header: DicomHeader
    size: int
    crc32: int
    sha256: str
    stored: StoredObject | None  # None: bytes only hashed (a duplicate of a stored instance)


class DicomIngest:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def upload_instances(
        self,
        holder: KeyHolder,
        package_id: str,
        parts: AsyncIterator[Part],
        *,
        content_length: int | None,
        multipart: bool,
    ) -> tuple[InstancesUploaded, bool]:
        """Returns the stored instances and whether anything new was stored."""
        run = await start_run(
            self.runtime, holder, package_id, content_length=content_length, multipart=multipart
        )
        try:
            pending: list[PendingInstance] = []
            expected_patient = run.target.patient_id
            seen: dict[str, PendingInstance] = {}
            async for part in parts:
                item = await self._receive_dicom(run, part, expected_patient, seen)
                expected_patient = item.header.patient["patient_id"]
                seen.setdefault(item.header.sop_instance_uid, item)
                pending.append(item)
            if not pending:
                raise NoFiles("the request contains no file")
            result = await self._commit_instances(run, pending)
        except BaseException:
            await run.failed()
            raise
        await run.succeeded()
        return result, any(i.status == "created" for i in result.instances)

    async def _receive_dicom(
        self,
        run: UploadRun,
        part: Part,
        expected_patient: str | None,
        seen: dict[str, PendingInstance],
    ) -> PendingInstance:
        await load_dicom_parser()
        probe = DicomProbe(
            label=part.label, index=part.index, limit=self.runtime.settings.dicom_header_limit_bytes
        )
        header: DicomHeader | None = None
        async for chunk in part.chunks:
            header = probe.feed(chunk)
            if header is not None:
                break
        if header is None:
            header = probe.finish()
        patient_id = header.patient["patient_id"]
        if expected_patient is not None and patient_id != expected_patient:
            raise patient_mismatch(part)
        # The rest of the file is checked as it streams; a bad end refuses it (and the
        # request's failure handling deletes what was written of it).
        body = probe.rest(part.chunks)
        known = seen[header.sop_instance_uid].sha256 if header.sop_instance_uid in seen else None
        if known is None:
            async with workflow_transaction(self.runtime.session_maker) as session:
                committed = await IngestRepository(session).instance_by_uid(
                    run.target.package.id, header.sop_instance_uid
                )
            known = committed.sha256 if committed is not None else None
        if known is not None:
            # A repeat: only the bytes are compared, nothing is stored.
            digest = await hash_only(body)
            if digest.sha256 != known:
                raise _instance_conflict(part, header.sop_instance_uid)
            return PendingInstance(part, header, digest.size, digest.crc32, digest.sha256, None)
        stored = await store_object(
            self.runtime.store,
            package_id=run.target.package.id,
            package_key=run.target.package_key,
            chunks=body,
            before_bytes=run.before_bytes,
            on_key=run.remember,
        )
        return PendingInstance(part, header, stored.size, stored.crc32, stored.sha256, stored)

    async def _commit_instances(
        self, run: UploadRun, pending: list[PendingInstance]
    ) -> InstancesUploaded:
        target = run.target
        package_id = target.package.id
        cipher = target.cipher
        now = utcnow()
        results: list[InstanceStored] = []
        async with run.final_transaction(now) as session:
            upload_repo = IngestRepository(session)
            patient = await patient_for(session, target, pending[0].header.patient, None, now)
            studies: dict[str, Study] = {}
            series_rows: dict[tuple[str, str], Series] = {}
            held: set[str] = set()
            created: dict[str, Instance] = {}
            new_bytes = 0
            for item in pending:
                header = item.header
                existing = created.get(header.sop_instance_uid) or await IngestRepository(
                    session
                ).instance_by_uid(package_id, header.sop_instance_uid)
                if existing is not None:
                    if existing.sha256 != item.sha256:
                        raise _instance_conflict(item.part, header.sop_instance_uid)
                    if item.stored is not None:
                        run.discard_after_commit.append(item.stored.blob_key)
                    results.append(view_of(InstanceStored, existing, status="existing"))
                    continue
                assert item.stored is not None
                study = studies.get(header.study_instance_uid)
                if study is None:
                    study = await upload_repo.study_by_uid(package_id, header.study_instance_uid)
                    if study is None:
                        study = await add_new_row(
                            session,
                            Study,
                            cipher,
                            header.study,
                            now,
                            package_id=package_id,
                            patient_id=patient.id,
                            study_instance_uid=header.study_instance_uid,
                        )
                    studies[header.study_instance_uid] = study
                if study.id not in held:
                    new_bytes += await self._ensure_holding(
                        session, run.account.id, package_id, study, now
                    )
                    held.add(study.id)
                series_key = (study.id, header.series_instance_uid)
                series = series_rows.get(series_key)
                if series is None:
                    series = await upload_repo.series_by_uid(study.id, header.series_instance_uid)
                    if series is None:
                        series = await add_new_row(
                            session,
                            Series,
                            cipher,
                            header.series,
                            now,
                            study_id=study.id,
                            series_instance_uid=header.series_instance_uid,
                        )
                    series_rows[series_key] = series
                stored = item.stored
                instance = sealed_row(
                    Instance,
                    cipher,
                    stored.object_id,
                    {
                        "sop_class_uid": header.sop_class_uid,
                        "transfer_syntax_uid": header.transfer_syntax_uid,
                        "instance_number": header.instance_number,
                    },
                    now,
                    package_id=package_id,
                    study_id=study.id,
                    series_id=series.id,
                    sop_instance_uid=header.sop_instance_uid,
                    **stored.blob_columns(),
                )
                session.add(instance)
                created[header.sop_instance_uid] = instance
                new_bytes += stored.size
                results.append(view_of(InstanceStored, instance, status="created"))
            await HoldingsRepository(session).add_usage(run.account.id, new_bytes)
            await session.flush()
        return InstancesUploaded(package_id=package_id, instances=results)

    async def _ensure_holding(
        self,
        session: AsyncSession,
        account_id: str,
        package_id: str,
        study: Study,
        now: dt.datetime,
    ) -> int:
        """The institution holds every study it publishes; returns the bytes this adds to
        its usage (non-zero only if it had deleted a study it is now adding to again)."""
        if await HoldingsRepository(session).holding(account_id, study.id) is not None:
            return 0
        session.add(holding_row(account_id, package_id, "study", study.id, now))
        totals = await IndexRepository(session).study_totals([study.id])
        return totals.get(study.id, (0, 0))[1]


def _instance_conflict(part: Part, sop_uid: str) -> InstanceConflict:
    return InstanceConflict(
        "an instance with this SOP Instance UID but different bytes is already stored",
        part=part.label,
        part_index=part.index,
        sop_instance_uid=sop_uid,
    )
