"""Pull-based streaming reader for ``multipart/form-data`` request bodies.

Starlette's ``request.form()`` spools file parts to temporary files, which would put
plaintext health data on disk. This reader drives python-multipart's push parser from
``request.stream()`` one network chunk at a time and hands out each part's bytes as an
async iterator: the next chunk is read from the socket only when the consumer (validator,
hasher, encryptor, blob upload) asks for more, so memory stays bounded by a few chunks
whatever the size of the request.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import Message

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from hds_storage.errors import FieldTooLarge, MalformedMultipart

__all__ = ["MultipartReader", "Part", "multipart_boundary", "single_part"]

_MAX_HEADER_BYTES = 16 * 1024


def multipart_boundary(content_type: str | None) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type, None for other types."""
    media_type, params = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        return None
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedMultipart("multipart body without boundary")
    return boundary


@dataclass
class Part:
    """One part of a multipart body (or a whole single-file body)."""

    index: int
    name: str | None
    filename: str | None
    content_type: str | None
    chunks: AsyncIterator[bytes] = field(repr=False)

    @property
    def label(self) -> str:
        """How problem details name this part: its file name, else field name, else index."""
        return self.filename or self.name or f"part {self.index}"

    async def read_all(self, limit: int) -> bytes:
        """The whole (small) part, e.g. a form field; 413 above ``limit`` bytes."""
        data = bytearray()
        async for chunk in self.chunks:
            data += chunk
            if len(data) > limit:
                raise FieldTooLarge(
                    f"form field {self.label!r} exceeds {limit} bytes",
                    part=self.label,
                )
        return bytes(data)


class MultipartReader:
    """``async for part in reader.parts():`` … ``async for chunk in part.chunks:`` …

    A part's chunks must be consumed (or abandoned by moving on) before the next part;
    moving on skips the rest of the current part."""

    def __init__(self, stream: AsyncIterator[bytes], boundary: bytes) -> None:
        self._stream = stream
        self._events: deque[tuple[str, bytes]] = deque()
        self._ended = False  # the closing boundary was parsed
        self._exhausted = False  # the request body has no more bytes
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._header_bytes = 0
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": lambda: self._events.append(("begin", b"")),
                "on_part_data": self._on_data,
                "on_part_end": lambda: self._events.append(("end", b"")),
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": lambda: self._events.append(("headers", b"")),
                "on_end": self._on_end,
            },
        )

    # -- parser callbacks (synchronous, append events) --------------------------------------

    def _on_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self._events.append(("data", bytes(data[start:end])))

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]
        self._count_header(end - start)

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._count_header(end - start)

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > _MAX_HEADER_BYTES:
            raise MalformedMultipart("multipart part headers too large")

    def _on_header_end(self) -> None:
        line = bytes(self._header_field).decode("latin-1").strip().lower()
        value = bytes(self._header_value).decode("latin-1").strip()
        self._events.append(("header", f"{line}\x00{value}".encode("utf-8", "surrogateescape")))
        self._header_field.clear()
        self._header_value.clear()

    def _on_end(self) -> None:
        self._ended = True

    # -- pulling -----------------------------------------------------------------------------

    async def _next_event(self) -> tuple[str, bytes] | None:
        while not self._events:
            if self._exhausted:
                return None
            chunk = await anext(self._stream, None)
            if chunk is None:
                self._exhausted = True
                self._parser.finalize()
                continue
            if not chunk:
                continue
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise MalformedMultipart(f"malformed multipart body: {exc}") from None
        return self._events.popleft()

    async def parts(self) -> AsyncIterator[Part]:
        index = 0
        current: _PartStream | None = None
        while True:
            if current is not None:
                await current.drain()
                current = None
            event = await self._next_event()
            if event is None:
                if not self._ended:
                    raise MalformedMultipart(
                        "multipart body ended before its closing boundary",
                    )
                return
            kind, payload = event
            if kind != "begin":
                raise MalformedMultipart("malformed multipart body")
            headers = Message()
            self._header_bytes = 0
            while True:
                event = await self._next_event()
                if event is None:
                    raise MalformedMultipart("multipart part headers truncated")
                kind, payload = event
                if kind == "headers":
                    break
                if kind == "header":
                    header_name, _, header_value = payload.decode(
                        "utf-8", "surrogateescape"
                    ).partition("\x00")
                    headers[header_name] = header_value
            disposition = headers.get("content-disposition")
            disposition_type, params = parse_options_header(disposition)
            if disposition_type != b"form-data":
                raise MalformedMultipart(
                    f"part {index} lacks Content-Disposition: form-data",
                )
            field_name = params.get(b"name")
            filename = params.get(b"filename")
            current = _PartStream(self)
            yield Part(
                index=index,
                name=field_name.decode("utf-8", "replace") if field_name is not None else None,
                filename=filename.decode("utf-8", "replace") if filename is not None else None,
                content_type=headers.get("content-type"),
                chunks=current.chunks(),
            )
            index += 1


class _PartStream:
    def __init__(self, reader: MultipartReader) -> None:
        self._reader = reader
        self._done = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self._done:
            event = await self._reader._next_event()
            if event is None:
                raise MalformedMultipart("multipart body truncated inside a part")
            kind, payload = event
            if kind == "end":
                self._done = True
                return
            if kind == "data":
                yield payload

    async def drain(self) -> None:
        async for _ in self.chunks():
            pass


def single_part(stream: AsyncIterator[bytes], *, content_type: str | None) -> Part:
    """A non-multipart body (``application/dicom``) seen as one part."""

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in stream:
            if chunk:
                yield chunk

    return Part(index=0, name=None, filename=None, content_type=content_type, chunks=chunks())
