"""Strict structure of a DICOM Part 10 file, checked while it streams.

Two parts, as a receiving archive reads a file:

- the File Meta Information (:mod:`hds_storage.ingest.dicom_meta`), group 0002 after
  the 128-byte preamble and ``DICM``, always explicit VR little endian, must start with
  its group length (0002,0000), and that length must end exactly where the meta elements
  end.
- :class:`DatasetWalker`: the dataset after it, in the encoding its transfer syntax
  names, element by element down into every sequence and item, up to the end of the
  file: every length fits its container, every explicit VR is a VR, sequences and
  encapsulated Pixel Data close with their delimiters, and the file does not end inside
  an element. Values are skipped without being held, so memory stays constant; only the
  offset of the top-level Pixel Data is remembered (the header ends there).

Errors are :class:`StructureError` with a message in DICOM terms (keywords and tags).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Generator

__all__ = [
    "LONG_VRS",
    "MAGIC",
    "META_START",
    "PIXEL_DATA_TAGS",
    "PREAMBLE",
    "SHORT_VRS",
    "UNDEFINED",
    "DatasetWalker",
    "NotDicom",
    "StructureError",
    "describe_tag",
]

PREAMBLE = 128
MAGIC = b"DICM"
META_START = PREAMBLE + len(MAGIC)
UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQUENCE_END = 0xFFFEE0DD
# Pixel Data, Float Pixel Data, Double Float Pixel Data: the header ends before them.
PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
PIXEL_DATA = 0x7FE00010
# VRs with a 2-byte reserved field and a 32-bit length in explicit VR encodings.
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
SHORT_VRS = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO",
        b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip
# Deeper nesting than this is no real object; it would only cost stack.
MAX_DEPTH = 64
# Inflate a deflated dataset in steps of at most this many bytes (a small deflate
# stream may expand enormously; each step is walked before the next is made).
INFLATE_STEP = 1024 * 1024
# Some writers append a CRC-32 and size (8 bytes) after the deflate stream.
MAX_DEFLATE_TRAILER = 8


class StructureError(Exception):
    """The file is not a well-formed DICOM Part 10 file; the message says why."""


class NotDicom(StructureError):
    """No ``DICM`` after the preamble: not a Part 10 file at all."""


def describe_tag(tag: int) -> str:
    """``Keyword (gggg,eeee)``, or only the tag for private and unknown elements."""
    from pydicom.datadict import keyword_for_tag

    number = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    keyword = keyword_for_tag(tag)  # "" for private and unknown tags
    return f"{keyword} {number}" if keyword else number


# The walker is a generator of byte requests: it yields n > 0 to read n bytes (sent
# back), n < 0 to skip -n bytes (nothing sent back). The driver feeds it any chunking.
_Steps = Generator[int, bytes | None, None]


class DatasetWalker:
    """Check a dataset's structure from a stream of chunks (after the file meta)."""

    def __init__(self, *, implicit: bool, little: bool, deflated: bool, encapsulated: bool) -> None:
        self.position = 0  # dataset bytes consumed (inflated bytes if deflated)
        self.pixel_offset: int | None = None
        self._implicit = implicit
        self._little = little
        self._encapsulated = encapsulated
        self._at_top_boundary = True
        self._current: int | None = None  # tag of the element being read
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflated else None
        self._trailing = 0
        self._carry = bytearray()
        self._steps = self._elements(
            None, implicit=implicit, little=little, top=True, in_item=False, depth=0
        )
        self._want = next(self._steps)

    # -- driver ------------------------------------------------------------------------

    def feed(
        self, data: bytes | bytearray | memoryview, sink: Callable[[bytes], None] | None = None
    ) -> None:
        """Walk ``data`` (file bytes). ``sink`` receives the dataset bytes they stand for
        (inflated, for a deflated dataset), step by step, so it can stop a deflate stream
        that expands beyond what it keeps by raising."""
        if self._inflater is None:
            self._walk(memoryview(data))
            if sink is not None:
                sink(bytes(data))
            return
        if self._inflater.eof:
            self._trail(len(data))
            return
        pending = bytes(data)
        while pending and not self._inflater.eof:
            inflated = self._inflate(pending)
            pending = self._inflater.unconsumed_tail
            if inflated:
                self._walk(memoryview(inflated))
                if sink is not None:
                    sink(inflated)
        if self._inflater.eof:
            self._trail(len(self._inflater.unused_data) + len(pending))

    def _trail(self, count: int) -> None:
        """Bytes after the end of the deflate stream: readers ignore them; a few are a
        writer's checksum trailer, more are not part of any dataset."""
        self._trailing += count
        if self._trailing > MAX_DEFLATE_TRAILER:
            raise StructureError(f"{self._trailing} bytes follow the end of the deflated dataset")

    def _inflate(self, data: bytes) -> bytes:
        assert self._inflater is not None
        try:
            return self._inflater.decompress(data, INFLATE_STEP)
        except zlib.error:
            raise StructureError(
                "the deflated dataset cannot be inflated (TransferSyntaxUID names Deflated "
                "Explicit VR Little Endian)"
            ) from None

    def close(self) -> None:
        """The file ended: it must end between two top-level elements."""
        if self._inflater is not None and not self._inflater.eof:
            rest = self._inflater.flush()
            if rest:
                self._walk(memoryview(rest))
            if not self._inflater.eof:
                raise StructureError("the file ends inside the deflated dataset")
        if self._at_top_boundary and not self._carry:
            return
        if self._current is None:
            raise StructureError("the file ends inside a data element header")
        raise StructureError(f"the file ends inside {describe_tag(self._current)}")

    def _walk(self, view: memoryview) -> None:
        index = 0
        size = len(view)
        while index < size:
            want = self._want
            if want < 0:
                step = min(-want, size - index)
                index += step
                self.position += step
                if step == -want:
                    self._advance(None)
                else:
                    self._want = want + step
                continue
            step = min(want - len(self._carry), size - index)
            self._carry += view[index : index + step]
            index += step
            if len(self._carry) == want:
                value = bytes(self._carry)
                self._carry.clear()
                self.position += want
                self._advance(value)

    def _advance(self, value: bytes | None) -> None:
        self._want = self._steps.send(value)

    # -- grammar -----------------------------------------------------------------------

    def _elements(
        self,
        end: int | None,
        *,
        implicit: bool,
        little: bool,
        top: bool,
        in_item: bool,
        depth: int,
    ) -> _Steps:
        """Data elements until ``end`` (defined-length item), the item delimiter
        (undefined-length item) or the end of the file (top level)."""
        order = "<" if little else ">"
        while True:
            if end is not None and self.position >= end:
                if self.position > end:
                    raise StructureError("a data element extends beyond the item that holds it")
                return
            if top:
                self._at_top_boundary = True
                self._current = None
            head = yield 4
            assert head is not None
            self._at_top_boundary = False
            group, number = struct.unpack(order + "HH", head)
            tag = group << 16 | number
            if group == 0xFFFE:
                raw = yield 4
                assert raw is not None
                if tag == ITEM_END and in_item and end is None:
                    return
                raise StructureError(
                    f"unexpected {_delimiter_name(tag)} at dataset byte {self.position - 8}"
                )
            self._current = tag
            vr: bytes | None = None
            if implicit:
                raw = yield 4
                assert raw is not None
                (length,) = struct.unpack(order + "L", raw)
                header = 8
            else:
                vr = yield 2
                assert vr is not None
                if vr in LONG_VRS:
                    raw = yield 6
                    assert raw is not None
                    (length,) = struct.unpack(order + "L", raw[2:])
                    header = 12
                elif vr in SHORT_VRS:
                    raw = yield 2
                    assert raw is not None
                    (length,) = struct.unpack(order + "H", raw)
                    header = 8
                else:
                    raise StructureError(
                        f"{describe_tag(tag)} has no valid VR ({vr!r}) at dataset byte "
                        f"{self.position - 6}: the dataset is not encoded as its "
                        "TransferSyntaxUID (0002,0010) says"
                    )
            if top and tag in PIXEL_DATA_TAGS and self.pixel_offset is None:
                self.pixel_offset = self.position - header
                if tag == PIXEL_DATA:
                    self._check_pixel_encoding(length)
            if length == UNDEFINED:
                if depth >= MAX_DEPTH:
                    raise StructureError(f"sequences nested deeper than {MAX_DEPTH} levels")
                if implicit or vr in (b"SQ", b"UN"):
                    # An undefined-length UN holds an implicit VR little endian sequence.
                    nested_implicit = implicit or vr == b"UN"
                    yield from self._sequence(
                        None,
                        implicit=nested_implicit,
                        little=little or vr == b"UN",
                        depth=depth + 1,
                    )
                elif tag == PIXEL_DATA and vr in (b"OB", b"OW"):
                    yield from self._fragments(little=little)
                else:
                    raise StructureError(f"{describe_tag(tag)} has an undefined length")
                continue
            if end is not None and self.position + length > end:
                raise StructureError(f"{describe_tag(tag)} extends beyond the item that holds it")
            if vr == b"SQ":
                if depth >= MAX_DEPTH:
                    raise StructureError(f"sequences nested deeper than {MAX_DEPTH} levels")
                yield from self._sequence(
                    self.position + length, implicit=implicit, little=little, depth=depth + 1
                )
            elif length:
                yield -length

    def _check_pixel_encoding(self, length: int) -> None:
        tag = describe_tag(PIXEL_DATA)
        if self._encapsulated and length != UNDEFINED:
            raise StructureError(
                f"{tag} is not encapsulated, but TransferSyntaxUID (0002,0010) names a "
                "compressed transfer syntax"
            )
        if not self._encapsulated and length == UNDEFINED:
            raise StructureError(
                f"{tag} is encapsulated, but TransferSyntaxUID (0002,0010) names an "
                "uncompressed transfer syntax"
            )

    def _sequence(self, end: int | None, *, implicit: bool, little: bool, depth: int) -> _Steps:
        order = "<" if little else ">"
        sequence_tag = self._current
        while True:
            if end is not None and self.position >= end:
                if self.position > end:
                    raise StructureError(
                        f"an item extends beyond {describe_tag(sequence_tag or 0)}"
                    )
                return
            raw = yield 8
            assert raw is not None
            group, number, length = struct.unpack(order + "HHL", raw)
            tag = group << 16 | number
            if tag == SEQUENCE_END and end is None:
                return
            if tag != ITEM:
                raise StructureError(
                    f"{describe_tag(sequence_tag or 0)} holds {_delimiter_name(tag)} "
                    "where an item belongs"
                )
            if length == UNDEFINED:
                yield from self._elements(
                    None, implicit=implicit, little=little, top=False, in_item=True, depth=depth
                )
            else:
                if end is not None and self.position + length > end:
                    raise StructureError(
                        f"an item extends beyond {describe_tag(sequence_tag or 0)}"
                    )
                yield from self._elements(
                    self.position + length,
                    implicit=implicit,
                    little=little,
                    top=False,
                    in_item=False,
                    depth=depth,
                )
            self._current = sequence_tag

    def _fragments(self, *, little: bool) -> _Steps:
        order = "<" if little else ">"
        tag_name = describe_tag(PIXEL_DATA)
        while True:
            raw = yield 8
            assert raw is not None
            group, number, length = struct.unpack(order + "HHL", raw)
            tag = group << 16 | number
            if tag == SEQUENCE_END:
                return
            if tag != ITEM:
                raise StructureError(
                    f"encapsulated {tag_name} holds {_delimiter_name(tag)} where a fragment belongs"
                )
            if length == UNDEFINED:
                raise StructureError(f"a fragment of encapsulated {tag_name} has no length")
            if length:
                yield -length


def _delimiter_name(tag: int) -> str:
    names = {
        ITEM: "an item tag (FFFE,E000)",
        ITEM_END: "an item delimiter (FFFE,E00D)",
        SEQUENCE_END: "a sequence delimiter (FFFE,E0DD)",
    }
    return names.get(tag, f"the element ({tag >> 16:04X},{tag & 0xFFFF:04X})")
