"""Frames between the pool and its worker processes: 4-byte big-endian length + JSON.

Blocking helpers for the worker side, asyncio helpers for the pool side.
A frame larger than ``MAX_FRAME_BYTES`` means a broken peer.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, BinaryIO

__all__ = ["MAX_FRAME_BYTES", "ProtocolError", "read_frame", "read_frame_async", "write_frame"]

MAX_FRAME_BYTES = 256 * 1024 * 1024
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer sent something that is not a frame."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


def write_frame(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write(encode(message))


def _read_exactly(inp: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = inp.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(inp: BinaryIO) -> dict[str, Any] | None:
    """The next message, or None at end of stream."""
    header = _read_exactly(inp, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {size} bytes is over the {MAX_FRAME_BYTES} limit")
    body = _read_exactly(inp, size)
    if body is None:
        return None
    return _decode(body)


async def read_frame_async(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        if size > MAX_FRAME_BYTES:
            raise ProtocolError(f"frame of {size} bytes is over the {MAX_FRAME_BYTES} limit")
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    return _decode(body)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message
