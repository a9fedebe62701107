"""The DICOM transfer syntaxes ingest accepts."""

from __future__ import annotations

__all__ = [
    "ACCEPTED_TRANSFER_SYNTAXES",
    "DEFLATED",
    "EXPLICIT_BIG",
    "EXPLICIT_LITTLE",
    "IMPLICIT_LITTLE",
    "NATIVE",
]

IMPLICIT_LITTLE = "1.2.840.10008.1.2"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_BIG = "1.2.840.10008.1.2.2"
NATIVE = frozenset({IMPLICIT_LITTLE, EXPLICIT_LITTLE, DEFLATED, EXPLICIT_BIG})
# Transfer syntaxes an archive stores: the native ones and the compressed ones whose
# pixel data is a sequence of fragments (JPEG, JPEG-LS, JPEG 2000, RLE, MPEG-2, MPEG-4,
# HEVC). Others (private ones, references to pixel data elsewhere) are refused.
ACCEPTED_TRANSFER_SYNTAXES = NATIVE | frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
        "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
        "1.2.840.10008.1.2.4.57",  # JPEG Lossless (Process 14)
        "1.2.840.10008.1.2.4.70",  # JPEG Lossless, first-order prediction
        "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 (Lossless Only)
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.92",  # JPEG 2000 Part 2 Multi-component (Lossless Only)
        "1.2.840.10008.1.2.4.93",  # JPEG 2000 Part 2 Multi-component
        "1.2.840.10008.1.2.4.100",  # MPEG2 Main Profile / Main Level
        "1.2.840.10008.1.2.4.101",  # MPEG2 Main Profile / High Level
        "1.2.840.10008.1.2.4.102",  # MPEG-4 AVC/H.264 High Profile / Level 4.1
        "1.2.840.10008.1.2.4.103",  # MPEG-4 AVC/H.264 BD-compatible High Profile
        "1.2.840.10008.1.2.4.104",  # MPEG-4 AVC/H.264 High Profile For 2D Video
        "1.2.840.10008.1.2.4.105",  # MPEG-4 AVC/H.264 High Profile For 3D Video
        "1.2.840.10008.1.2.4.106",  # MPEG-4 AVC/H.264 Stereo High Profile
        "1.2.840.10008.1.2.4.107",  # HEVC/H.265 Main Profile / Level 5.1
        "1.2.840.10008.1.2.4.108",  # HEVC/H.265 Main 10 Profile / Level 5.1
        "1.2.840.10008.1.2.5",  # RLE Lossless
    }
)
