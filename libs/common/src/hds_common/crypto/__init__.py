"""Cryptography of the HDS suite: object encryption, key slots, sealing and grants.

Only vetted primitives from ``cryptography`` (AES-256-GCM, HKDF-SHA256, X25519) and
``argon2-cffi`` (Argon2id) are used; this package only composes them.

Key hierarchy
=============

* Every package has a random 256-bit package key PK (:func:`generate_package_key`).
* Each stored object is encrypted under DEK = HKDF-SHA256(PK, salt=None,
  info=b"hds/object/v1" + object_id) (:func:`derive_object_key`). The stream APIs take
  PK and the object id and derive the DEK themselves.
* Code slot: PK wrapped with KEK = Argon2id(access code + birth date, 16-byte salt,
  :class:`Argon2Params`) -- :func:`derive_kek` + :func:`wrap_key` / :func:`unwrap_key`.
* User slot: PK sealed to the user's X25519 public key (:func:`seal` / :func:`open_sealed`).
  The user's private key is itself stored wrapped twice with :func:`wrap_key`: under a
  password KEK and under a recovery-code KEK.
* Grants and key sessions: a session that unlocked a key leaves it with the storage
  service, wrapped under a per-session secret (:func:`wrap_session_key`); its token
  carries only the session id and the secret, sealed to storage's own X25519 key with an
  expiry (:func:`seal_grant` / :func:`open_grant`). Ending the session deletes the
  wrapped key, so no token opens it again.

Encrypted object format (STREAM, Hoang-Reyhanitabar-Rogaway-Vizar)
==================================================================

::

    offset 0   b"HDS1"
    offset 4   version = 0x01
    offset 5   segment size S, 4 bytes big-endian (default 1 MiB)
    offset 9   nonce prefix P, 7 random bytes
    offset 16  segment 0 | segment 1 | ... | segment n-1

    segment i = AES-256-GCM(DEK, nonce = P | i (4 bytes BE) | last-flag (1 byte), plaintext_i,
                            aad = header (16 bytes) | object_id (UTF-8))
              = ciphertext_i | tag_i (16 bytes)

All segments carry S plaintext bytes except the last (1..S bytes; 0 only for an empty
object, which is a single tag-only final segment). Hence
``ciphertext_size(p, S) = 16 + 16 * max(1, ceil(p / S)) + p`` and :func:`plaintext_size`
inverts it. Truncation, dropped/reordered/duplicated/appended segments, segments or
objects moved between object ids, header edits and bit flips all raise
:class:`IntegrityError`.

Streaming API
=============

``Encryptor(pk, object_id, segment_size=SEGMENT_SIZE, *, nonce_prefix=None)``
    ``.header`` then ``.feed(data) -> list[bytes]`` (complete segments) and
    ``.finish() -> bytes`` (final segment). One segment is held back, since a full segment
    is only known not to be the last once more data arrives.
``Decryptor(pk, object_id, *, segment_size_hint=None)``
    ``.feed(data) -> list[bytes]`` returns authenticated plaintext only;
    ``.finish() -> bytes`` authenticates the final segment and raises if it is missing.
``encrypt_stream`` / ``decrypt_stream``
    async generators over the classes above; constant memory (about one segment).
``encrypt_bytes`` / ``decrypt_bytes``
    one-shot helpers for small in-memory objects.

Random access (e.g. an HTTP Range request for plaintext bytes ``[start, end)``)::

    header = await store.read(obj, 0, HEADER_SIZE)
    seg = parse_header(header).segment_size           # authenticated by decrypt_range
    size = plaintext_size(stored_size, seg)
    first, last, c_start, c_end = segment_span(start, end, size, seg)
    async for piece in decrypt_range(pk, object_id, header, store.stream(obj, c_start, c_end),
                                     first, segment_count(size, seg),
                                     skip=start - first * seg, length=end - start):
        ...

:class:`RangeDecryptor` is the synchronous core of :func:`decrypt_range`.

Errors
======

::

    Exception
    +-- CryptoError          anything raised on purpose by this package
        +-- IntegrityError   authentication failed / tampered / truncated / wrong key
        +-- GrantError       grant token malformed, not for this key, or expired

Argument mistakes by the caller (wrong key length, bad range) raise ``ValueError``.
"""

from __future__ import annotations

from ._errors import CryptoError, GrantError, IntegrityError
from ._grants import (
    GRANT_CONTEXT,
    SESSION_SECRET_SIZE,
    Grant,
    GrantKind,
    open_grant,
    open_session_key,
    seal_grant,
    seal_session_key,
    unwrap_session_key,
    wrap_session_key,
)
from ._keys import (
    PACKAGE_KEY_SIZE,
    X25519_KEY_SIZE,
    b64d,
    b64e,
    derive_object_key,
    generate_package_key,
    generate_private_key,
    hkdf_sha256,
    load_or_create_private_key,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
)
from ._slots import (
    DEFAULT_ARGON2,
    FAST_ARGON2,
    KEK_SIZE,
    SALT_SIZE,
    Argon2Params,
    derive_kek,
    generate_salt,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)
from ._stream import (
    HEADER_SIZE,
    MAX_SEGMENT_SIZE,
    NONCE_PREFIX_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    Decryptor,
    Encryptor,
    RangeDecryptor,
    StreamHeader,
    ciphertext_size,
    decrypt_bytes,
    decrypt_range,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
    parse_header,
    plaintext_size,
    segment_count,
    segment_span,
)

__all__ = [
    "DEFAULT_ARGON2",
    "FAST_ARGON2",
    "GRANT_CONTEXT",
    "HEADER_SIZE",
    "KEK_SIZE",
    "MAX_SEGMENT_SIZE",
    "NONCE_PREFIX_SIZE",
    "PACKAGE_KEY_SIZE",
    "SALT_SIZE",
    "SEGMENT_SIZE",
    "SESSION_SECRET_SIZE",
    "TAG_SIZE",
    "X25519_KEY_SIZE",
    "Argon2Params",
    "CryptoError",
    "Decryptor",
    "Encryptor",
    "Grant",
    "GrantError",
    "GrantKind",
    "IntegrityError",
    "RangeDecryptor",
    "StreamHeader",
    "b64d",
    "b64e",
    "ciphertext_size",
    "decrypt_bytes",
    "decrypt_range",
    "decrypt_stream",
    "derive_kek",
    "derive_object_key",
    "encrypt_bytes",
    "encrypt_stream",
    "generate_package_key",
    "generate_private_key",
    "generate_salt",
    "hkdf_sha256",
    "load_or_create_private_key",
    "open_grant",
    "open_sealed",
    "open_session_key",
    "parse_header",
    "plaintext_size",
    "private_key_from_bytes",
    "private_key_to_bytes",
    "public_key_from_bytes",
    "public_key_to_bytes",
    "seal",
    "seal_grant",
    "seal_session_key",
    "segment_count",
    "segment_span",
    "unwrap_key",
    "unwrap_session_key",
    "wrap_key",
    "wrap_session_key",
]
