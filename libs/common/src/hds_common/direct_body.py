"""Long response bodies read straight from an aiohttp connection's socket.

The gateway and the DLX service relay long bodies (archives, objects) that they received
with aiohttp's client. aiohttp copies every byte twice on its way (out of the event loop's
read buffer, then out of the parser's view), in pieces of at most 256 kB. Once the headers
are in, :func:`take_over_body` takes the rest of a body with a Content-Length from
aiohttp and reads it from the socket directly, each read straight into the bytes object
that goes on to the client: that saves both copies and most of the per-piece work, about
a third of a relaying process's CPU per byte (bench/bench_gateway.py). The connection is
closed afterwards instead of going back to aiohttp's pool, since aiohttp's parser never
saw the end of the message.

Waiting for data only waits (the socket becoming readable); the read that follows is
the caller's, so a timeout never swallows bytes already received. Asking the kernel to
wake the reader only once a batch had arrived (``SO_RCVLOWAT``) was measured and saved
nothing (bench/bench_gateway.py): the pieces are already large while the relay is the
slower side, and the waits are cheap while the upstream is.

This relies on how aiohttp (pinned in the lock) buffers data while its reading is paused;
the gateway's tests (tests/gateway/test_gateway_long_downloads.py) cover the takeover on
asyncio and on uvloop.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncGenerator

import aiohttp

__all__ = ["DIRECT_READ_MIN_BYTES", "DirectBody", "take_over_body"]

# Bodies at least this long are read from the socket directly; shorter ones keep aiohttp's
# pooled connection, and a new connection would cost more than the direct reads save.
DIRECT_READ_MIN_BYTES = 4 * 1024 * 1024
# No body, whatever the headers say.
_BODYLESS_STATUS = frozenset({204, 304})


def take_over_body(
    response: aiohttp.ClientResponse, *, read_size: int, read_timeout: float
) -> DirectBody | None:
    """The rest of ``response``'s body (at least ``DIRECT_READ_MIN_BYTES`` with a
    Content-Length, over plain TCP), read from the socket with aiohttp out of the way;
    None where aiohttp must keep reading it.

    The caller makes sure the request is no longer being written (an upload in progress)
    and that a body is expected at all (not HEAD). Runs without awaiting anything, so
    aiohttp cannot read on while its connection is taken over. After the takeover, the
    caller closes both the :class:`DirectBody` and the aiohttp response."""
    length = response.content_length
    if (
        length is None
        or length < DIRECT_READ_MIN_BYTES
        or response.status < 200
        or response.status in _BODYLESS_STATUS
        or "Transfer-Encoding" in response.headers
    ):
        return None
    connection = response.connection
    if connection is None or connection.protocol is None:
        return None
    transport = connection.transport
    if transport is None or transport.is_closing() or transport.get_extra_info("sslcontext"):
        return None
    raw_socket = transport.get_extra_info("socket")
    if raw_socket is None or raw_socket.fileno() < 0:
        return None
    # What aiohttp has read already. Emptying its buffer makes it parse any bytes it held
    # back while its buffer was full, so read until nothing is left.
    buffered: list[bytes] = []
    try:
        while piece := response.content.read_nowait():
            buffered.append(piece)
    except (aiohttp.ClientError, OSError) as exc:
        # The upstream failed already: what arrived before, then the failure.
        return DirectBody(
            buffered, None, remaining=0, read_size=read_size, read_timeout=read_timeout, failure=exc
        )
    remaining = length - sum(len(piece) for piece in buffered)
    duplicate = None
    if remaining > 0:
        # aiohttp reads no more from this connection, and its read timeout stops.
        connection.protocol.pause_reading()
        duplicate = socket.socket(fileno=os.dup(raw_socket.fileno()))
        duplicate.setblocking(False)
    return DirectBody(
        buffered, duplicate, remaining=remaining, read_size=read_size, read_timeout=read_timeout
    )


class DirectBody:
    """The rest of a response body read from (a duplicate of) the upstream's socket.

    A duplicate, so the socket stays valid for as long as this reads it, whatever aiohttp
    does with its own descriptor. Each read asks for up to ``read_size`` bytes: the kernel
    copies them straight into the bytes object that goes to the client. A body that ends
    early raises :class:`aiohttp.ClientPayloadError`; no data for ``read_timeout`` (as
    aiohttp's sock_read would) raises :class:`TimeoutError`."""

    def __init__(
        self,
        buffered: list[bytes],
        sock: socket.socket | None,
        *,
        remaining: int,
        read_size: int,
        read_timeout: float,
        failure: BaseException | None = None,
    ) -> None:
        self._buffered = buffered
        self._failure = failure
        self._sock = sock
        self._remaining = remaining
        self._read_size = read_size
        self._read_timeout = read_timeout

    async def pieces(self) -> AsyncGenerator[bytes, None]:
        for piece in self._buffered:
            yield piece
        self._buffered = []
        if self._failure is not None:
            raise self._failure
        sock = self._sock
        remaining = self._remaining
        while remaining > 0:
            assert sock is not None
            try:
                piece = sock.recv(min(self._read_size, remaining))
            except BlockingIOError:
                if not await _readable(sock, self._read_timeout):
                    raise TimeoutError(
                        f"the upstream sent nothing for {self._read_timeout} s"
                    ) from None
                continue
            if not piece:
                raise aiohttp.ClientPayloadError(
                    f"the upstream closed the connection {remaining} bytes short"
                )
            remaining -= len(piece)
            yield piece

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


async def _readable(sock: socket.socket, timeout: float) -> bool:
    """Whether ``sock`` became readable (data, end of stream or error) within ``timeout``."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        async with asyncio.timeout(timeout):
            await ready
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(sock.fileno())
