"""The worker process's memory, from /proc: a run's peak RSS (Linux; 0 elsewhere)."""

from __future__ import annotations

import os

__all__ = ["ProcMemory"]


class ProcMemory:
    """The process's resident set and its peak, through /proc descriptors kept open.

    Each reading is one ``pread``: opening ``/proc/self/status`` and reading it line by
    line cost about 0.2 ms, twice a run. The current RSS comes from ``statm`` (a few
    microseconds; ``status`` takes ~50). ``close()`` is idempotent.
    """

    def __init__(self) -> None:
        self._status = _open("/proc/self/status", os.O_RDONLY)
        self._statm = _open("/proc/self/statm", os.O_RDONLY)
        self._clear_refs = _open("/proc/self/clear_refs", os.O_WRONLY)
        self._page_bytes = os.sysconf("SC_PAGE_SIZE")

    def reset_peak(self) -> int:
        """Reset the peak RSS to the current RSS (clear_refs); return the RSS, bytes."""
        if self._clear_refs < 0:
            return 0
        try:
            os.write(self._clear_refs, b"5")
            # size resident shared text lib data dt, in pages
            resident = os.pread(self._statm, 512, 0).split()[1]
        except (OSError, IndexError):
            return 0
        return int(resident) * self._page_bytes

    def peak(self) -> int:
        """The peak RSS since the last reset, bytes."""
        return self._field(b"\nVmHWM:")

    def _field(self, name: bytes) -> int:
        if self._status < 0:
            return 0
        try:
            status = os.pread(self._status, 16384, 0)
        except OSError:
            return 0
        start = status.find(name)
        if start < 0:
            return 0
        value = status[start + len(name) : status.find(b"\n", start + 1)].split()
        return int(value[0]) * 1024 if value and value[0].isdigit() else 0

    def close(self) -> None:
        for fd in (self._status, self._statm, self._clear_refs):
            if fd >= 0:
                os.close(fd)
        self._status = self._statm = self._clear_refs = -1


def _open(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError:
        return -1
