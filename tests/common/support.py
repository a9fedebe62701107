"""What the tests of hds_common share."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository's root, whichever folder it is cloned into."""
