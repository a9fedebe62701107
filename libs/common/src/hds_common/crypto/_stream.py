"""Segmented AES-256-GCM object encryption (STREAM construction, Hoang-Reyhanitabar-Rogaway-Vizar).

Layout of an encrypted object::

    header (16 bytes) = b"HDS1" | version (1, =1) | segment size (4, BE) | nonce prefix (7)
    segment 0 .. n-1  = AES-256-GCM(DEK, nonce_i, plaintext_i, aad) = ciphertext_i | tag_i (16)

    nonce_i = nonce prefix (7) | i (4 bytes BE) | 0x01 if i == n-1 else 0x00
    aad     = header | object_id (UTF-8)
    DEK     = HKDF-SHA256(PK, salt=None, info=b"hds/object/v1" | object_id)

Every segment holds exactly ``segment_size`` plaintext bytes except the last, which holds
1..segment_size bytes (0 only when the whole plaintext is empty). The counter in the nonce
pins each segment to its position, the final flag detects truncation at a segment
boundary, and the header+object id in the AAD bind segments to this object.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import CryptoError, IntegrityError
from ._keys import derive_object_key

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_SEGMENT_SIZE",
    "NONCE_PREFIX_SIZE",
    "SEGMENT_SIZE",
    "TAG_SIZE",
    "Decryptor",
    "Encryptor",
    "RangeDecryptor",
    "StreamHeader",
    "ciphertext_size",
    "decrypt_bytes",
    "decrypt_range",
    "decrypt_stream",
    "encrypt_bytes",
    "encrypt_stream",
    "parse_header",
    "plaintext_size",
    "segment_count",
    "segment_span",
]

BytesLike = bytes | bytearray | memoryview

MAGIC = b"HDS1"
FORMAT_VERSION = 1
NONCE_PREFIX_SIZE = 7
HEADER_SIZE = len(MAGIC) + 1 + 4 + NONCE_PREFIX_SIZE
TAG_SIZE = 16
SEGMENT_SIZE = 1 << 20
# A forged header could otherwise make a decryptor buffer up to 4 GiB before the
# first tag check fails.
MAX_SEGMENT_SIZE = 1 << 26
# The segment counter in the nonce is 32 bits wide.
MAX_SEGMENTS = 1 << 32

_NOT_FINAL = b"\x00"
_FINAL = b"\x01"


@dataclass(frozen=True, slots=True)
class StreamHeader:
    segment_size: int
    nonce_prefix: bytes

    def to_bytes(self) -> bytes:
        return (
            MAGIC
            + bytes((FORMAT_VERSION,))
            + self.segment_size.to_bytes(4, "big")
            + self.nonce_prefix
        )


def _check_segment_size(segment_size: int) -> None:
    if isinstance(segment_size, bool) or not isinstance(segment_size, int):
        raise TypeError("segment size must be an int")
    if not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment size must be in 1..{MAX_SEGMENT_SIZE}")


def parse_header(header: BytesLike) -> StreamHeader:
    """Parse (not authenticate) an object header; the first segment check authenticates it.

    Raises :class:`IntegrityError` if the bytes cannot be a header of this format.
    """
    raw = bytes(header)
    if len(raw) != HEADER_SIZE or raw[:4] != MAGIC:
        raise IntegrityError("not an HDS encrypted object")
    if raw[4] != FORMAT_VERSION:
        raise IntegrityError(f"unsupported encrypted object version {raw[4]}")
    segment_size = int.from_bytes(raw[5:9], "big")
    if not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        raise IntegrityError("invalid segment size in header")
    return StreamHeader(segment_size, raw[9:HEADER_SIZE])


def segment_count(plaintext_size: int, segment_size: int = SEGMENT_SIZE) -> int:
    """Number of segments for a plaintext of *plaintext_size* bytes (at least 1)."""
    _check_segment_size(segment_size)
    if plaintext_size < 0:
        raise ValueError("plaintext size must not be negative")
    return max(1, -(-plaintext_size // segment_size))


def ciphertext_size(plaintext_size: int, segment_size: int = SEGMENT_SIZE) -> int:
    """Exact size of the encrypted object for a plaintext of *plaintext_size* bytes."""
    count = segment_count(plaintext_size, segment_size)
    if count > MAX_SEGMENTS:
        raise ValueError("plaintext too large for this segment size")
    return HEADER_SIZE + count * TAG_SIZE + plaintext_size


def plaintext_size(ciphertext_size: int, segment_size: int = SEGMENT_SIZE) -> int:
    """Inverse of :func:`ciphertext_size`.

    Raises :class:`IntegrityError` for sizes no valid object can have: such an object
    has been truncated or extended.
    """
    _check_segment_size(segment_size)
    body = ciphertext_size - HEADER_SIZE
    if body < TAG_SIZE:
        raise IntegrityError("ciphertext too short")
    full, rest = divmod(body, segment_size + TAG_SIZE)
    if rest == 0:
        size = full * segment_size
    elif rest > TAG_SIZE or (rest == TAG_SIZE and full == 0):
        size = full * segment_size + rest - TAG_SIZE
    else:
        raise IntegrityError("impossible ciphertext size")
    if segment_count(size, segment_size) > MAX_SEGMENTS:
        raise IntegrityError("impossible ciphertext size")
    return size


def segment_span(
    plaintext_start: int,
    plaintext_end_exclusive: int,
    plaintext_size: int,
    segment_size: int = SEGMENT_SIZE,
) -> tuple[int, int, int, int]:
    """Segments covering plaintext bytes ``[start, end)`` of an object of *plaintext_size* bytes.

    Returns ``(first_segment_index, last_segment_index, ciphertext_start,
    ciphertext_end_exclusive)``; the ciphertext offsets are absolute offsets in the stored
    object (the header is not included: read it separately, it is bytes ``[0, HEADER_SIZE)``).
    """
    _check_segment_size(segment_size)
    if not 0 <= plaintext_start < plaintext_end_exclusive <= plaintext_size:
        raise ValueError("range must satisfy 0 <= start < end <= plaintext size")
    stride = segment_size + TAG_SIZE
    first = plaintext_start // segment_size
    last = (plaintext_end_exclusive - 1) // segment_size
    last_plain = min(segment_size, plaintext_size - last * segment_size)
    start = HEADER_SIZE + first * stride
    end = HEADER_SIZE + last * stride + last_plain + TAG_SIZE
    return first, last, start, end


class _SegmentCipher:
    """AES-GCM keyed for one object; knows how to build nonces and the AAD."""

    __slots__ = ("_aad", "_aead", "_prefix", "segment_size")

    def __init__(self, key: bytes, object_id: str, header: bytes) -> None:
        parsed = parse_header(header)
        self.segment_size = parsed.segment_size
        self._prefix = parsed.nonce_prefix
        self._aead = AESGCM(derive_object_key(key, object_id))
        self._aad = bytes(header) + object_id.encode("utf-8")

    def _nonce(self, index: int, final: bool) -> bytes:
        return self._prefix + index.to_bytes(4, "big") + (_FINAL if final else _NOT_FINAL)

    def seal(self, index: int, data: BytesLike, final: bool) -> bytes:
        if index >= MAX_SEGMENTS:
            raise CryptoError("object has too many segments")
        return self._aead.encrypt(self._nonce(index, final), data, self._aad)

    def open(self, index: int, data: BytesLike, final: bool) -> bytes:
        if index >= MAX_SEGMENTS or len(data) < TAG_SIZE:
            raise IntegrityError(f"segment {index} is invalid")
        try:
            return self._aead.decrypt(self._nonce(index, final), data, self._aad)
        except InvalidTag:
            raise IntegrityError(f"segment {index} failed authentication") from None


def _as_bytes_view(data: BytesLike) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class Encryptor:
    """Incremental encryptor: ``header``, then ``feed()`` any number of times, then ``finish()``.

    Holds at most one segment of plaintext: a full segment is only sealed once at least
    one more byte has arrived, because until then it might be the final one.
    """

    def __init__(
        self,
        key: bytes,
        object_id: str,
        segment_size: int = SEGMENT_SIZE,
        *,
        nonce_prefix: bytes | None = None,
    ) -> None:
        _check_segment_size(segment_size)
        if nonce_prefix is None:
            nonce_prefix = os.urandom(NONCE_PREFIX_SIZE)
        elif len(nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ValueError(f"nonce prefix must be {NONCE_PREFIX_SIZE} bytes")
        self.header: bytes = StreamHeader(segment_size, bytes(nonce_prefix)).to_bytes()
        self._cipher = _SegmentCipher(key, object_id, self.header)
        self._segment_size = segment_size
        self._buf = bytearray()
        self._index = 0
        self._finished = False

    def _seal(self, data: BytesLike, final: bool) -> bytes:
        out = self._cipher.seal(self._index, data, final)
        self._index += 1
        return out

    def feed(self, data: BytesLike) -> list[bytes]:
        """Add plaintext; returns the encrypted segments (tag included) that are now complete."""
        if self._finished:
            raise CryptoError("encryptor already finished")
        out: list[bytes] = []
        view = _as_bytes_view(data)
        size = self._segment_size
        while view:
            if len(self._buf) == size:
                out.append(self._seal(self._buf, final=False))
                self._buf = bytearray()
            if not self._buf and len(view) > size:
                # Large input: seal straight from the caller's buffer instead of copying.
                out.append(self._seal(view[:size], final=False))
                view = view[size:]
                continue
            take = size - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
        return out

    def finish(self) -> bytes:
        """Seal and return the final segment (possibly just a tag for empty input)."""
        if self._finished:
            raise CryptoError("encryptor already finished")
        self._finished = True
        out = self._seal(self._buf, final=True)
        self._buf = bytearray()
        return out


class _Poisonable:
    """Once authentication has failed, refuse to continue: later output would be suspect."""

    _failed = False
    _finished = False

    def _guard(self) -> None:
        if self._failed:
            raise IntegrityError("stream already failed authentication")
        if self._finished:
            raise CryptoError("decryptor already finished")


class Decryptor(_Poisonable):
    """Incremental decryptor mirroring :class:`Encryptor`.

    ``feed()`` returns only authenticated plaintext. Like the encryptor it holds back one
    full segment, because only the end of input tells whether it must carry the final flag.
    ``finish()`` must be called: it authenticates the final segment, and a stream that ends
    without one raises :class:`IntegrityError`.
    """

    def __init__(self, key: bytes, object_id: str, *, segment_size_hint: int | None = None) -> None:
        if segment_size_hint is not None:
            _check_segment_size(segment_size_hint)
        derive_object_key(key, object_id)  # validate arguments before any data arrives
        self._key = key
        self._object_id = object_id
        self._hint = segment_size_hint
        self._cipher: _SegmentCipher | None = None
        self._header: bytes | None = None
        self._buf = bytearray()
        self._index = 0

    @property
    def header(self) -> bytes | None:
        """The object header once received (authenticated only after the first segment)."""
        return self._header

    def _start(self, header: bytes) -> _SegmentCipher:
        cipher = _SegmentCipher(self._key, self._object_id, header)
        if self._hint is not None and cipher.segment_size != self._hint:
            raise IntegrityError("segment size in header does not match the expected size")
        self._header = header
        self._cipher = cipher
        return cipher

    def _open(self, cipher: _SegmentCipher, data: BytesLike, final: bool) -> bytes:
        out = cipher.open(self._index, data, final)
        self._index += 1
        return out

    def feed(self, data: BytesLike) -> list[bytes]:
        """Add ciphertext; returns plaintext of every segment authenticated so far."""
        self._guard()
        try:
            return self._feed(_as_bytes_view(data))
        except CryptoError:
            self._failed = True
            raise

    def _feed(self, view: memoryview) -> list[bytes]:
        out: list[bytes] = []
        cipher = self._cipher
        if cipher is None:
            take = HEADER_SIZE - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) < HEADER_SIZE:
                return out
            cipher = self._start(bytes(self._buf))
            self._buf = bytearray()
        stride = cipher.segment_size + TAG_SIZE
        while view:
            if len(self._buf) == stride:
                out.append(self._open(cipher, self._buf, final=False))
                self._buf = bytearray()
            if not self._buf and len(view) > stride:
                out.append(self._open(cipher, view[:stride], final=False))
                view = view[stride:]
                continue
            take = stride - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
        return out

    def finish(self) -> bytes:
        """Authenticate and return the final segment's plaintext."""
        self._guard()
        try:
            cipher = self._cipher
            if cipher is None:
                raise IntegrityError("truncated: incomplete header")
            if len(self._buf) < TAG_SIZE or (self._index > 0 and len(self._buf) == TAG_SIZE):
                # An empty final segment only exists for empty plaintext.
                raise IntegrityError("truncated: missing final segment")
            out = self._open(cipher, self._buf, final=True)
        except CryptoError:
            self._failed = True
            raise
        self._finished = True
        self._buf = bytearray()
        return out


class RangeDecryptor(_Poisonable):
    """Decrypts a contiguous run of segments and trims it to a plaintext byte range.

    Feed it the ciphertext bytes ``[ciphertext_start, ciphertext_end)`` from
    :func:`segment_span`. *skip* is the offset of the first wanted byte inside segment
    *first_segment_index*, *length* the number of wanted bytes. Knowing *total_segments*
    means no look-ahead is needed: segment ``total_segments - 1`` is checked as final,
    every other segment as non-final.
    """

    def __init__(
        self,
        key: bytes,
        object_id: str,
        header: BytesLike,
        first_segment_index: int,
        total_segments: int,
        skip: int,
        length: int,
    ) -> None:
        self._cipher = _SegmentCipher(key, object_id, bytes(header))
        size = self._cipher.segment_size
        if not 0 <= first_segment_index < total_segments <= MAX_SEGMENTS:
            raise ValueError("need 0 <= first_segment_index < total_segments")
        if not 0 <= skip < size or length < 1:
            raise ValueError("need 0 <= skip < segment size and length >= 1")
        self._last_index = first_segment_index + (skip + length - 1) // size
        if self._last_index >= total_segments:
            raise ValueError("range extends past the last segment")
        self._final_index = total_segments - 1
        self._index = first_segment_index
        self._skip = skip
        self._remaining = length
        self._buf = bytearray()
        # The final segment's pieces: kept by reference when they are immutable, so a
        # final segment that arrives in one chunk (every object smaller than a segment)
        # is decrypted straight from the caller's buffer instead of a copy.
        self._final_parts: list[BytesLike] = []
        self._final_size = 0

    def _emit(self, data: BytesLike) -> bytes:
        final = self._index == self._final_index
        plain = self._cipher.open(self._index, data, final)
        self._index += 1
        if final and self._skip + self._remaining > len(plain):
            raise ValueError("range extends past the end of the object")
        part = plain[self._skip : self._skip + self._remaining]
        self._skip = 0
        self._remaining -= len(part)
        return part

    def feed(self, data: BytesLike) -> list[bytes]:
        self._guard()
        try:
            return self._feed(_as_bytes_view(data))
        except CryptoError:
            self._failed = True
            raise

    def _feed(self, view: memoryview) -> list[bytes]:
        out: list[bytes] = []
        stride = self._cipher.segment_size + TAG_SIZE
        while view:
            if self._index > self._last_index:
                raise IntegrityError("unexpected data after the requested segments")
            if self._index == self._final_index:
                # Length of the final segment is only known at end of input.
                if self._final_size + len(view) > stride:
                    raise IntegrityError("final segment too long")
                self._final_parts.append(view if isinstance(view.obj, bytes) else bytes(view))
                self._final_size += len(view)
                break
            take = stride - len(self._buf)
            if not self._buf and len(view) >= stride:
                out.append(self._emit(view[:stride]))
                view = view[stride:]
                continue
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) == stride:
                out.append(self._emit(self._buf))
                self._buf = bytearray()
        return out

    def finish(self) -> bytes:
        """Returns the last piece of the range; raises if the input ended early."""
        self._guard()
        try:
            out = b""
            if self._index == self._final_index and self._index <= self._last_index:
                parts = self._final_parts
                out = self._emit(parts[0] if len(parts) == 1 else b"".join(parts))
            elif self._buf or self._final_parts or self._index <= self._last_index:
                raise IntegrityError("truncated: range input ended early")
        except CryptoError:
            self._failed = True
            raise
        self._finished = True
        self._buf = bytearray()
        self._final_parts = []
        return out


def encrypt_bytes(
    key: bytes,
    object_id: str,
    plaintext: BytesLike,
    segment_size: int = SEGMENT_SIZE,
    *,
    nonce_prefix: bytes | None = None,
) -> bytes:
    """One-shot encryption of an in-memory plaintext (small objects, tests)."""
    enc = Encryptor(key, object_id, segment_size, nonce_prefix=nonce_prefix)
    parts = [enc.header, *enc.feed(plaintext), enc.finish()]
    return b"".join(parts)


def decrypt_bytes(
    key: bytes, object_id: str, ciphertext: BytesLike, *, segment_size_hint: int | None = None
) -> bytes:
    """One-shot decryption of an in-memory encrypted object."""
    dec = Decryptor(key, object_id, segment_size_hint=segment_size_hint)
    parts = [*dec.feed(ciphertext), dec.finish()]
    return b"".join(parts)


async def encrypt_stream(
    key: bytes,
    object_id: str,
    chunks: AsyncIterable[bytes],
    segment_size: int = SEGMENT_SIZE,
    *,
    nonce_prefix: bytes | None = None,
) -> AsyncIterator[bytes]:
    """Yield the header, then each encrypted segment as soon as it is known not to be last.

    *key* is the package key; the object's DEK is derived from it and *object_id*.
    """
    enc = Encryptor(key, object_id, segment_size, nonce_prefix=nonce_prefix)
    yield enc.header
    async for chunk in chunks:
        for segment in enc.feed(chunk):
            yield segment
    yield enc.finish()


async def decrypt_stream(
    key: bytes,
    object_id: str,
    chunks: AsyncIterable[bytes],
    segment_size_hint: int | None = None,
) -> AsyncIterator[bytes]:
    """Yield authenticated plaintext, one segment at a time.

    Raises :class:`IntegrityError` before yielding anything from a segment that fails, and
    at the end if the input stopped without a final segment.
    """
    dec = Decryptor(key, object_id, segment_size_hint=segment_size_hint)
    async for chunk in chunks:
        for plain in dec.feed(chunk):
            yield plain
    last = dec.finish()
    if last:
        yield last


async def decrypt_range(
    key: bytes,
    object_id: str,
    header: BytesLike,
    segments: AsyncIterable[bytes],
    first_segment_index: int,
    total_segments: int,
    skip: int,
    length: int,
) -> AsyncIterator[bytes]:
    """Async wrapper around :class:`RangeDecryptor` (see :func:`segment_span`)."""
    dec = RangeDecryptor(key, object_id, header, first_segment_index, total_segments, skip, length)
    async for chunk in segments:
        for plain in dec.feed(chunk):
            if plain:
                yield plain
    last = dec.finish()
    if last:
        yield last
