"""Framing between the host and the sandboxed worker.

A message is an 8-byte length, a JSON header and raw binary blobs (image bytes) whose sizes
the header lists; file descriptors ride along with the first bytes (SCM_RIGHTS). JSON and
raw bytes, not pickle: the host never unpickles what untrusted code could have forged.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

_LEN = struct.Struct("!Q")


class WireError(ConnectionError):
    """The peer closed the connection or sent something that is not a valid message."""


class WireTimeout(TimeoutError):
    """No complete message arrived before the deadline."""


def send(sock: socket.socket, header: dict[str, Any], blobs: Sequence[bytes | memoryview] = (), fds: Sequence[int] = ()) -> None:
    header = dict(header, blobs=[len(b) for b in blobs])
    # surrogatepass: a str may hold lone surrogates (agent text can); they cross intact.
    body = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    first = _LEN.pack(len(body)) + body
    if fds:
        socket.send_fds(sock, [first], list(fds))
    else:
        sock.sendall(first)
    for blob in blobs:
        sock.sendall(blob)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        _set_timeout(sock, deadline)
        try:
            k = sock.recv_into(view[got:], n - got)
        except TimeoutError:
            raise WireTimeout() from None
        if k == 0:
            raise WireError("connection closed by peer")
        got += k
    return buf


def _set_timeout(sock: socket.socket, deadline: float | None) -> None:
    if deadline is None:
        sock.settimeout(None)
    else:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WireTimeout()
        sock.settimeout(left)


def recv(
    sock: socket.socket,
    timeout: float | None = None,
    max_header: int = 16 << 20,
    max_blobs: int = 1 << 31,
    max_fds: int = 0,
) -> tuple[dict[str, Any], list[bytearray], list[int]]:
    """Receive one message: (header, blobs, fds). Limits bound what a peer can make us hold."""
    deadline = None if timeout is None else time.monotonic() + timeout
    fds: list[int] = []
    if max_fds:
        _set_timeout(sock, deadline)
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _LEN.size, max_fds)
        except TimeoutError:
            raise WireTimeout() from None
        if not data:
            raise WireError("connection closed by peer")
        head = bytearray(data)
        if len(head) < _LEN.size:
            head += _recv_exact(sock, _LEN.size - len(head), deadline)
    else:
        head = _recv_exact(sock, _LEN.size, deadline)
    (length,) = _LEN.unpack(head)
    if length > max_header:
        raise WireError(f"message header of {length} bytes exceeds the limit of {max_header}")
    try:
        header = json.loads(_recv_exact(sock, length, deadline).decode("utf-8", "surrogatepass"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"malformed message header: {exc}") from None
    if not isinstance(header, dict):
        raise WireError("malformed message header: not an object")
    sizes = header.get("blobs", [])
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise WireError("malformed blob list")
    if sum(sizes) > max_blobs:
        raise WireError(f"message blobs of {sum(sizes)} bytes exceed the limit of {max_blobs}")
    blobs = [_recv_exact(sock, s, deadline) for s in sizes]
    return header, blobs, fds
