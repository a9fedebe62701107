"""Free loopback ports for the servers that tests and benchmarks start."""

from __future__ import annotations

import random
import socket

__all__ = ["free_port", "free_port_block"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel has just found free. It is released before the server binds it,
    so in rare cases another process takes it first (callers that start servers of their
    own retry, or use :func:`free_port_block`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_block(size: int = 5, host: str = "127.0.0.1") -> int:
    """A base port with ``size`` consecutive free ports after it.

    Chosen below the kernel's ephemeral range (32768+), where outgoing connections take
    their local ports, so no client connection can grab a port before its service binds."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000 - size)
        sockets: list[socket.socket] = []
        try:
            for offset in range(size):
                candidate = socket.socket()
                sockets.append(candidate)
                candidate.bind((host, base + offset))
            return base
        except OSError:
            continue
        finally:
            for candidate in sockets:
                candidate.close()
    raise RuntimeError("no block of free ports")
