"""Deterministic stored-only ZIP archives planned from metadata and streamed by range.

Why this exists instead of :mod:`zipfile`: the download endpoint must know the
exact archive size and an ETag before reading any (encrypted) object, and must
serve arbitrary byte ranges so interrupted downloads resume. With stored
(uncompressed) members, no data descriptors and fixed timestamps, every byte
outside the member data is a pure function of the names, sizes and CRC-32s,
so the whole archive can be laid out up front. DICOM pixel data is mostly
already compressed or compresses poorly, so "stored" costs little.

Format reference: PKWARE APPNOTE.TXT 6.3.x (sections 4.3, 4.4, 4.5.3).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import re
import struct
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from ._model import ZipEntrySpec

__all__ = [
    "OpenObject",
    "RangeNotSatisfiable",
    "ZipPlan",
    "ZipStreamError",
    "content_range",
    "parse_range_header",
    "plan_zip",
    "stream_zip",
]

OpenObject = Callable[[str, int, int], AsyncIterator[bytes]]

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF

_LOCAL_SIGNATURE = 0x04034B50
_CENTRAL_SIGNATURE = 0x02014B50
_EOCD_SIGNATURE = 0x06054B50
_ZIP64_EOCD_SIGNATURE = 0x06064B50
_ZIP64_LOCATOR_SIGNATURE = 0x07064B50
_ZIP64_EXTRA_ID = 0x0001

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
_EOCD = struct.Struct("<IHHHHIIH")  # 22 bytes
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")  # 56 bytes
_ZIP64_LOCATOR = struct.Struct("<IIQI")  # 20 bytes

_VERSION_STORED = 10  # 1.0: stored files (APPNOTE 4.4.3.2)
_VERSION_ZIP64 = 45  # 4.5: ZIP64 format extensions
# Made by "Unix" so unzip on Linux/macOS applies the mode in the external
# attributes (rw-r--r--) instead of the umask; Windows tools ignore it. 63 is
# the APPNOTE revision whose features (UTF-8 flag) we may use.
_VERSION_MADE_BY = (3 << 8) | 63
_EXTERNAL_ATTR = 0o100644 << 16  # S_IFREG | 0644
_FLAG_UTF8 = 0x0800  # general purpose bit 11: name is UTF-8
_METHOD_STORED = 0
# MS-DOS date/time for 1980-01-01 00:00:00, the earliest representable value:
# a constant keeps the archive byte-for-byte reproducible (and does not leak
# when a study was uploaded).
_DOS_TIME = 0
_DOS_DATE = (0 << 9) | (1 << 5) | 1

_CHUNK = 64 * 1024  # bound for slices of inline parts (central directory can be MBs)

# Names are relative POSIX paths; anything a careless extractor could turn
# into a write outside its target directory (zip-slip) is refused.
_FORBIDDEN_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class ZipStreamError(RuntimeError):
    """An object's bytes did not match the plan (short/long read or CRC mismatch)."""


class RangeNotSatisfiable(Exception):
    """The Range header cannot be satisfied; answer 416 with ``Content-Range: bytes */total``."""

    def __init__(self, total: int) -> None:
        super().__init__(f"range not satisfiable for a representation of {total} bytes")
        self.total = total


@dataclass(frozen=True, slots=True)
class _Part:
    """A contiguous run of archive bytes: either inline bytes or one object's data."""

    start: int
    length: int
    data: bytes | None
    object_id: str | None
    crc32: int


class ZipPlan:
    """Complete byte layout of an archive; immutable and reusable across requests."""

    __slots__ = (
        "_central_directory_offset",
        "_central_directory_size",
        "_entries",
        "_etag",
        "_parts",
        "_starts",
        "_total_size",
        "_zip64",
    )

    def __init__(
        self,
        *,
        entries: tuple[ZipEntrySpec, ...],
        parts: tuple[_Part, ...],
        central_directory_offset: int,
        central_directory_size: int,
        zip64: bool,
        etag: str,
    ) -> None:
        self._entries = entries
        self._parts = parts
        self._starts = [part.start for part in parts]
        self._total_size = parts[-1].start + parts[-1].length if parts else 0
        self._central_directory_offset = central_directory_offset
        self._central_directory_size = central_directory_size
        self._zip64 = zip64
        self._etag = etag

    @property
    def entries(self) -> tuple[ZipEntrySpec, ...]:
        return self._entries

    @property
    def total_size(self) -> int:
        """Exact archive length in bytes (the Content-Length of a full response)."""
        return self._total_size

    @property
    def etag(self) -> str:
        """Strong ETag (quoted), stable for identical plans across processes."""
        return self._etag

    @property
    def zip64(self) -> bool:
        """True if the archive carries ZIP64 end records."""
        return self._zip64

    @property
    def central_directory_offset(self) -> int:
        return self._central_directory_offset

    @property
    def central_directory_size(self) -> int:
        return self._central_directory_size

    def __repr__(self) -> str:
        return (
            f"ZipPlan(entries={len(self._entries)}, total_size={self._total_size}, "
            f"zip64={self._zip64}, etag={self._etag})"
        )


def _validate_entries(entries: Sequence[ZipEntrySpec]) -> list[bytes]:
    encoded_names: list[bytes] = []
    seen: set[str] = set()
    directories: set[str] = set()
    for entry in entries:
        name = entry.name
        components = name.split("/")
        if (
            not name
            or _FORBIDDEN_NAME_CHARS.search(name)
            or name.startswith("/")
            or any(c in {"", ".", ".."} for c in components)
            or (len(components[0]) == 2 and components[0][1] == ":")  # "C:" drive
        ):
            raise ValueError(f"illegal archive member name {name!r}")
        # Case-insensitive: "a" and "A" would overwrite each other on Windows/macOS.
        folded = name.casefold()
        if folded in seen:
            raise ValueError(f"duplicate archive member name {name!r}")
        seen.add(folded)
        # A member may not also be the directory of another one ("A" and "A/B"):
        # extractors cannot create both.
        parts = folded.split("/")
        parents = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if folded in directories or not parents.isdisjoint(seen):
            raise ValueError(f"archive member name {name!r} clashes with a directory")
        directories.update(parents)
        encoded = name.encode("utf-8")
        if len(encoded) > _U16:
            raise ValueError(f"archive member name too long: {name[:40]!r}...")
        if not 0 <= entry.size <= _U64:
            raise ValueError(f"{name!r}: size {entry.size} out of range")
        if not 0 <= entry.crc32 <= _U32:
            raise ValueError(f"{name!r}: crc32 {entry.crc32} out of range")
        if entry.size == 0 and entry.crc32 != 0:
            raise ValueError(f"{name!r}: an empty member has CRC-32 0, not {entry.crc32}")
        if (entry.data is None) == (entry.object_id is None):
            raise ValueError(f"{name!r}: exactly one of data and object_id must be set")
        if entry.data is not None and (
            len(entry.data) != entry.size or zlib.crc32(entry.data) != entry.crc32
        ):
            # Inline data is small and already in memory; checking it here
            # turns a caller bug into an error instead of a corrupt archive.
            raise ValueError(f"{name!r}: inline data does not match size/crc32")
        encoded_names.append(encoded)
    return encoded_names


def _zip64_extra(*values: int) -> bytes:
    if not values:
        return b""
    return struct.pack(f"<HH{len(values)}Q", _ZIP64_EXTRA_ID, 8 * len(values), *values)


def plan_zip(entries: Sequence[ZipEntrySpec], *, force_zip64: bool = False) -> ZipPlan:
    """Lay out a stored-only archive from names, sizes and CRC-32s (no data is read).

    ZIP64 structures are used where a value does not fit the classic fields
    (size/offset >= 0xFFFFFFFF, 0xFFFF entries or more) or everywhere when
    ``force_zip64`` is set (useful for testing readers).
    Raises ValueError for illegal or duplicate names and inconsistent specs.
    """
    names = _validate_entries(entries)
    parts: list[_Part] = []
    central = bytearray()
    offset = 0

    def add(length: int, data: bytes | None, object_id: str | None, crc32: int = 0) -> None:
        nonlocal offset
        if length:  # zero-length parts would only complicate range lookup
            parts.append(_Part(offset, length, data, object_id, crc32))
        offset += length

    for entry, name in zip(entries, names, strict=True):
        header_offset = offset
        zip64_sizes = force_zip64 or entry.size >= _U32
        zip64_offset = force_zip64 or header_offset >= _U32
        version = _VERSION_ZIP64 if zip64_sizes or zip64_offset else _VERSION_STORED
        flags = 0 if name.isascii() else _FLAG_UTF8
        size32 = _U32 if zip64_sizes else entry.size

        # APPNOTE 4.5.3: a local ZIP64 extra must carry both sizes.
        local_extra = _zip64_extra(entry.size, entry.size) if zip64_sizes else b""
        local = (
            _LOCAL.pack(
                _LOCAL_SIGNATURE,
                version,
                flags,
                _METHOD_STORED,
                _DOS_TIME,
                _DOS_DATE,
                entry.crc32,
                size32,
                size32,
                len(name),
                len(local_extra),
            )
            + name
            + local_extra
        )
        add(len(local), local, None)
        add(entry.size, entry.data, entry.object_id, entry.crc32)

        # Central extra: only the fields whose classic slot holds the marker,
        # in the fixed order uncompressed size, compressed size, offset.
        central_values = [entry.size, entry.size] if zip64_sizes else []
        if zip64_offset:
            central_values.append(header_offset)
        central_extra = _zip64_extra(*central_values)
        central += _CENTRAL.pack(
            _CENTRAL_SIGNATURE,
            _VERSION_MADE_BY,
            version,
            flags,
            _METHOD_STORED,
            _DOS_TIME,
            _DOS_DATE,
            entry.crc32,
            size32,
            size32,
            len(name),
            len(central_extra),
            0,  # comment length
            0,  # disk number start
            0,  # internal attributes: binary
            _EXTERNAL_ATTR,
            _U32 if zip64_offset else header_offset,
        )
        central += name + central_extra

    cd_offset = offset
    cd_size = len(central)
    count = len(entries)
    zip64 = force_zip64 or count >= _U16 or cd_size >= _U32 or cd_offset >= _U32

    tail = bytearray()
    if zip64:
        zip64_eocd_offset = cd_offset + cd_size
        tail += _ZIP64_EOCD.pack(
            _ZIP64_EOCD_SIGNATURE,
            _ZIP64_EOCD.size - 12,  # size of the record after this field
            _VERSION_MADE_BY,
            _VERSION_ZIP64,
            0,  # this disk
            0,  # disk with the central directory
            count,
            count,
            cd_size,
            cd_offset,
        )
        tail += _ZIP64_LOCATOR.pack(_ZIP64_LOCATOR_SIGNATURE, 0, zip64_eocd_offset, 1)

    def classic(value: int, marker: int) -> int:
        # In a ZIP64 archive a marker sends readers to the ZIP64 record; forced
        # mode always does so to exercise that path.
        return marker if force_zip64 or value >= marker else value

    tail += _EOCD.pack(
        _EOCD_SIGNATURE,
        0,
        0,
        classic(count, _U16),
        classic(count, _U16),
        classic(cd_size, _U32),
        classic(cd_offset, _U32),
        0,  # comment length
    )

    # The ETag covers the central directory and end records (names, sizes,
    # CRCs, offsets: everything but the member bytes) plus the object ids, so
    # a replaced object never shares an ETag with its predecessor even in the
    # unlikely case of an equal size and CRC-32; resuming with If-Range then
    # can never splice two versions together.
    digest = hashlib.sha256(central)
    digest.update(tail)
    for entry in entries:
        digest.update(b"\x00" + (entry.object_id or "").encode("utf-8"))
    etag = f'"{digest.hexdigest()}"'

    add(cd_size, bytes(central), None)
    add(len(tail), bytes(tail), None)
    return ZipPlan(
        entries=tuple(entries),
        parts=tuple(parts),
        central_directory_offset=cd_offset,
        central_directory_size=cd_size,
        zip64=zip64,
        etag=etag,
    )


async def _stream_object(
    part: _Part, open_object: OpenObject, lo: int, hi: int, verify_crc32: bool
) -> AsyncGenerator[bytes, None]:
    assert part.object_id is not None
    expected = hi - lo
    whole = verify_crc32 and lo == 0 and hi == part.length
    received = 0
    crc = 0
    iterator = open_object(part.object_id, lo, expected)
    try:
        async for chunk in iterator:
            if not chunk:
                continue
            received += len(chunk)
            if received > expected:
                raise ZipStreamError(
                    f"object {part.object_id!r} returned more than {expected} bytes"
                )
            if whole:
                crc = zlib.crc32(chunk, crc)
            yield chunk
    finally:
        # Release the storage stream (HTTP body, file handle) promptly when the
        # client disconnects and our own generator is closed early.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    if received != expected:
        raise ZipStreamError(f"object {part.object_id!r} returned {received} of {expected} bytes")
    if whole and crc != part.crc32:
        # The bytes already went out, but failing loudly aborts the response
        # so the client never treats a corrupt member as complete.
        raise ZipStreamError(f"object {part.object_id!r} does not match its CRC-32")


async def stream_zip(
    plan: ZipPlan,
    open_object: OpenObject,
    start: int = 0,
    end: int | None = None,
    *,
    verify_crc32: bool = True,
) -> AsyncIterator[bytes]:
    """Yield bytes ``[start, end)`` of the archive (``end`` exclusive, default the end).

    ``open_object(object_id, offset, length)`` is called only for members whose
    data overlaps the range, with the overlapping sub-range, and must yield
    exactly ``length`` plaintext bytes. Memory use is bounded by the chunk
    sizes, independent of the archive size. When a member is read completely
    its CRC-32 is verified, unless ``verify_crc32`` is false: for callers whose
    objects are already authenticated end to end (authenticated decryption of
    exactly the planned object), where the CRC pass would only cost CPU time.
    The length of every object is always checked. Raises ZipStreamError on a
    short, long or corrupt object stream.
    """
    total = plan.total_size
    stop = total if end is None else end
    if not 0 <= start <= stop <= total:
        raise ValueError(f"range [{start}, {stop}) outside archive of {total} bytes")
    parts = plan._parts
    index = bisect.bisect_right(plan._starts, start) - 1
    position = start
    while position < stop:
        part = parts[index]
        lo = position - part.start
        hi = min(part.length, stop - part.start)
        if part.data is not None:
            view = memoryview(part.data)
            for chunk_start in range(lo, hi, _CHUNK):
                yield bytes(view[chunk_start : min(chunk_start + _CHUNK, hi)])
        else:
            # aclosing: when our consumer stops early, GeneratorExit arrives
            # here and must propagate into the storage stream right away, not
            # whenever the garbage collector finalizes the inner generator.
            object_chunks = _stream_object(part, open_object, lo, hi, verify_crc32)
            async with contextlib.aclosing(object_chunks) as chunks:
                async for chunk in chunks:
                    yield chunk
        position = part.start + hi
        index += 1


_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


def parse_range_header(value: str | None, total: int) -> tuple[int, int] | None:
    """Interpret an HTTP ``Range`` header (RFC 9110 section 14) for a ``total``-byte body.

    Returns ``(start, end)`` with ``end`` exclusive, ready for :func:`stream_zip`,
    or None when the whole representation should be sent (no header, a unit
    other than bytes, a syntactically invalid header, or several ranges, which
    we answer with the full body instead of multipart/byteranges as RFC 9110
    permits). Raises RangeNotSatisfiable when the single range lies beyond the
    end (or is a zero suffix); the caller answers 416.
    """
    if value is None:
        return None
    unit, sep, ranges = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    # Empty list elements are allowed by the #rule syntax ("bytes=0-1,").
    specs = [spec.strip() for spec in ranges.split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    match = _RANGE_SPEC.fullmatch(specs[0])
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    # No body has more than 19-digit sizes; longer numbers would also hit Python's
    # int-conversion limit. Such a header is syntactically a range but meaningless.
    if len(first) > 19 or len(last) > 19:
        return None
    if first:
        start = int(first)
        if last and int(last) < start:
            return None  # invalid range-spec: ignore the header
        if start >= total:
            raise RangeNotSatisfiable(total)
        stop = min(int(last) + 1, total) if last else total
        return start, stop
    if not last:
        return None  # "bytes=-"
    suffix = int(last)
    if suffix == 0 or total == 0:
        raise RangeNotSatisfiable(total)
    return max(total - suffix, 0), total


def content_range(start: int, end: int, total: int) -> str:
    """``Content-Range`` value for the exclusive range ``[start, end)``."""
    return f"bytes {start}-{end - 1}/{total}"
