"""A download in flight: it holds one of the process's download slots from the moment it
is accepted until its body has been sent or the client has gone away
(:class:`StreamedDownload`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

import aiohttp
import httpx
import structlog
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from hds_dlx.clients.bulk import UpstreamBody

__all__ = ["DownloadSlots", "StreamedDownload"]

log = structlog.get_logger("hds.dlx.streaming")


class DownloadSlots:
    """A non-blocking counting semaphore: a download either gets a slot now or a 503."""

    def __init__(self, limit: int, *, on_change: Callable[[int], None] | None = None) -> None:
        if limit < 1:
            raise ValueError("at least one download slot is needed")
        self.limit = limit
        self.in_use = 0
        self._on_change = on_change

    def try_acquire(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        self._changed()
        return True

    def release(self) -> None:
        if self.in_use <= 0:
            raise RuntimeError("download slot released twice")
        self.in_use -= 1
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.in_use)


class StreamedDownload(StreamingResponse):
    """Sends an upstream body as it arrives, then closes the upstream and releases the
    download slot — also when the client disconnects half-way (Starlette cancels the
    sending task without closing the body iterator, so the cleanup lives here)."""

    def __init__(
        self,
        upstream: UpstreamBody,
        *,
        status_code: int,
        headers: Mapping[str, str],
        media_type: str,
        release: Callable[[], None],
    ) -> None:
        self._upstream = upstream
        self._release = release
        self._closed = False
        self._complete = False
        self._chunks = self._relay()
        super().__init__(
            self._chunks, status_code=status_code, headers=headers, media_type=media_type
        )

    async def _relay(self) -> AsyncGenerator[bytes, None]:
        chunks = self._upstream.iter_bytes()
        try:
            async for chunk in chunks:
                yield chunk
            self._complete = True
        finally:
            await _close_quietly(chunks.aclose)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            pass  # logged below like any other download that did not finish
        except (OSError, aiohttp.ClientError, httpx.HTTPError) as exc:
            # Storage failed half-way: too late for an error status. Returning without the
            # end of the body makes uvicorn close the connection, which tells the client
            # that the download is incomplete.
            log.warning(
                "upstream_failed_mid_download", status=self.status_code, error=type(exc).__name__
            )
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the upstream and release the slot (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if not self._complete:
            log.info("download_not_completed", status=self.status_code)
        try:
            await _close_quietly(self._chunks.aclose)
            await _close_quietly(self._upstream.aclose)
        finally:
            self._release()


async def _close_quietly(close: Callable[[], Awaitable[None]]) -> None:
    try:
        await close()
    except Exception as exc:  # closing a broken upstream must not hide the real outcome
        log.warning("upstream_close_failed", error=f"{type(exc).__name__}: {exc}")
