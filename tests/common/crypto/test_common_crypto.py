"""Tests for hds_common.crypto: known answers, round trips, tampering, slots, grants, memory."""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import tracemalloc
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path

import pytest
from argon2.low_level import Type, core, ffi, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hds_common.crypto import (
    DEFAULT_ARGON2,
    FAST_ARGON2,
    GRANT_CONTEXT,
    HEADER_SIZE,
    MAX_SEGMENT_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    Argon2Params,
    CryptoError,
    Decryptor,
    Encryptor,
    Grant,
    GrantError,
    IntegrityError,
    RangeDecryptor,
    b64d,
    b64e,
    ciphertext_size,
    decrypt_bytes,
    decrypt_range,
    decrypt_stream,
    derive_kek,
    derive_object_key,
    encrypt_bytes,
    encrypt_stream,
    generate_package_key,
    generate_private_key,
    generate_salt,
    hkdf_sha256,
    load_or_create_private_key,
    open_grant,
    open_sealed,
    open_session_key,
    parse_header,
    plaintext_size,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
    seal,
    seal_grant,
    seal_session_key,
    segment_count,
    segment_span,
    unwrap_key,
    unwrap_session_key,
    wrap_key,
    wrap_session_key,
)
from hds_common.crypto import errors as public_errors

SEG = 64
FIXED_PK = bytes(range(32))
FIXED_OID = "pkg-1/obj-1"
# Computed once with this implementation and pinned, so any change to the derivation
# (info string, salt, hash) is caught.
FIXED_DEK_HEX = "539e23c07956edc42261746e2e4813ee5e5e941692cdea68094388deaa52b1c2"
FIXED_PREFIX = bytes.fromhex("a1a2a3a4a5a6a7")


# --------------------------------------------------------------------------- helpers


async def aiter_of(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def collect(stream: AsyncIterable[bytes]) -> list[bytes]:
    return [piece async for piece in stream]


def random_chunks(data: bytes, rng: random.Random, max_chunk: int = 200) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(data):
        n = rng.randint(1, max_chunk)
        out.append(data[pos : pos + n])
        pos += n
    return out


def split_segments(ct: bytes, seg: int = SEG) -> tuple[bytes, list[bytes]]:
    """Split an encrypted object into header and per-segment ciphertexts."""
    stride = seg + TAG_SIZE
    body = ct[HEADER_SIZE:]
    return ct[:HEADER_SIZE], [body[i : i + stride] for i in range(0, len(body), stride)]


def flip(data: bytes, index: int) -> bytes:
    buf = bytearray(data)
    buf[index] ^= 0x01
    return bytes(buf)


def decrypt_until_error(ct: bytes, key: bytes, oid: str, chunk: int = 37) -> bytes:
    """Feed *ct* to a Decryptor; assert IntegrityError and return what it released before."""
    dec = Decryptor(key, oid)
    released = bytearray()

    def run() -> None:
        for i in range(0, len(ct), chunk):
            for piece in dec.feed(ct[i : i + chunk]):
                released.extend(piece)
        released.extend(dec.finish())

    with pytest.raises(IntegrityError):
        run()
    return bytes(released)


async def drain(stream: AsyncIterable[bytes], sink: list[bytes]) -> None:
    async for piece in stream:
        sink.append(piece)


@pytest.fixture
def pk() -> bytes:
    return generate_package_key()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(0x4D5)


# --------------------------------------------------------------------------- known answers


def test_hkdf_rfc5869_test_case_1() -> None:
    okm = hkdf_sha256(
        bytes([0x0B] * 22),
        salt=bytes(range(0x0D)),
        info=bytes(range(0xF0, 0xFA)),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_object_key_known_answer() -> None:
    assert derive_object_key(FIXED_PK, FIXED_OID).hex() == FIXED_DEK_HEX
    assert derive_object_key(FIXED_PK, FIXED_OID) == hkdf_sha256(
        FIXED_PK, salt=None, info=b"hds/object/v1" + FIXED_OID.encode()
    )
    assert derive_object_key(FIXED_PK, "pkg-1/obj-2") != derive_object_key(FIXED_PK, FIXED_OID)
    assert derive_object_key(bytes(32), FIXED_OID) != derive_object_key(FIXED_PK, FIXED_OID)


def test_object_key_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        derive_object_key(b"short", FIXED_OID)
    with pytest.raises(ValueError, match="empty"):
        derive_object_key(FIXED_PK, "")


def test_segment_ciphertext_known_answer() -> None:
    plaintext = bytes(range(100))
    ct = encrypt_bytes(FIXED_PK, FIXED_OID, plaintext, SEG, nonce_prefix=FIXED_PREFIX)
    header = b"HDS1" + b"\x01" + SEG.to_bytes(4, "big") + FIXED_PREFIX
    assert ct[:HEADER_SIZE] == header
    aead = AESGCM(bytes.fromhex(FIXED_DEK_HEX))
    aad = header + FIXED_OID.encode()
    seg0 = aead.encrypt(FIXED_PREFIX + b"\x00\x00\x00\x00" + b"\x00", plaintext[:SEG], aad)
    seg1 = aead.encrypt(FIXED_PREFIX + b"\x00\x00\x00\x01" + b"\x01", plaintext[SEG:], aad)
    assert ct[HEADER_SIZE:] == seg0 + seg1


def test_empty_plaintext_is_single_final_tag_only_segment() -> None:
    ct = encrypt_bytes(FIXED_PK, FIXED_OID, b"", SEG, nonce_prefix=FIXED_PREFIX)
    aead = AESGCM(bytes.fromhex(FIXED_DEK_HEX))
    expected = aead.encrypt(
        FIXED_PREFIX + bytes(4) + b"\x01", b"", ct[:HEADER_SIZE] + b"pkg-1/obj-1"
    )
    assert ct[HEADER_SIZE:] == expected
    assert len(ct) == HEADER_SIZE + TAG_SIZE


def test_argon2_library_matches_rfc9106_argon2id_vector() -> None:
    # RFC 9106 section 5.3 (needs secret and associated data, so the raw context API).
    pwd = ffi.new("uint8_t[]", b"\x01" * 32)
    salt = ffi.new("uint8_t[]", b"\x02" * 16)
    secret = ffi.new("uint8_t[]", b"\x03" * 8)
    ad = ffi.new("uint8_t[]", b"\x04" * 12)
    out = ffi.new("uint8_t[]", 32)
    ctx = ffi.new(
        "argon2_context *",
        {
            "version": 0x13,
            "out": out,
            "outlen": 32,
            "pwd": pwd,
            "pwdlen": 32,
            "salt": salt,
            "saltlen": 16,
            "secret": secret,
            "secretlen": 8,
            "ad": ad,
            "adlen": 12,
            "t_cost": 3,
            "m_cost": 32,
            "lanes": 4,
            "threads": 4,
            "allocate_cbk": ffi.NULL,
            "free_cbk": ffi.NULL,
            "flags": 0,  # ARGON2_DEFAULT_FLAGS
        },
    )
    assert core(ctx, Type.ID.value) == 0
    assert bytes(ffi.buffer(out, 32)).hex() == (
        "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
    )


def test_argon2_library_matches_reference_implementation_vector() -> None:
    # phc-winner-argon2 src/test.c: argon2id v=0x13, t=2, m=2^16, p=1, "password"/"somesalt".
    raw = hash_secret_raw(b"password", b"somesalt", 2, 1 << 16, 1, 32, Type.ID, 0x13)
    assert raw.hex() == "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"


def test_derive_kek_known_answer() -> None:
    params = Argon2Params(time_cost=3, memory_cost_kib=32, parallelism=4)
    kek = derive_kek(b"\x01" * 32, b"\x02" * 16, params)
    assert kek == hash_secret_raw(b"\x01" * 32, b"\x02" * 16, 3, 32, 4, 32, Type.ID, 0x13)
    assert kek.hex() == "03aab965c12001c9d7d0d2de33192c0494b684bb148196d73c1df1acaf6d0c2e"


def test_argon2_params() -> None:
    assert DEFAULT_ARGON2 == Argon2Params(2, 19456, 1)
    assert FAST_ARGON2 == Argon2Params(1, 1024, 1)
    with pytest.raises(ValueError, match="memory_cost"):
        Argon2Params(1, 8, 2)
    with pytest.raises(ValueError, match=">= 1"):
        Argon2Params(0, 1024, 1)
    with pytest.raises(ValueError, match="salt"):
        derive_kek(b"secret", b"short", FAST_ARGON2)
    with pytest.raises(ValueError, match="secret"):
        derive_kek(b"", generate_salt(), FAST_ARGON2)


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("pt_size", "seg", "ct_size"),
    [
        (0, SEG, 16 + 16),
        (1, SEG, 16 + 16 + 1),
        (SEG, SEG, 16 + 16 + SEG),
        (SEG + 1, SEG, 16 + 32 + SEG + 1),
        (3 * SEG, SEG, 16 + 48 + 3 * SEG),
        (SEGMENT_SIZE, SEGMENT_SIZE, 16 + 16 + SEGMENT_SIZE),
        (10 * SEGMENT_SIZE + 5, SEGMENT_SIZE, 16 + 11 * 16 + 10 * SEGMENT_SIZE + 5),
    ],
)
def test_ciphertext_size_table(pt_size: int, seg: int, ct_size: int) -> None:
    assert ciphertext_size(pt_size, seg) == ct_size
    assert plaintext_size(ct_size, seg) == pt_size


def test_plaintext_size_inverts_ciphertext_size() -> None:
    for seg in (1, 2, 7, SEG):
        for n in range(0, 5 * seg + 3):
            assert plaintext_size(ciphertext_size(n, seg), seg) == n


@pytest.mark.parametrize(
    "ct_size",
    [
        0,
        HEADER_SIZE,
        HEADER_SIZE + TAG_SIZE - 1,
        HEADER_SIZE + SEG + TAG_SIZE + TAG_SIZE,  # empty final after a full segment
        HEADER_SIZE + SEG + TAG_SIZE + 5,  # last segment shorter than a tag
    ],
)
def test_plaintext_size_rejects_impossible_sizes(ct_size: int) -> None:
    with pytest.raises(IntegrityError):
        plaintext_size(ct_size, SEG)


def test_size_argument_validation() -> None:
    with pytest.raises(ValueError, match="negative"):
        ciphertext_size(-1)
    with pytest.raises(ValueError, match="segment size"):
        ciphertext_size(10, 0)
    with pytest.raises(ValueError, match="segment size"):
        Encryptor(FIXED_PK, FIXED_OID, MAX_SEGMENT_SIZE + 1)
    with pytest.raises(ValueError, match="too large"):
        ciphertext_size((1 << 32) + 1, 1)
    with pytest.raises(ValueError, match="nonce prefix"):
        Encryptor(FIXED_PK, FIXED_OID, nonce_prefix=b"123")
    assert segment_count(0, SEG) == 1
    assert segment_count(SEG, SEG) == 1
    assert segment_count(SEG + 1, SEG) == 2


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("size", "seg"),
    [
        (0, SEG),
        (1, SEG),
        (SEG - 1, SEG),
        (SEG, SEG),
        (SEG + 1, SEG),
        (3 * SEG, SEG),
        (3 * SEG + 7, SEG),
        (0, SEGMENT_SIZE),
        (1, SEGMENT_SIZE),
        (SEGMENT_SIZE, SEGMENT_SIZE),
        (SEGMENT_SIZE + 1, SEGMENT_SIZE),
    ],
)
def test_round_trip(pk: bytes, size: int, seg: int) -> None:
    plaintext = os.urandom(size)
    ct = encrypt_bytes(pk, "obj", plaintext, seg)
    assert len(ct) == ciphertext_size(size, seg)
    assert parse_header(ct[:HEADER_SIZE]).segment_size == seg
    assert decrypt_bytes(pk, "obj", ct) == plaintext
    assert decrypt_bytes(pk, "obj", ct, segment_size_hint=seg) == plaintext


def test_random_round_trips_with_random_chunking(pk: bytes, rng: random.Random) -> None:
    for _ in range(300):
        seg = rng.choice([1, 2, 3, 16, SEG, 100])
        size = rng.randint(0, 8 * seg + 10)
        plaintext = rng.randbytes(size)
        enc = Encryptor(pk, "obj", seg)
        parts = [enc.header]
        for chunk in random_chunks(plaintext, rng, 3 * seg):
            produced = enc.feed(chunk)
            assert all(len(p) == seg + TAG_SIZE for p in produced)
            parts += produced
        parts.append(enc.finish())
        ct = b"".join(parts)
        assert len(ct) == ciphertext_size(size, seg)

        dec = Decryptor(pk, "obj")
        out = bytearray()
        for chunk in random_chunks(ct, rng, 3 * seg):
            out += b"".join(dec.feed(chunk))
        out += dec.finish()
        assert bytes(out) == plaintext
        assert dec.header == ct[:HEADER_SIZE]


def test_encryptor_accepts_memoryview_and_bytearray(pk: bytes) -> None:
    data = os.urandom(5 * SEG + 3)
    enc = Encryptor(pk, "obj", SEG)
    parts = [enc.header, *enc.feed(memoryview(data)[:100]), *enc.feed(bytearray(data[100:]))]
    parts.append(enc.finish())
    assert decrypt_bytes(pk, "obj", b"".join(parts)) == data


def test_nonce_prefix_is_random_per_object(pk: bytes) -> None:
    a = encrypt_bytes(pk, "obj", b"same", SEG)
    b = encrypt_bytes(pk, "obj", b"same", SEG)
    assert a[9:HEADER_SIZE] != b[9:HEADER_SIZE]
    assert a != b


def test_finished_objects_refuse_more_input(pk: bytes) -> None:
    enc = Encryptor(pk, "obj", SEG)
    enc.finish()
    with pytest.raises(CryptoError):
        enc.feed(b"x")
    dec = Decryptor(pk, "obj")
    dec.feed(encrypt_bytes(pk, "obj", b"abc", SEG))
    assert dec.finish() == b"abc"
    with pytest.raises(CryptoError):
        dec.feed(b"x")


async def test_async_stream_round_trip(pk: bytes, rng: random.Random) -> None:
    plaintext = rng.randbytes(10 * SEG + 5)
    pieces = await collect(encrypt_stream(pk, "obj", aiter_of(random_chunks(plaintext, rng)), SEG))
    assert pieces[0] == parse_header(pieces[0]).to_bytes()
    assert len(pieces[0]) == HEADER_SIZE
    assert [len(p) for p in pieces[1:]] == [SEG + TAG_SIZE] * 10 + [5 + TAG_SIZE]
    ct = b"".join(pieces)
    out = await collect(decrypt_stream(pk, "obj", aiter_of(random_chunks(ct, rng)), SEG))
    assert [len(p) for p in out] == [SEG] * 10 + [5]
    assert b"".join(out) == plaintext


async def test_async_stream_empty(pk: bytes) -> None:
    pieces = await collect(encrypt_stream(pk, "obj", aiter_of([]), SEG))
    assert len(pieces) == 2
    assert await collect(decrypt_stream(pk, "obj", aiter_of(pieces))) == []


# --------------------------------------------------------------------------- tampering


@pytest.fixture
def sample(pk: bytes) -> tuple[bytes, bytes, list[bytes]]:
    """Plaintext of 4 full segments plus a 10-byte tail, and its encryption."""
    plaintext = os.urandom(4 * SEG + 10)
    ct = encrypt_bytes(pk, "obj-a", plaintext, SEG)
    header, segments = split_segments(ct)
    assert len(segments) == 5
    return plaintext, header, segments


def test_wrong_key_fails_before_any_output(sample: tuple[bytes, bytes, list[bytes]]) -> None:
    _, header, segments = sample
    assert decrypt_until_error(header + b"".join(segments), generate_package_key(), "obj-a") == b""


def test_wrong_object_id_fails(pk: bytes, sample: tuple[bytes, bytes, list[bytes]]) -> None:
    _, header, segments = sample
    assert decrypt_until_error(header + b"".join(segments), pk, "obj-b") == b""


def test_segment_from_other_object_fails(
    pk: bytes, sample: tuple[bytes, bytes, list[bytes]]
) -> None:
    plaintext, header, segments = sample
    other = encrypt_bytes(pk, "obj-b", plaintext, SEG)
    other_header, other_segments = split_segments(other)
    spliced = header + b"".join([segments[0], other_segments[1], *segments[2:]])
    assert decrypt_until_error(spliced, pk, "obj-a") == plaintext[:SEG]
    # Even with the other object's header (nonce prefix) the object id in AAD/DEK differs.
    assert decrypt_until_error(other_header + b"".join(other_segments), pk, "obj-a") == b""


def test_swapped_segments_fail(pk: bytes, sample: tuple[bytes, bytes, list[bytes]]) -> None:
    plaintext, header, s = sample
    swapped = header + b"".join([s[0], s[2], s[1], s[3], s[4]])
    assert decrypt_until_error(swapped, pk, "obj-a") == plaintext[:SEG]


def test_duplicated_segment_fails(pk: bytes, sample: tuple[bytes, bytes, list[bytes]]) -> None:
    plaintext, header, s = sample
    dup = header + b"".join([s[0], s[0], s[1], s[2], s[3], s[4]])
    assert decrypt_until_error(dup, pk, "obj-a") == plaintext[:SEG]


def test_dropped_last_segment_fails(pk: bytes, sample: tuple[bytes, bytes, list[bytes]]) -> None:
    plaintext, header, s = sample
    released = decrypt_until_error(header + b"".join(s[:-1]), pk, "obj-a")
    # The new "last" segment is checked as final and fails; nothing of it is released.
    assert released == plaintext[: 3 * SEG]


def test_dropped_full_final_segment_fails(pk: bytes) -> None:
    plaintext = os.urandom(3 * SEG)
    header, s = split_segments(encrypt_bytes(pk, "obj", plaintext, SEG))
    assert decrypt_until_error(header + s[0] + s[1], pk, "obj") == plaintext[:SEG]


@pytest.mark.parametrize("cut", [1, 5, TAG_SIZE, 10 + TAG_SIZE - 1])
def test_truncated_last_segment_fails(
    pk: bytes, sample: tuple[bytes, bytes, list[bytes]], cut: int
) -> None:
    plaintext, header, s = sample
    ct = header + b"".join(s)
    assert decrypt_until_error(ct[:-cut], pk, "obj-a") == plaintext[: 4 * SEG]


@pytest.mark.parametrize("extra", ["copy-of-last", "copy-of-first", "one-byte", "tag-size"])
def test_appended_data_fails(
    pk: bytes, sample: tuple[bytes, bytes, list[bytes]], extra: str
) -> None:
    plaintext, header, s = sample
    tail = {
        "copy-of-last": s[4],
        "copy-of-first": s[0],
        "one-byte": b"\x00",
        "tag-size": bytes(TAG_SIZE),
    }[extra]
    released = decrypt_until_error(header + b"".join(s) + tail, pk, "obj-a")
    # The genuine final segment is now followed by data, so it fails as non-final.
    assert released == plaintext[: 4 * SEG]


@pytest.mark.parametrize("index", range(HEADER_SIZE))
def test_flipped_header_byte_fails(
    pk: bytes, sample: tuple[bytes, bytes, list[bytes]], index: int
) -> None:
    _, header, s = sample
    assert decrypt_until_error(flip(header, index) + b"".join(s), pk, "obj-a") == b""


@pytest.mark.parametrize("segment", range(5))
@pytest.mark.parametrize("where", ["first", "middle", "tag-first", "tag-last"])
def test_flipped_segment_byte_fails(
    pk: bytes, sample: tuple[bytes, bytes, list[bytes]], segment: int, where: str
) -> None:
    plaintext, header, s = sample
    seg_ct = s[segment]
    body = len(seg_ct) - TAG_SIZE
    offset = {"first": 0, "middle": body // 2, "tag-first": body, "tag-last": len(seg_ct) - 1}
    tampered = list(s)
    tampered[segment] = flip(seg_ct, offset[where])
    released = decrypt_until_error(header + b"".join(tampered), pk, "obj-a")
    assert released == plaintext[: segment * SEG]


def test_truncated_or_missing_header_fails(pk: bytes) -> None:
    ct = encrypt_bytes(pk, "obj", b"hello", SEG)
    for cut in (0, 1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + TAG_SIZE - 1):
        dec = Decryptor(pk, "obj")
        assert dec.feed(ct[:cut]) == []
        with pytest.raises(IntegrityError):
            dec.finish()


def test_empty_final_segment_after_full_ones_is_rejected(pk: bytes) -> None:
    # The encoder never emits this shape; accepting it would make sizes non-canonical.
    from hds_common.crypto._stream import _SegmentCipher

    enc = Encryptor(pk, "obj", SEG)
    cipher = _SegmentCipher(pk, "obj", enc.header)
    forged = enc.header + cipher.seal(0, bytes(SEG), False) + cipher.seal(1, b"", True)
    assert decrypt_until_error(forged, pk, "obj") == bytes(SEG)


def test_oversized_segment_size_in_header_rejected_early(pk: bytes) -> None:
    header = b"HDS1\x01" + (MAX_SEGMENT_SIZE + 1).to_bytes(4, "big") + bytes(7)
    with pytest.raises(IntegrityError, match="segment size"):
        Decryptor(pk, "obj").feed(header)
    with pytest.raises(IntegrityError, match="version"):
        Decryptor(pk, "obj").feed(b"HDS1\x02" + bytes(11))


def test_segment_size_hint_mismatch_fails(pk: bytes) -> None:
    ct = encrypt_bytes(pk, "obj", b"hello", SEG)
    with pytest.raises(IntegrityError, match="segment size"):
        decrypt_bytes(pk, "obj", ct, segment_size_hint=SEG * 2)


def test_decryptor_is_poisoned_after_failure(
    pk: bytes, sample: tuple[bytes, bytes, list[bytes]]
) -> None:
    _, header, s = sample
    dec = Decryptor(pk, "obj-a")
    with pytest.raises(IntegrityError):
        dec.feed(header + flip(s[0], 0) + s[1])
    with pytest.raises(IntegrityError, match="already failed"):
        dec.feed(s[2])
    with pytest.raises(IntegrityError, match="already failed"):
        dec.finish()


async def test_decrypt_stream_yields_nothing_of_bad_segment(
    pk: bytes, sample: tuple[bytes, bytes, list[bytes]]
) -> None:
    plaintext, header, s = sample
    tampered = header + b"".join([s[0], s[1], flip(s[2], 3), s[3], s[4]])
    released: list[bytes] = []
    chunks = [header, *s[:2], flip(s[2], 3), *s[3:]]
    with pytest.raises(IntegrityError):
        await drain(decrypt_stream(pk, "obj-a", aiter_of(chunks)), released)
    assert b"".join(released) == plaintext[: 2 * SEG]

    # One big chunk: segments authenticated in the failing call are dropped, never the
    # bad one released.
    released = []
    chunks = [tampered[:50], tampered[50:]]
    with pytest.raises(IntegrityError):
        await drain(decrypt_stream(pk, "obj-a", aiter_of(chunks)), released)
    joined = b"".join(released)
    assert plaintext.startswith(joined)
    assert len(joined) in (0, SEG, 2 * SEG)

    released = []
    with pytest.raises(IntegrityError):
        await drain(decrypt_stream(pk, "obj-a", aiter_of([header, *s[:-1]])), released)
    assert b"".join(released) == plaintext[: 3 * SEG]


# --------------------------------------------------------------------------- random access


def test_segment_span_values() -> None:
    size = 3 * SEG + 10
    stride = SEG + TAG_SIZE
    assert segment_span(0, 1, size, SEG) == (0, 0, HEADER_SIZE, HEADER_SIZE + stride)
    assert segment_span(SEG - 1, SEG + 1, size, SEG) == (
        0,
        1,
        HEADER_SIZE,
        HEADER_SIZE + 2 * stride,
    )
    assert segment_span(3 * SEG, size, size, SEG) == (
        3,
        3,
        HEADER_SIZE + 3 * stride,
        HEADER_SIZE + 3 * stride + 10 + TAG_SIZE,
    )
    assert segment_span(0, size, size, SEG)[2:] == (HEADER_SIZE, ciphertext_size(size, SEG))
    for bad in [(0, 0), (5, 4), (-1, 3), (0, size + 1)]:
        with pytest.raises(ValueError, match="range"):
            segment_span(bad[0], bad[1], size, SEG)


async def read_range(
    pk: bytes, oid: str, ct: bytes, start: int, end: int, rng: random.Random
) -> bytes:
    header = ct[:HEADER_SIZE]
    seg = parse_header(header).segment_size
    size = plaintext_size(len(ct), seg)
    first, _last, c_start, c_end = segment_span(start, end, size, seg)
    pieces = await collect(
        decrypt_range(
            pk,
            oid,
            header,
            aiter_of(random_chunks(ct[c_start:c_end], rng, 2 * seg)),
            first,
            segment_count(size, seg),
            start - first * seg,
            end - start,
        )
    )
    return b"".join(pieces)


async def test_decrypt_range_matches_slices(pk: bytes, rng: random.Random) -> None:
    for seg in (1, 7, SEG):
        for size in (1, seg, seg + 1, 5 * seg, 5 * seg + 3):
            plaintext = rng.randbytes(size)
            ct = encrypt_bytes(pk, "obj", plaintext, seg)
            for _ in range(40):
                start = rng.randrange(size)
                end = rng.randint(start + 1, size)
                assert await read_range(pk, "obj", ct, start, end, rng) == plaintext[start:end]
            assert await read_range(pk, "obj", ct, 0, size, rng) == plaintext


def test_range_decryptor_sync(pk: bytes) -> None:
    plaintext = os.urandom(4 * SEG + 10)
    ct = encrypt_bytes(pk, "obj", plaintext, SEG)
    first, _, c_start, c_end = segment_span(70, 4 * SEG + 5, len(plaintext), SEG)
    dec = RangeDecryptor(pk, "obj", ct[:HEADER_SIZE], first, 5, 70 - first * SEG, 4 * SEG - 65)
    out = b"".join(dec.feed(ct[c_start:c_end])) + dec.finish()
    assert out == plaintext[70 : 4 * SEG + 5]


def _range_setup(pk: bytes) -> tuple[bytes, bytes]:
    plaintext = os.urandom(4 * SEG + 10)
    return plaintext, encrypt_bytes(pk, "obj", plaintext, SEG)


def test_range_tampered_segment_fails(pk: bytes) -> None:
    plaintext, ct = _range_setup(pk)
    _, _, c_start, c_end = segment_span(SEG, 3 * SEG, len(plaintext), SEG)
    body = ct[c_start:c_end]
    dec = RangeDecryptor(pk, "obj", ct[:HEADER_SIZE], 1, 5, 0, 2 * SEG)
    with pytest.raises(IntegrityError):
        dec.feed(flip(body, SEG + TAG_SIZE + 3))
    dec = RangeDecryptor(pk, "obj", ct[:HEADER_SIZE], 1, 5, 0, 2 * SEG)
    out = dec.feed(body[: SEG + TAG_SIZE + 3])
    assert out == [plaintext[SEG : 2 * SEG]]
    with pytest.raises(IntegrityError, match="truncated"):
        dec.finish()


def test_range_final_flag_is_checked(pk: bytes) -> None:
    plaintext, ct = _range_setup(pk)
    header = ct[:HEADER_SIZE]
    # Claiming the object has only 4 segments makes segment 3 "final": must fail.
    _, _, c_start, c_end = segment_span(3 * SEG, 4 * SEG, len(plaintext), SEG)
    dec = RangeDecryptor(pk, "obj", header, 3, 4, 0, SEG)
    assert dec.feed(ct[c_start:c_end]) == []  # held back: final length unknown until the end
    with pytest.raises(IntegrityError):
        dec.finish()
    # Truncated real final segment.
    _, _, c_start, c_end = segment_span(4 * SEG, 4 * SEG + 10, len(plaintext), SEG)
    dec = RangeDecryptor(pk, "obj", header, 4, 5, 0, 5)
    dec.feed(ct[c_start : c_end - 1])
    with pytest.raises(IntegrityError):
        dec.finish()
    # Data past the final segment.
    dec = RangeDecryptor(pk, "obj", header, 4, 5, 0, 10)
    dec.feed(ct[c_start:c_end] + b"x")
    with pytest.raises(IntegrityError):
        dec.finish()
    full = encrypt_bytes(pk, "obj", plaintext[: 2 * SEG], SEG)
    dec = RangeDecryptor(pk, "obj", full[:HEADER_SIZE], 1, 2, 0, SEG)
    with pytest.raises(IntegrityError, match="too long"):
        dec.feed(full[HEADER_SIZE + SEG + TAG_SIZE :] + b"x")


def test_range_trailing_data_and_wrong_header_fail(pk: bytes) -> None:
    plaintext, ct = _range_setup(pk)
    _, _, c_start, c_end = segment_span(0, SEG, len(plaintext), SEG)
    dec = RangeDecryptor(pk, "obj", ct[:HEADER_SIZE], 0, 5, 0, SEG)
    with pytest.raises(IntegrityError, match="after"):
        dec.feed(ct[c_start : c_end + 1])
    other = encrypt_bytes(pk, "obj", plaintext, SEG)
    dec = RangeDecryptor(pk, "obj", other[:HEADER_SIZE], 0, 5, 0, SEG)
    with pytest.raises(IntegrityError):
        dec.feed(ct[c_start:c_end])
    dec = RangeDecryptor(pk, "other", ct[:HEADER_SIZE], 0, 5, 0, SEG)
    with pytest.raises(IntegrityError):
        dec.feed(ct[c_start:c_end])


def test_range_argument_validation(pk: bytes) -> None:
    _, ct = _range_setup(pk)
    header = ct[:HEADER_SIZE]
    with pytest.raises(ValueError, match="total_segments"):
        RangeDecryptor(pk, "obj", header, 5, 5, 0, 1)
    with pytest.raises(ValueError, match="skip"):
        RangeDecryptor(pk, "obj", header, 0, 5, SEG, 1)
    with pytest.raises(ValueError, match="skip"):
        RangeDecryptor(pk, "obj", header, 0, 5, 0, 0)
    with pytest.raises(ValueError, match="past the last segment"):
        RangeDecryptor(pk, "obj", header, 4, 5, 0, SEG + 1)
    dec = RangeDecryptor(pk, "obj", header, 4, 5, 0, 11)
    dec.feed(ct[HEADER_SIZE + 4 * (SEG + TAG_SIZE) :])
    with pytest.raises(ValueError, match="end of the object"):
        dec.finish()


# --------------------------------------------------------------------------- key slots


def test_wrap_unwrap_round_trip() -> None:
    kek = derive_kek(b"ABCD-EFGH-JKLM" + b"1980-02-29", generate_salt(), FAST_ARGON2)
    key = generate_package_key()
    wrapped = wrap_key(kek, key, b"hds/slot/code|pkg-1")
    assert wrapped[0] == 1
    assert len(wrapped) == 1 + 12 + 32 + 16
    assert unwrap_key(kek, wrapped, b"hds/slot/code|pkg-1") == key
    assert wrap_key(kek, key, b"ctx") != wrap_key(kek, key, b"ctx")


def test_unwrap_with_wrong_secret_fails() -> None:
    salt = generate_salt()
    kek = derive_kek(b"ABCD-EFGH-JKLM1980-02-29", salt, FAST_ARGON2)
    wrong = derive_kek(b"ABCD-EFGH-JKLM1980-03-01", salt, FAST_ARGON2)
    wrapped = wrap_key(kek, generate_package_key(), b"ctx")
    with pytest.raises(IntegrityError):
        unwrap_key(wrong, wrapped, b"ctx")
    # Same secret, other salt: other KEK.
    with pytest.raises(IntegrityError):
        unwrap_key(
            derive_kek(b"ABCD-EFGH-JKLM1980-02-29", generate_salt(), FAST_ARGON2), wrapped, b"ctx"
        )


def test_unwrap_with_wrong_aad_or_tampering_fails() -> None:
    kek = os.urandom(32)
    wrapped = wrap_key(kek, generate_package_key(), b"pkg-1")
    with pytest.raises(IntegrityError):
        unwrap_key(kek, wrapped, b"pkg-2")
    for i in range(len(wrapped)):
        with pytest.raises(IntegrityError):
            unwrap_key(kek, flip(wrapped, i), b"pkg-1")
    for bad in (b"", wrapped[:29], b"\x02" + wrapped[1:]):
        with pytest.raises(IntegrityError):
            unwrap_key(kek, bad, b"pkg-1")
    with pytest.raises(ValueError, match="KEK"):
        wrap_key(b"short", b"key", b"")


def test_user_private_key_wrapped_by_password_and_recovery_code() -> None:
    """The user-slot pattern: one X25519 key, two independent Argon2id-protected wraps."""
    user_key = generate_private_key()
    user_key_bytes = private_key_to_bytes(user_key)
    account = "acct-42"
    pw_salt, rc_salt = generate_salt(), generate_salt()
    pw_kek = derive_kek(b"correct horse battery staple", pw_salt, FAST_ARGON2)
    rc_kek = derive_kek(b"RC-7Q2M-XK9D-P4LW", rc_salt, FAST_ARGON2)
    by_password = wrap_key(pw_kek, user_key_bytes, f"hds/user-key/password|{account}".encode())
    by_recovery = wrap_key(rc_kek, user_key_bytes, f"hds/user-key/recovery|{account}".encode())

    # A package key is granted to the user by sealing it to the public key.
    pk = generate_package_key()
    user_slot = seal(user_key.public_key(), pk, b"hds/slot/user|pkg-1")

    for kek, blob, kind in ((pw_kek, by_password, "password"), (rc_kek, by_recovery, "recovery")):
        aad = f"hds/user-key/{kind}|{account}".encode()
        recovered = private_key_from_bytes(unwrap_key(kek, blob, aad))
        assert open_sealed(recovered, user_slot, b"hds/slot/user|pkg-1") == pk
    # The wraps are not interchangeable between the two secrets.
    with pytest.raises(IntegrityError):
        unwrap_key(pw_kek, by_recovery, f"hds/user-key/recovery|{account}".encode())


# --------------------------------------------------------------------------- sealing


def test_seal_round_trip() -> None:
    recipient = generate_private_key()
    sealed = seal(recipient.public_key(), b"secret", b"ctx")
    assert sealed[0] == 1
    assert len(sealed) == 1 + 32 + 12 + len(b"secret") + 16
    assert open_sealed(recipient, sealed, b"ctx") == b"secret"
    # Byte forms of both keys work too.
    sealed = seal(public_key_to_bytes(recipient.public_key()), b"", b"ctx")
    assert open_sealed(private_key_to_bytes(recipient), sealed, b"ctx") == b""


def test_seal_ephemeral_key_is_fresh() -> None:
    pub = generate_private_key().public_key()
    assert seal(pub, b"x", b"c")[1:33] != seal(pub, b"x", b"c")[1:33]


def test_open_sealed_failures() -> None:
    recipient = generate_private_key()
    sealed = seal(recipient.public_key(), b"secret", b"ctx")
    with pytest.raises(IntegrityError):
        open_sealed(generate_private_key(), sealed, b"ctx")
    with pytest.raises(IntegrityError):
        open_sealed(recipient, sealed, b"ctx2")
    for i in range(len(sealed)):
        with pytest.raises(IntegrityError):
            open_sealed(recipient, flip(sealed, i), b"ctx")
    with pytest.raises(IntegrityError):
        open_sealed(recipient, sealed[:60], b"ctx")
    # A low-order ephemeral point (all-zero shared secret) is rejected, not used.
    low_order = b"\x01" + bytes(32) + sealed[33:]
    with pytest.raises(IntegrityError):
        open_sealed(recipient, low_order, b"ctx")


def test_seal_rejects_low_order_public_key() -> None:
    with pytest.raises(ValueError, match="recipient"):
        seal(bytes(32), b"x", b"ctx")


# --------------------------------------------------------------------------- grants


def _grant(kind: str = "package", subject: str = "pkg-1", expires_at: int = 2_000_000_000) -> Grant:
    return Grant(kind, subject, os.urandom(16).hex(), os.urandom(32), expires_at)  # type: ignore[arg-type]


def _body(**fields: object) -> bytes:
    body = {"v": 2, "kind": "user", "sub": "a", "ks": "ab" * 16, "secret": b64e(bytes(32))}
    return json.dumps({**body, "exp": 5, **fields}).encode()


def test_grant_round_trip() -> None:
    storage = generate_private_key()
    for grant in (_grant("package", "pkg-1"), _grant("user", "acct-1")):
        token = seal_grant(storage.public_key(), grant)
        assert isinstance(token, str)
        assert b64e(b64d(token)) == token
        assert open_grant(storage, token, now=1_900_000_000) == grant
        assert open_grant(private_key_to_bytes(storage), token, now=1_900_000_000) == grant
    # Default "now" is the wall clock.
    assert open_grant(storage, token) == grant


def test_a_grant_carries_no_key_only_its_sessions_secret() -> None:
    storage = generate_private_key()
    grant = _grant("user", "acct-1")
    body = json.loads(
        open_sealed(storage, b64d(seal_grant(storage.public_key(), grant)), GRANT_CONTEXT)
    )
    assert set(body) == {"v", "kind", "sub", "ks", "secret", "exp"}
    assert b64d(body["secret"]) == grant.secret


def test_grant_expiry() -> None:
    storage = generate_private_key()
    grant = _grant(expires_at=1000)
    token = seal_grant(storage.public_key(), grant)
    assert open_grant(storage, token, now=999) == grant
    with pytest.raises(GrantError, match="expired"):
        open_grant(storage, token, now=1000)
    with pytest.raises(GrantError, match="expired"):
        open_grant(storage, token)


@pytest.mark.parametrize(
    "token",
    ["", "!!!!", "a", "AAAA", "====", b64e(os.urandom(80)), "A" * 5000, "YWJj+/"],
)
def test_grant_garbage(token: str) -> None:
    with pytest.raises(GrantError):
        open_grant(generate_private_key(), token, now=0)


def test_grant_sealed_to_other_key_or_context() -> None:
    storage = generate_private_key()
    token = seal_grant(generate_private_key().public_key(), _grant("user", "acct-1"))
    with pytest.raises(GrantError, match="cannot be opened"):
        open_grant(storage, token, now=0)
    wrong_context = b64e(seal(storage.public_key(), _body(), b"hds/other/v1"))
    with pytest.raises(GrantError, match="cannot be opened"):
        open_grant(storage, wrong_context, now=0)
    # The first releases' grants (the key inside, context v1) are not honoured.
    legacy = json.dumps(
        {"v": 1, "kind": "user", "sub": "a", "key": b64e(bytes(32)), "exp": 2_000_000_000}
    ).encode()
    with pytest.raises(GrantError, match="cannot be opened"):
        open_grant(storage, b64e(seal(storage.public_key(), legacy, b"hds/grant/v1")), now=0)
    assert open_grant(storage, b64e(seal(storage.public_key(), _body(), GRANT_CONTEXT)), now=0)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"v":2}',
        _body(v=1),
        _body(kind="admin"),
        _body(sub=""),
        _body(ks=""),
        _body(secret=b64e(bytes(31))),
        _body(secret=5),
        _body(exp=5.5),
        _body(key=b64e(bytes(32))),
    ],
)
def test_grant_authentic_but_malformed(body: bytes) -> None:
    storage = generate_private_key()
    token = b64e(seal(storage.public_key(), body, GRANT_CONTEXT))
    with pytest.raises(GrantError, match="malformed"):
        open_grant(storage, token, now=0)


def test_grant_model() -> None:
    secret = os.urandom(32)
    grant = Grant("package", "pkg-1", "ab" * 16, secret, 10)
    assert secret.hex() not in repr(grant)
    assert repr(secret) not in repr(grant)
    with pytest.raises(ValueError, match="kind"):
        Grant("other", "x", "s", secret, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        Grant("package", "x", "s", b"short", 10)
    with pytest.raises(ValueError, match="session id"):
        Grant("package", "x", "", secret, 10)
    with pytest.raises(ValueError, match="expires_at"):
        Grant("package", "x", "s", secret, True)
    assert issubclass(GrantError, CryptoError)
    assert issubclass(IntegrityError, CryptoError)
    assert public_errors.GrantError is GrantError


def test_session_key_wrap_binds_secret_session_kind_and_subject() -> None:
    key, secret = generate_package_key(), os.urandom(32)
    where = {"session_id": "ab" * 16, "kind": "package", "subject": "pkg-1"}
    wrapped = wrap_session_key(secret, key, **where)  # type: ignore[arg-type]
    assert key not in wrapped
    assert unwrap_session_key(secret, wrapped, **where) == key  # type: ignore[arg-type]
    for change in ({"session_id": "cd" * 16}, {"kind": "user"}, {"subject": "pkg-2"}):
        with pytest.raises(IntegrityError):
            unwrap_session_key(secret, wrapped, **{**where, **change})  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        unwrap_session_key(os.urandom(32), wrapped, **where)  # type: ignore[arg-type]


def test_session_key_transit_is_sealed_to_storage_for_one_subject() -> None:
    storage = generate_private_key()
    key = generate_package_key()
    sealed = seal_session_key(storage.public_key(), key, kind="package", subject="pkg-1")
    assert open_session_key(storage, sealed, kind="package", subject="pkg-1") == key
    for kind, subject in (("user", "pkg-1"), ("package", "pkg-2")):
        with pytest.raises(GrantError):
            open_session_key(storage, sealed, kind=kind, subject=subject)  # type: ignore[arg-type]
    with pytest.raises(GrantError):
        open_session_key(generate_private_key(), sealed, kind="package", subject="pkg-1")
    with pytest.raises(ValueError, match="32 bytes"):
        seal_session_key(storage.public_key(), b"short", kind="package", subject="pkg-1")


# --------------------------------------------------------------------------- X25519 / b64


def test_x25519_byte_round_trips() -> None:
    key = generate_private_key()
    raw = private_key_to_bytes(key)
    assert len(raw) == 32
    assert private_key_to_bytes(private_key_from_bytes(raw)) == raw
    pub = public_key_to_bytes(key.public_key())
    assert public_key_to_bytes(public_key_from_bytes(pub)) == pub
    with pytest.raises(ValueError, match="32 bytes"):
        private_key_from_bytes(raw[:31])
    with pytest.raises(ValueError, match="32 bytes"):
        public_key_from_bytes(pub + b"\x00")


def test_b64_helpers() -> None:
    for n in range(0, 40):
        data = os.urandom(n)
        text = b64e(data)
        assert "=" not in text
        assert b64d(text) == data
        assert b64d(text.encode()) == data
    assert b64e(b"\xfb\xff") == "-_8"
    for bad in ("-_8=", "+/8", "ab cd", "a", "abcde", "é"):
        with pytest.raises(ValueError, match="base64url"):
            b64d(bad)


def test_load_or_create_private_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "storage.key"
    key = load_or_create_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b64d(path.read_text().strip()) == private_key_to_bytes(key)
    again = load_or_create_private_key(path)
    assert private_key_to_bytes(again) == private_key_to_bytes(key)
    assert [p.name for p in path.parent.iterdir()] == ["storage.key"]


def test_load_private_key_rejects_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "storage.key"
    path.write_text("not a key\n")
    with pytest.raises(CryptoError):
        load_or_create_private_key(path)
    path.write_text(b64e(bytes(31)))
    with pytest.raises(CryptoError):
        load_or_create_private_key(path)


# --------------------------------------------------------------------------- memory


async def test_stream_round_trip_constant_memory() -> None:
    pk = generate_package_key()
    chunk_size = 64 << 10
    n_chunks = (64 << 20) // chunk_size
    source_digest = hashlib.sha256()
    out_digest = hashlib.sha256()
    out_size = 0

    async def source() -> AsyncIterator[bytes]:
        for _ in range(n_chunks):
            chunk = os.urandom(chunk_size)
            source_digest.update(chunk)
            yield chunk

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async for piece in decrypt_stream(pk, "big", encrypt_stream(pk, "big", source())):
            out_digest.update(piece)
            out_size += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out_size == 64 << 20
    assert out_digest.digest() == source_digest.digest()
    assert peak < 8 << 20, f"peak {peak / (1 << 20):.1f} MiB"
