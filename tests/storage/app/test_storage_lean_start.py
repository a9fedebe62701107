"""A serving storage process stays lean: libraries only some paths need - Alembic for
migrations, aioboto3/botocore for an s3:// blob store, pydicom (and numpy) for parsing
uploads - are imported when first used, not at start."""

from __future__ import annotations

import json
import subprocess
import sys

LAZY = ("alembic", "aioboto3", "botocore", "pydicom", "numpy")

PROBE = f"""
import asyncio, json, sys
lazy = {LAZY!r}
import hds_storage.main
import hds_storage.__main__
at_start = sorted(m for m in lazy if m in sys.modules)
from hds_common.blobstore import S3BlobStore, blobstore_from_url
s3 = type(blobstore_from_url("s3://hds-bucket/prefix")) is S3BlobStore
from hds_storage.ingest.probe import load_dicom_parser
asyncio.run(load_dicom_parser())
from hds_common.db import upgrade_to_head
import hds_common.db._migrations as migrations
config = migrations.alembic_config(__import__("pathlib").Path("m"), "sqlite:///x.db", "v")
print(json.dumps({{
    "at_start": at_start,
    "s3": s3,
    "later": sorted(m for m in lazy if m in sys.modules),
    "version_table": config.attributes["version_table"],
}}))
"""


def test_serving_process_imports_migration_s3_and_dicom_libraries_only_when_used() -> None:
    answer = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    found = json.loads(answer.stdout.strip().splitlines()[-1])

    assert found["at_start"] == []
    assert found["s3"] is True
    assert found["later"] == sorted(LAZY)
    assert found["version_table"] == "v"
