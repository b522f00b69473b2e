"""A run's stdout and stderr, kept in the guest's memory until the host reads them.

Each write of output through WASI (``fd_write``) costs the host ~40 us (wasmtime's WASI
hands it to a thread of its own): line by line, 10,000 ``print`` calls took ~430 ms of a
run. Here the bytes go into one buffer in the guest's linear memory, which the host reads
when the turn is over however it ended (returned, stopped at a limit, crashed:
``sandbox/engines/stack/host.py``), so a run's output costs no WASI call until the buffer
fills, and nothing written is lost when the run is stopped mid-way.

``live`` (a run whose output a client follows as it comes, over SSE): each line is written
through WASI at once, as a line-buffered stream would, so the client sees it then.

The buffer is a ``bytearray`` made once, while the snapshot is made, so it lies at the same
address in every instance; a memoryview pins it (it can't be resized or moved). Its layout,
little-endian::

    MAGIC (16 bytes) | used u32 | last u32 | records (CAPACITY bytes)
    record = fd u8 | length u32 | bytes

``used`` counts the records' bytes; ``last`` is the offset of the last record, or ``NONE``.
A write to the same fd as the last record extends it, so the last record's length field
is not kept up to date: its bytes run to ``used``. The host reads the records and sets
both back.
"""

from __future__ import annotations

import io
import os
import struct

MAGIC = b"sandlot-outbox\x00\x01"
CAPACITY = 64 * 1024
HEADER = len(MAGIC) + 8
NONE = 0xFFFFFFFF
_HEAD = struct.Struct("<II")
_USED = _LENGTH = struct.Struct("<I")


class Outbox:
    def __init__(self) -> None:
        self._buf = bytearray(HEADER + CAPACITY)
        self._buf[: len(MAGIC)] = MAGIC
        self._pin = memoryview(self._buf)
        self.live = True
        self.begin()

    def begin(self) -> None:
        """Empty (at a turn's start: the host read the last turn's records)."""
        # Kept here as well as in the header: the guest's own state, whatever the code
        # writes into the buffer; the header is what the host reads.
        self._used, self._last, self._last_fd = 0, NONE, -1
        _HEAD.pack_into(self._buf, len(MAGIC), 0, NONE)

    def address(self) -> int:
        """Where the buffer's object is (the host finds its bytes from there)."""
        return id(self._buf)

    def write(self, fd: int, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        used = self._used
        if fd == self._last_fd and used + size <= CAPACITY:
            # The last record grows: only the header's count changes (the last record's
            # length is what follows it, up to ``used``).
            at = HEADER + used
            self._buf[at : at + size] = data
            self._used = used = used + size
            _USED.pack_into(self._buf, len(MAGIC), used)
            return
        if not size:
            return
        if used + 5 + size > CAPACITY:
            self.flush()
            used = 0
            if 5 + size > CAPACITY:
                _write_all(fd, bytes(data))
                return
        buf = self._buf
        if self._last != NONE:
            _LENGTH.pack_into(buf, HEADER + self._last + 1, used - self._last - 5)
        at = HEADER + used
        buf[at] = fd
        buf[at + 5 : at + 5 + size] = data
        self._used, self._last, self._last_fd = used + 5 + size, used, fd
        _HEAD.pack_into(buf, len(MAGIC), self._used, used)

    def flush(self) -> None:
        """Write what is held through WASI, in order."""
        used, last = self._used, self._last
        if not used:
            return
        records = bytes(self._pin[HEADER : HEADER + used])
        # Emptied first: if the run is stopped mid-way, the host can't write these twice.
        self.begin()
        at = 0
        while at < used:
            fd = records[at]
            if at == last:
                length = used - at - 5
            else:
                (length,) = _LENGTH.unpack_from(records, at + 1)
            _write_all(fd, records[at + 5 : at + 5 + length])
            at += 5 + length


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Raw(io.RawIOBase):
    """fd 1 or 2 through the outbox: ``flush`` writes through only when ``live``."""

    def __init__(self, outbox: Outbox, fd: int) -> None:
        self._outbox = outbox
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if type(data) is not bytes:  # a memoryview's len() counts items, not bytes
            data = bytes(data)
        self._outbox.write(self._fd, data)
        return len(data)

    def flush(self) -> None:
        if self._outbox.live:
            self._outbox.flush()


OUTBOX = Outbox()
# Ours, whatever the code later puts in sys.stdout and sys.stderr.
_STREAMS: list[io.TextIOWrapper] = []


def stream(fd: int) -> io.TextIOWrapper:
    """Text over fd 1 or 2 through :data:`OUTBOX`, line-buffered while it is live."""
    text = io.TextIOWrapper(
        _Raw(OUTBOX, fd),  # type: ignore[arg-type]
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )
    _STREAMS.append(text)
    return text


def write_through() -> None:
    """Write what is held through WASI now, live or not: before an output the host counts
    against the same ``output_bytes`` (a display), so what was printed first is counted
    first and isn't the part lost when the display goes over."""
    OUTBOX.flush()


def begin(live: bool) -> None:
    """At a turn's start: whether its output is followed as it comes."""
    OUTBOX.begin()
    OUTBOX.live = live
    for text in _STREAMS:
        if not text.closed:
            text.reconfigure(line_buffering=live)
