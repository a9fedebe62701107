"""The File Meta Information (group 0002) of a DICOM Part 10 file, read strictly: after
the 128-byte preamble and ``DICM``, always explicit VR little endian, starting with its
group length (0002,0000), which must end exactly where the meta elements end."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hds_storage.ingest.dicom_structure import (
    LONG_VRS,
    MAGIC,
    META_START,
    PREAMBLE,
    SHORT_VRS,
    UNDEFINED,
    NotDicom,
    StructureError,
    describe_tag,
)

__all__ = ["FileMeta", "check_meta_ends", "read_file_meta"]


@dataclass(frozen=True, slots=True)
class FileMeta:
    """The raw File Meta elements (element number → VR, value) and where the dataset starts."""

    elements: dict[int, tuple[bytes, bytes]]
    dataset_offset: int
    group_length: int


def read_file_meta(data: bytes | bytearray, *, final: bool) -> FileMeta | None:
    """The File Meta Information of ``data`` (the start of a file), or ``None`` if more
    bytes are needed to tell; ``final``: ``data`` is the whole file."""
    if len(data) < META_START:
        if final:
            raise NotDicom("not a DICOM Part 10 file (no DICM preamble)")
        return None
    if data[PREAMBLE:META_START] != MAGIC:
        raise NotDicom("not a DICOM Part 10 file (no DICM preamble)")
    length_element = describe_tag(0x00020000)
    if len(data) < META_START + 12:
        if final:
            raise StructureError(
                f"the file ends inside the file meta information ({length_element})"
            )
        return None
    group, element, vr, size = struct.unpack_from("<HH2sH", data, META_START)
    if (group, element) != (0x0002, 0x0000):
        raise StructureError(
            f"the file meta information does not start with {length_element} "
            f"but with {describe_tag(group << 16 | element)}"
        )
    if vr != b"UL" or size != 4:
        raise StructureError(f"{length_element} is not an explicit VR little endian UL of 4 bytes")
    (group_length,) = struct.unpack_from("<L", data, META_START + 8)
    start = META_START + 12
    end = start + group_length
    elements: dict[int, tuple[bytes, bytes]] = {}
    offset = start
    while offset < end:
        if len(data) < offset + 8:
            _need_more(final, "file meta information")
            return None
        group, element, vr = struct.unpack_from("<HH2s", data, offset)
        tag = group << 16 | element
        if group != 0x0002:
            raise StructureError(
                f"{length_element} is {group_length}, but the file meta elements end after "
                f"{offset - start} bytes"
            )
        if vr in LONG_VRS:
            if len(data) < offset + 12:
                _need_more(final, "file meta information")
                return None
            (length,) = struct.unpack_from("<L", data, offset + 8)
            header = 12
        elif vr in SHORT_VRS:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            header = 8
        else:
            raise StructureError(
                f"file meta element {describe_tag(tag)} is not explicit VR little endian"
            )
        value_end = offset + header + length
        if length == UNDEFINED or value_end > end:
            raise StructureError(
                f"{describe_tag(tag)} extends beyond the {group_length} bytes "
                f"{length_element} announces"
            )
        if len(data) < value_end:
            _need_more(final, "file meta information")
            return None
        if element in elements:
            raise StructureError(f"{describe_tag(tag)} appears twice in the file meta information")
        elements[element] = (vr, bytes(data[offset + header : value_end]))
        offset = value_end
    return FileMeta(elements, end, group_length)


def check_meta_ends(data: bytes | bytearray, meta: FileMeta, *, little: bool) -> None:
    """The element after the meta group must not be a meta element (group length too
    short). Only for datasets that are not deflated (a deflate stream is not tags)."""
    if len(data) < meta.dataset_offset + 2:
        return
    (group,) = struct.unpack_from("<H" if little else ">H", data, meta.dataset_offset)
    if group == 0x0002:
        raise StructureError(
            f"{describe_tag(0x00020000)} is {meta.group_length}, but file meta elements "
            "follow after it"
        )


def _need_more(final: bool, where: str) -> None:
    """More bytes are needed: an error if there are none."""
    if final:
        raise StructureError(f"the file ends inside the {where}")
