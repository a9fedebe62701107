"""Directories the services create for their state: readable by their user only."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PRIVATE_DIRECTORY_MODE", "private_directory"]

PRIVATE_DIRECTORY_MODE = 0o700


def private_directory(path: Path) -> None:
    """Create ``path`` and every missing parent with mode 0700 (``Path.mkdir`` gives
    the parents it creates the umask's default, usually 0755). Existing directories
    are left as they are."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        except FileExistsError:
            continue
        # mkdir's mode is filtered by the umask; 0700 is what we mean.
        directory.chmod(PRIVATE_DIRECTORY_MODE)
