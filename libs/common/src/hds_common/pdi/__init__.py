"""IHE PDI downloads (DIN/TS 19455 "DICOM Link Exchange") as deterministic, resumable ZIPs.

A download is planned entirely from the metadata index, never from blob
contents, so its size, ETag and any byte range are known before a single
object is decrypted::

    DICOMDIR                          PS3.10 Media Storage Directory (generated)
    README.TXT                        caller supplied text, UTF-8, CRLF
    DICOM/ST000001/SE000001/IM000001  DICOM Part 10 files, no extension,
    DICOM/ST000001/SE000001/IM000002  one directory per study (numbered across
    DICOM/ST000001/SE000002/IM000001  all patients), one per series
    DICOM/ST000002/...
    IHE_PDI/REPORT01.PDF              reports (not referenced by the DICOMDIR)

File IDs follow PS3.10 8.2 (at most 8 components of 1-8 characters from
A-Z, 0-9, '_'). Studies, series and instances are numbered in a canonical
order (study date/time, series number, instance number, UIDs as tie-breaks),
so the same content always yields the same names, the same DICOMDIR and the
same archive bytes.

Typical use::

    entries = pdi_layout(patients, documents, readme_text=text)
    plan = plan_zip(entries)
    byte_range = parse_range_header(request.headers.get("range"), plan.total_size)
    start, end = byte_range or (0, plan.total_size)
    body = stream_zip(plan, open_object, start, end)

The archive uses stored members, fixed timestamps and ZIP64 only where needed
(see :mod:`._zip`).
"""

from ._dicomdir import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    build_dicomdir,
    is_legal_file_id,
    validate_file_id,
)
from ._layout import pdi_layout
from ._model import (
    PdiDocument,
    PdiInstance,
    PdiPatient,
    PdiSeries,
    PdiStudy,
    ZipEntrySpec,
    canonical_patients,
)
from ._zip import (
    OpenObject,
    RangeNotSatisfiable,
    ZipPlan,
    ZipStreamError,
    content_range,
    parse_range_header,
    plan_zip,
    stream_zip,
)

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "OpenObject",
    "PdiDocument",
    "PdiInstance",
    "PdiPatient",
    "PdiSeries",
    "PdiStudy",
    "RangeNotSatisfiable",
    "ZipEntrySpec",
    "ZipPlan",
    "ZipStreamError",
    "build_dicomdir",
    "canonical_patients",
    "content_range",
    "is_legal_file_id",
    "parse_range_header",
    "pdi_layout",
    "plan_zip",
    "stream_zip",
    "validate_file_id",
]
