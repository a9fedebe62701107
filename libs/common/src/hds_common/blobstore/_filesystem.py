"""Blob store on a local (or network-mounted POSIX) filesystem."""

from __future__ import annotations

import asyncio
import builtins  # `list` is shadowed by the BlobStore.list method in class scope
import contextlib
import functools
import logging
import os
import stat as stat_mod
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from hds_common.blobstore._base import (
    CHUNK_SIZE,
    RESERVED_TOP_LEVEL,
    BlobInfo,
    BlobStore,
    check_range,
    validate_key,
    validate_prefix,
)
from hds_common.blobstore._errors import BlobNotFound, BlobStoreError
from hds_common.files import private_directory

__all__ = ["FilesystemBlobStore"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Incoming chunks are batched to about this size before a write is handed to a
#: worker thread: one thread hop per tiny chunk would dominate the cost.
_WRITE_BATCH = CHUNK_SIZE

#: Reads likewise: one worker-thread call reads up to this many bytes (as
#: ``CHUNK_SIZE`` chunks), and the first call also opens the file, so a typical
#: DICOM object (a few MiB) costs a single thread hop instead of one per chunk.
_READ_BATCH = 4 * CHUNK_SIZE

_TMP_PREFIX = "put-"
_TMP_SUFFIX = ".part"

# Errors meaning "there is no regular file at this path" (missing file, a parent
# that is a file, or the key naming a directory of other keys).
_NOT_FOUND_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


async def _run_sync(func: Callable[[], _T], on_abandon: Callable[[_T], object] | None = None) -> _T:
    """Run blocking ``func`` in a worker thread, never abandoning it on cancellation.

    A thread cannot be interrupted, so plain ``asyncio.to_thread`` would let a
    cancelled caller run its cleanup (closing the descriptor, unlinking the temp
    file) while the thread is still writing to that descriptor - and a closed fd
    number can be reused by an unrelated open. We therefore wait for the thread to
    finish before letting ``CancelledError`` propagate. If the thread produced a
    resource nobody will receive (an open fd), ``on_abandon`` releases it.

    ``run_in_executor`` rather than ``asyncio.to_thread``: the functions here are plain
    OS calls that need no context variables, and skipping the extra task per call
    matters on the read path, which makes one call per object.
    """
    fut = asyncio.get_running_loop().run_in_executor(None, func)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        while not fut.done():
            with contextlib.suppress(BaseException):
                await asyncio.shield(fut)
        if not fut.cancelled():
            if fut.exception() is None and on_abandon is not None:
                on_abandon(fut.result())
        raise


@dataclass
class _TempFile:
    fd: int
    path: str
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    is_dir: bool
    size: int

    @property
    def sort_key(self) -> str:
        # Every key below directory "d" starts with "d/", and no sibling's key has
        # "d/" as a prefix, so sorting siblings by "d/" (not "d") makes a depth-first
        # walk emit keys in global lexicographic order ("a-b" < "a/x" < "a0").
        return self.name + "/" if self.is_dir else self.name


def _write_all(fd: int, buffers: list[bytes]) -> None:
    for buf in buffers:
        view = memoryview(buf)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def _read_batch(fd: int, pos: int, stop: int) -> list[bytes]:
    """Up to ``_READ_BATCH`` bytes from ``pos`` as ``CHUNK_SIZE`` chunks; fewer (or none)
    only at end of file."""
    chunks: list[bytes] = []
    end = min(stop, pos + _READ_BATCH)
    while pos < end:
        data = os.pread(fd, min(CHUNK_SIZE, end - pos), pos)
        if not data:
            break
        chunks.append(data)
        pos += len(data)
    return chunks


def _fsync_dir(path: Path) -> None:
    # A rename is only durable once the directory holding the new entry is synced.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobStore(BlobStore):
    """Stores each blob as a regular file ``root/<key>``.

    Writes go to ``root/.tmp/`` (same filesystem, so ``os.replace`` is an atomic
    rename), are fsynced, renamed into place, and the target directory is fsynced.
    Blocking I/O runs in worker threads.

    Limitation inherent to a directory tree: a key cannot be both a blob and a
    "directory" of other keys (``a`` and ``a/b``); such a put raises
    :class:`BlobStoreError`. Empty directories left by deletes are not pruned
    (pruning would race with concurrent puts into the same directory).

    ``stale_tmp_age``: :meth:`open` removes temp files older than this many
    seconds. In-flight writes touch their temp file on every batch, so other
    processes sharing the root (several workers) do not lose running uploads.
    """

    def __init__(self, root: str | os.PathLike[str], *, stale_tmp_age: float = 3600.0) -> None:
        self._root = Path(root).absolute()
        self._tmp = self._root / RESERVED_TOP_LEVEL
        self._stale_tmp_age = stale_tmp_age

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self._root)!r})"

    @property
    def root(self) -> Path:
        return self._root

    @property
    def tmp_dir(self) -> Path:
        """Directory holding in-flight writes (exposed for tests and monitoring)."""
        return self._tmp

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        try:
            removed = await _run_sync(self._open_sync)
        except OSError as exc:
            raise BlobStoreError(f"cannot open blob store at {self._root}: {exc}") from exc
        if removed:
            _log.info("blobstore: removed %d stale temp file(s) in %s", removed, self._tmp)

    def _open_sync(self) -> int:
        private_directory(self._tmp)
        cutoff = time.time() - self._stale_tmp_age
        removed = 0
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                if not entry.name.startswith(_TMP_PREFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
        return removed

    async def close(self) -> None:
        # Nothing is held between calls: every operation opens and closes its files.
        return None

    # -- helpers -----------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self._root / validate_key(key)

    def _create_temp(self) -> _TempFile:
        # mkdir here too so that a store used without open() (or whose .tmp was
        # removed by an operator) still works.
        private_directory(self._tmp)
        fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=self._tmp)
        return _TempFile(fd, name)

    def _commit(self, tmp: _TempFile, final: Path) -> None:
        os.fsync(tmp.fd)
        tmp.close()
        # Directories that do not exist yet: their own entries must be synced too.
        missing: list[Path] = []
        parent = final.parent
        while parent != self._root and not parent.exists():
            missing.append(parent)
            parent = parent.parent
        private_directory(final.parent)
        os.replace(tmp.path, final)
        _fsync_dir(final.parent)
        for directory in missing:
            _fsync_dir(directory.parent)

    @staticmethod
    def _discard(tmp: _TempFile) -> None:
        tmp.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp.path)

    # -- BlobStore ---------------------------------------------------------------

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        final = self._path(key)
        try:
            tmp = await _run_sync(self._create_temp, on_abandon=self._discard)
        except OSError as exc:
            raise BlobStoreError(f"cannot create temp file in {self._tmp}: {exc}") from exc
        committed = False
        try:
            total = 0
            batch: list[bytes] = []
            batch_len = 0
            async for chunk in chunks:
                if not chunk:
                    continue
                batch.append(chunk)
                batch_len += len(chunk)
                if batch_len >= _WRITE_BATCH:
                    await self._write(tmp, batch, key)
                    total += batch_len
                    batch, batch_len = [], 0
            if batch:
                await self._write(tmp, batch, key)
                total += batch_len
                batch = []
            try:
                await _run_sync(functools.partial(self._commit, tmp, final))
            except OSError as exc:
                raise BlobStoreError(f"cannot store blob {key!r}: {exc}") from exc
            committed = True
            return total
        finally:
            if not committed:
                # Synchronous on purpose: it must also run when the task is being
                # cancelled, and close+unlink are cheap metadata operations.
                self._discard(tmp)

    async def _write(self, tmp: _TempFile, batch: list[bytes], key: str) -> None:
        try:
            await _run_sync(functools.partial(_write_all, tmp.fd, batch))
        except OSError as exc:
            raise BlobStoreError(f"cannot write blob {key!r}: {exc}") from exc

    async def get(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        path = self._path(key)
        check_range(start, end)
        try:
            fd, stop, batch = await _run_sync(
                functools.partial(self._open_for_read, path, start, end),
                on_abandon=lambda opened: os.close(opened[0]),
            )
        except _NOT_FOUND_ERRORS as exc:
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise BlobStoreError(f"cannot open blob {key!r}: {exc}") from exc
        try:
            # The fd pins the inode: a concurrent overwrite (rename) or delete does
            # not affect this reader, which keeps seeing one consistent version.
            pos = min(start, stop)
            while True:
                batch.reverse()
                while batch:
                    # Popped, not iterated: a chunk the consumer is done with is not
                    # kept alive by the batch while the next batch is being read.
                    data = batch.pop()
                    pos += len(data)
                    yield data
                if pos >= stop:
                    break
                try:
                    batch = await _run_sync(functools.partial(_read_batch, fd, pos, stop))
                except OSError as exc:
                    raise BlobStoreError(f"cannot read blob {key!r}: {exc}") from exc
                if not batch:  # cannot happen for an immutable file; avoid spinning
                    raise BlobStoreError(f"blob {key!r} shrank while being read")
        finally:
            os.close(fd)

    async def get_bytes(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        # One worker-thread call (open, read, close) instead of a stream of chunks that
        # would then be joined: the common case of reading a whole small object.
        path = self._path(key)
        check_range(start, end)
        try:
            return await _run_sync(functools.partial(self._read_range, path, key, start, end))
        except _NOT_FOUND_ERRORS as exc:
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise BlobStoreError(f"cannot read blob {key!r}: {exc}") from exc

    @staticmethod
    def _read_range(path: Path, key: str, start: int, end: int | None) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise IsADirectoryError(str(path))
            stop = st.st_size if end is None else min(end, st.st_size)
            pos = min(start, stop)
            parts: list[bytes] = []
            while pos < stop:
                data = os.pread(fd, stop - pos, pos)
                if not data:
                    raise BlobStoreError(f"blob {key!r} shrank while being read")
                parts.append(data)
                pos += len(data)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            os.close(fd)

    @staticmethod
    def _open_for_read(path: Path, start: int, end: int | None) -> tuple[int, int, list[bytes]]:
        """Open ``path`` and read the first batch of ``[start, end)`` in the same thread
        call; returns the fd, the clamped end and that batch."""
        fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise IsADirectoryError(str(path))
            stop = st.st_size if end is None else min(end, st.st_size)
            pos = min(start, stop)
            return fd, stop, _read_batch(fd, pos, stop)
        except BaseException:
            os.close(fd)
            raise

    async def stat(self, key: str) -> BlobInfo:
        path = self._path(key)
        try:
            st = await _run_sync(functools.partial(os.stat, path))
        except _NOT_FOUND_ERRORS as exc:
            raise BlobNotFound(key) from exc
        except OSError as exc:
            raise BlobStoreError(f"cannot stat blob {key!r}: {exc}") from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise BlobNotFound(key)
        return BlobInfo(key, st.st_size)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await _run_sync(functools.partial(os.unlink, path))
        except _NOT_FOUND_ERRORS:
            return
        except OSError as exc:
            raise BlobStoreError(f"cannot delete blob {key!r}: {exc}") from exc

    async def list(self, prefix: str = "") -> AsyncGenerator[BlobInfo, None]:
        validate_prefix(prefix)
        # Only the directory named by the prefix's complete segments can contain
        # matches; start there instead of walking the whole tree.
        start_rel = prefix.rpartition("/")[0]
        stack: list[tuple[str, Iterator[_Entry]]] = [(start_rel, iter(await self._scan(start_rel)))]
        while stack:
            rel, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            key = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir:
                subtree = key + "/"
                if subtree.startswith(prefix) or prefix.startswith(subtree):
                    stack.append((key, iter(await self._scan(key))))
            elif key.startswith(prefix):
                yield BlobInfo(key, entry.size)

    async def _scan(self, rel: str) -> builtins.list[_Entry]:
        try:
            return await _run_sync(functools.partial(self._scan_sync, rel))
        except _NOT_FOUND_ERRORS:
            return []  # prefix names no directory, or it vanished mid-walk
        except OSError as exc:
            raise BlobStoreError(f"cannot list {rel!r}: {exc}") from exc

    def _scan_sync(self, rel: str) -> builtins.list[_Entry]:
        found: list[_Entry] = []
        with os.scandir(self._root / rel if rel else self._root) as it:
            for entry in it:
                name = entry.name
                if not rel and name == RESERVED_TOP_LEVEL:
                    continue
                try:
                    # Skip names no key could produce (foreign files); such entries
                    # would not be retrievable through get() anyway.
                    validate_key(f"{rel}/{name}" if rel else name)
                    if entry.is_dir(follow_symlinks=False):
                        found.append(_Entry(name, True, 0))
                    elif entry.is_file(follow_symlinks=False):
                        found.append(_Entry(name, False, entry.stat(follow_symlinks=False).st_size))
                except ValueError:
                    continue
                except FileNotFoundError:
                    continue  # deleted between scandir and stat
        found.sort(key=lambda e: e.sort_key)
        return found

    async def ping(self) -> None:
        try:
            ok = await _run_sync(self._ping_sync)
        except OSError as exc:
            raise BlobStoreError(f"blob store at {self._root} unavailable: {exc}") from exc
        if not ok:
            raise BlobStoreError(f"blob store at {self._root} is not a writable directory")

    def _ping_sync(self) -> bool:
        return self._root.is_dir() and os.access(self._root, os.W_OK | os.X_OK)
