"""Content codings: the gate decodes response bodies itself, so the size cap counts what the
guest really receives.

A compressed response is a promise of more bytes than were sent (a 2 MB gzip body can be 2 GiB
of zeros). If the gate passed ``Content-Encoding`` through, whoever decoded it next (Deno's
``fetch`` in the Pyodide engine, outside the wasm heap) would do so unmetered. So the gate asks
for the codings it can meter (:data:`ACCEPT_ENCODING`), decodes them incrementally, never
producing more than :data:`PIECE_BYTES` at a time, and the caller counts decoded bytes against
its cap; any other coding is refused before the body is read.

Internal to :class:`~sandbox.egress.Gate`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

# What the gate asks servers for; the guest's own Accept-Encoding is dropped.
ACCEPT_ENCODING = "gzip, deflate"
# The most one decompress call may produce: decoding memory stays bounded whatever the ratio.
PIECE_BYTES = 64 * 1024

_GZIP = frozenset({"gzip", "x-gzip"})
_DEFLATE = "deflate"
_NO_CODING = frozenset({"", "identity"})


class _CodingError(Exception):
    """The body is not valid in the coding its headers named."""


def content_codings(values: Iterable[str]) -> tuple[str, ...]:
    """The codings named by Content-Encoding header values, in the order they were applied.

    Lowercased; ``identity`` and empty items are dropped.
    """
    return tuple(
        item
        for value in values
        for item in (part.strip().lower() for part in value.split(","))
        if item not in _NO_CODING
    )


def unsupported_coding(codings: Iterable[str]) -> str | None:
    """The first coding the gate cannot decode (and so cannot meter), or None."""
    for coding in codings:
        if coding not in _GZIP and coding != _DEFLATE:
            return coding
    return None


class _Stage:
    """Decodes one coding (gzip, possibly several members, or deflate)."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._gzip = coding in _GZIP
        self._obj: zlib._Decompress | None = (
            zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None
        )
        self._head = b""  # deflate: input held until the zlib header can be recognised
        self._fed = False
        self._done = False  # deflate: the stream ended; what follows is ignored

    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            self._fed = True
        if self._obj is None:
            # "deflate" is meant to be zlib-wrapped (RFC 9110), but servers also send raw
            # deflate; the first two bytes tell them apart.
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            cmf, flg = data[0], data[1]
            wrapped = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        yield from self._run(self._obj, data)

    def finish(self) -> Iterator[bytes]:
        """What is still pending once the input has ended; raises _CodingError if truncated."""
        if not self._fed:
            return  # an empty body (e.g. HEAD-like answers) is empty in every coding
        if self._obj is None:
            raise _CodingError(f"the {self.coding} body is truncated")
        yield from self._run(self._obj, b"")
        if not (self._obj.eof or self._done):
            raise _CodingError(f"the {self.coding} body is truncated")

    def _run(self, obj: zlib._Decompress, data: bytes) -> Iterator[bytes]:
        while not self._done:
            if obj.eof:
                rest = obj.unused_data + data
                if not rest:
                    return
                if not self._gzip:
                    self._done = True  # bytes after a deflate stream: not part of the body
                    return
                # Concatenated gzip members decode to the concatenation (RFC 1952).
                obj = self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                data = rest
            try:
                piece = obj.decompress(data, PIECE_BYTES)
            except zlib.error as exc:
                raise _CodingError(f"invalid {self.coding} body ({exc})") from None
            data = obj.unconsumed_tail
            if piece:
                yield piece
            elif not data:
                return  # all input consumed and nothing more pending


class BodyDecoder:
    """Decodes a body encoded with ``codings`` (in the order applied), chunk by chunk.

    :meth:`feed` and :meth:`finish` yield decoded pieces of at most :data:`PIECE_BYTES`;
    a caller that stops iterating (its cap is reached) stops the decoding there. Both raise
    ``_CodingError`` for bodies that are not valid in their coding. Every coding must be one
    :func:`unsupported_coding` accepts.
    """

    def __init__(self, codings: tuple[str, ...]) -> None:
        # The last coding applied is the first to undo.
        self._stages = [_Stage(coding) for coding in reversed(codings)]

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield from self._through(0, data)

    def finish(self) -> Iterator[bytes]:
        for index, stage in enumerate(self._stages):
            for piece in stage.finish():
                yield from self._through(index + 1, piece)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            yield data
            return
        for piece in self._stages[index].feed(data):
            yield from self._through(index + 1, piece)
