"""Content check of uploaded PDF reports: the ``%PDF-`` header at once, then the whole
document (at most ``pdf_limit_bytes``, held in memory, never on disk) must open with a PDF
parser and have at least one page; the parse runs in a worker thread."""

from __future__ import annotations

import asyncio
import io

from hds_storage.errors import PdfTooLarge
from hds_storage.ingest.probe import not_accepted

__all__ = ["PDF_MAGIC", "PdfProbe"]

PDF_MAGIC = b"%PDF-"


def _count_pages(data: bytes) -> int:
    """Pages of the PDF ``data`` (raises if it does not parse as a PDF)."""
    import logging

    from pypdf import PdfReader

    # The parser logs every irregularity it repairs; the verdict is what counts here.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(io.BytesIO(data), strict=False)
    return len(reader.pages)


class PdfProbe:
    """Checks one PDF part while it streams: :meth:`feed` each chunk (the header is
    checked at once, the size bound on every chunk), then :meth:`finish` parses it."""

    def __init__(self, *, label: str, index: int, limit: int) -> None:
        self.label = label
        self.index = index
        self.limit = limit
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> None:
        before = len(self.buffer)
        self.buffer += chunk
        if before < len(PDF_MAGIC) and len(self.buffer) >= len(PDF_MAGIC):
            self._check_magic()
        if len(self.buffer) > self.limit:
            raise PdfTooLarge(
                f"{self.label!r}: a PDF report may have at most {self.limit} bytes",
                part=self.label,
                part_index=self.index,
                limit=self.limit,
            )

    async def finish(self) -> None:
        self._check_magic()
        data = bytes(self.buffer)
        self.buffer = bytearray()
        try:
            pages = await asyncio.to_thread(_count_pages, data)
        except Exception as exc:  # any parser failure means "not a PDF"
            raise not_accepted(
                self.label, self.index, f"not a readable PDF document ({type(exc).__name__}: {exc})"
            ) from None
        if pages < 1:
            raise not_accepted(self.label, self.index, "the PDF document has no page")

    def _check_magic(self) -> None:
        if not self.buffer.startswith(PDF_MAGIC):
            raise not_accepted(self.label, self.index, "not a PDF document (no %PDF- header)")
