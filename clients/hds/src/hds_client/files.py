"""Finding what to publish: DICOM and PDF files, recognised by their content."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hds_client.errors import ClientError

__all__ = ["FileKind", "UploadSet", "find_uploads", "sniff"]

# A DICOMDIR is a DICOM file too, but an index of a medium rather than an instance.
_MEDIA_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"

FileKind = Literal["dicom", "pdf"]


@dataclass
class UploadSet:
    dicom: list[Path] = field(default_factory=list)
    pdf: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def sniff(path: Path) -> FileKind | None:
    """``dicom`` (``DICM`` at offset 128), ``pdf`` (starts with ``%PDF-``) or ``None``."""
    try:
        with path.open("rb") as file:
            head = file.read(132)
    except OSError:
        return None
    if head.startswith(b"%PDF-"):
        return "pdf"
    if len(head) == 132 and head[128:132] == b"DICM" and not _is_dicomdir(path):
        return "dicom"
    return None


def _is_dicomdir(path: Path) -> bool:
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_file_meta_info

    try:
        meta = read_file_meta_info(path)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == _MEDIA_DIRECTORY_SOP_CLASS


def _walk(path: Path) -> Iterable[Path]:
    if path.is_file():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def find_uploads(paths: Sequence[Path]) -> UploadSet:
    """Every DICOM and PDF file under ``paths`` (recursively), each once."""
    found = UploadSet()
    seen: set[Path] = set()
    for given in paths:
        if not given.exists():
            raise ClientError(f"{given}: no such file or directory")
        for path in _walk(given):
            real = path.resolve()
            if real in seen or not real.is_file():
                continue
            seen.add(real)
            kind = sniff(path)
            if kind == "dicom":
                found.dicom.append(path)
            elif kind == "pdf":
                found.pdf.append(path)
            else:
                found.skipped.append(path)
    return found
