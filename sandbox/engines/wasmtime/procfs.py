"""The worker process's memory, from /proc: a run's peak RSS (Linux; 0 elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["peak_rss", "reset_peak_rss"]


def _proc_status() -> Iterator[tuple[str, int]]:
    with open("/proc/self/status", "rb") as handle:
        for line in handle:
            if line.startswith((b"VmHWM", b"VmRSS")):
                name, value = line.split(b":", 1)
                yield name.decode(), int(value.split()[0]) * 1024


def reset_peak_rss() -> int:
    """Reset the process's peak RSS to its current RSS (Linux clear_refs); return the RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return dict(_proc_status()).get("VmRSS", 0)
    except OSError:
        return 0


def peak_rss() -> int:
    try:
        return dict(_proc_status()).get("VmHWM", 0)
    except OSError:
        return 0
