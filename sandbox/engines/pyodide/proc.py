"""The Deno host as ``/proc`` shows it: its Web Worker threads, their CPU time, its memory.

Deno names the thread of each Web Worker ``worker-<n>``, numbered in creation
order across the whole process. The host creates every worker we know of and
tells the driver how many it made; a worker thread numbered above that count
is one that guest code started (``node:worker_threads`` can't be taken away
from JavaScript), and :func:`foreign_workers` finds it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["foreign_workers", "rss_bytes", "task_count", "thread_cpu_ms", "worker_threads"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PREFIX = "worker-"


def worker_threads(pid: int) -> dict[int, Path]:
    """Worker number -> the thread's ``/proc`` directory, for every live worker thread."""
    found: dict[int, Path] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue  # the thread ended while we looked
        number = name.removeprefix(_PREFIX)
        if name.startswith(_PREFIX) and number.isdigit():
            found[int(number)] = task
    return found


def foreign_workers(threads: dict[int, Path], created: int) -> list[int]:
    """Worker numbers the host did not create (it created 1..``created``)."""
    return sorted(number for number in threads if number > created)


def task_count(pid: int) -> int:
    """How many threads the process has now (0 if it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def thread_cpu_ms(task: Path | None) -> float:
    """User + system CPU time of one thread, in ms (0 if it is gone)."""
    if task is None:
        return 0.0
    try:
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    return (int(fields[11]) + int(fields[12])) * 1000 / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of the process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
