"""The disk watch (sandbox/engines/wasmtime/diskwatch.py): how fast a guest writes, how far
past its quota a turn gets before it is stopped, and what the watch costs a turn that
writes nothing.

In-process, with the worker's own runtime (StackRuntime) and the built snapshot:

1. write rate: a session without a quota writes 512 MiB into /work (1 MiB writes to one
   file, 64 KiB appends, 4 KiB files); MiB/s from the turn's wall time;
2. overshoot: sessions with a quota write in a loop until stopped; bytes in the directory
   past the quota, and the turn's wall time;
3. cost: a turn that computes for about a second (and one that sleeps), with and without
   the watch, over a directory of 3 and of 10,000 files: the turn's CPU and wall time,
   the watch's counts and their total length.

    .venv/bin/python bench/disk_watch.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox import Job, Limits  # noqa: E402
from sandbox.engines.stack import locate  # noqa: E402
from sandbox.engines.stack.host import StackRuntime  # noqa: E402
from sandbox.engines.wasmtime.host import _CollectingSink  # noqa: E402

MIB = 1024 * 1024
LONG = Limits(cpu_ms=60_000, wall_ms=60_000, memory_mb=256)
WRITERS = {
    "4 KiB files": (
        "chunk = b'x' * 4096\nfor i in range({n} * 16):\n"
        "    with open(f'f{{i}}.bin', 'wb') as f:\n        f.write(chunk)\n"
    ),
    "1 MiB writes, one file": (
        "chunk = b'x' * (1024 * 1024)\nwith open('big.bin', 'wb') as f:\n"
        "    for _ in range({n}):\n        f.write(chunk)\n"
    ),
    "64 KiB appends": (
        "chunk = b'x' * 65536\nfor i in range({n} * 16):\n"
        "    with open(f'a{{i % 50}}.bin', 'ab') as f:\n        f.write(chunk)\n"
    ),
    "quota/4096-byte files": (
        "chunk = b'x' * ({n} * 1024 * 1024 // 40960)\nfor i in range(100_000):\n"
        "    with open(f'f{{i}}.bin', 'wb') as f:\n        f.write(chunk)\n"
    ),
    "9,990 empty files, then 1 MiB writes": (
        "for i in range(9_990):\n    open(f'e{{i:05}}', 'w').close()\n"
        "chunk = b'x' * (1024 * 1024)\nwith open('big.bin', 'wb') as f:\n"
        "    for _ in range({n}):\n        f.write(chunk)\n"
    ),
}


def on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def turn(runtime: StackRuntime, session: str, code: str) -> tuple[float, float, str]:
    report, _ = runtime.run_turn(session, Job(code=code, limits=LONG), _CollectingSink())
    runtime.prepare()
    return report.usage.wall_ms, report.usage.cpu_ms, report.status.value


def write_rates(artifacts, scratch: Path) -> None:  # type: ignore[no-untyped-def]
    print("1. write rate, no quota (512 MiB; 4 KiB files: 32 MiB)")
    runtime = StackRuntime(artifacts, scratch / "rate-worker")
    try:
        for n, (name, code) in enumerate(list(WRITERS.items())[:3]):
            rates = []
            for attempt in range(3):
                session = f"r{n}-{attempt}"
                runtime.open_session(session, scratch / session, 256)
                runtime.prepare()
                wall_ms, _, status = turn(runtime, session, code.format(n=512))
                rates.append(on_disk(scratch / session) / MIB / (wall_ms / 1000))
                runtime.close_session(session)
                shutil.rmtree(scratch / session)
                assert status == "ok", status
            print(f"   {name:24} {max(rates):7.0f} MiB/s (best of 3; {min(rates):.0f} worst)")
    finally:
        runtime.close()


def overshoots(artifacts, scratch: Path, quota_mb: int, tries: int = 10) -> None:  # type: ignore[no-untyped-def]
    print(f"2. overshoot past a {quota_mb} MiB quota, {tries} turns each")
    runtime = StackRuntime(artifacts, scratch / f"q{quota_mb}", session_disk_bytes=quota_mb * MIB)
    try:
        for n, (name, code) in enumerate(list(WRITERS.items())[1:]):
            over, walls = [], []
            for attempt in range(tries):
                session = f"q{quota_mb}-{n}-{attempt}"
                runtime.open_session(session, scratch / session, 256)
                runtime.prepare()
                wall_ms, _, status = turn(runtime, session, code.format(n=10 * quota_mb))
                assert status == "error", status
                over.append((on_disk(scratch / session) - quota_mb * MIB) / MIB)
                walls.append(wall_ms)
                runtime.close_session(session)
                shutil.rmtree(scratch / session)
            print(
                f"   {name:24} past it: median {statistics.median(over):6.2f} MiB, "
                f"max {max(over):6.2f} MiB; turn {statistics.median(walls):5.0f} ms"
            )
    finally:
        runtime.close()


def costs(artifacts, scratch: Path) -> None:  # type: ignore[no-untyped-def]
    print("3. cost on a turn that writes nothing (median of 5)")
    compute = "s = 0\nfor i in range(12_000_000):\n    s += i\n"
    sleep = "import time\ntime.sleep(1)\n"
    for files in (3, 9_990):
        for watched in (False, True):
            quota = 512 * MIB if watched else None
            tag = f"{files}-{watched}"
            runtime = StackRuntime(artifacts, scratch / f"c{tag}", session_disk_bytes=quota)
            try:
                runtime.open_session(tag, scratch / tag, 256)
                runtime.prepare()
                for i in range(files):
                    (scratch / tag / f"f{i:05}").write_bytes(b"x" * 100)
                for name, code in (("compute", compute), ("sleep 1 s", sleep)):
                    samples = []
                    walks, walk_s = runtime._disk_watch.walks, runtime._disk_watch.walk_s
                    started = time.process_time()
                    for _ in range(5):
                        samples.append(turn(runtime, tag, code))
                    process_cpu = (time.process_time() - started) / 5 * 1000
                    walks = (runtime._disk_watch.walks - walks) / 5
                    walk_ms = (runtime._disk_watch.walk_s - walk_s) / 5 * 1000
                    wall = statistics.median(s[0] for s in samples)
                    cpu = statistics.median(s[1] for s in samples)
                    print(
                        f"   {files:5} files, {'watched' if watched else 'no watch':8} "
                        f"{name:9}: turn wall {wall:6.0f} ms, guest cpu {cpu:6.0f} ms, "
                        f"process cpu {process_cpu:6.0f} ms; {walks:4.0f} counts, "
                        f"{walk_ms:5.1f} ms counting"
                    )
            finally:
                runtime.close()


def main() -> None:
    artifacts = locate(ROOT / ".artifacts")
    with tempfile.TemporaryDirectory(prefix="sandlot-diskwatch-") as tmp:
        scratch = Path(tmp)
        write_rates(artifacts, scratch)
        for quota_mb in (16, 256):
            overshoots(artifacts, scratch, quota_mb)
        costs(artifacts, scratch)
    sys.stdout.flush()
    # As the worker does: wasmtime's runtime thread panics at teardown with a trapped
    # store still about.
    os._exit(0)


if __name__ == "__main__":
    main()
