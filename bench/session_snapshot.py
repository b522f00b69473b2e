"""Experiment (issue 14's stretch): save a session to bytes and restore it into a new one.

Not a feature yet: this measures whether E2B-style pause/resume can work on the
data-stack guest, in-process, with the worker's own runtime (StackRuntime):

1. open session A, run turns that leave state behind (pandas, a DataFrame, a function, a
   seeded random generator);
2. save: A's linear memory, keeping only the 64 KiB pages that differ from a fresh
   instance of the same snapshot (every session starts as that image), zlib-compressed;
3. restore: open session B (a fresh instance), grow its memory to A's size and write the
   saved pages into it;
4. check B carries on where A stopped: the same globals, the same next random number.

Why this can work: between turns the guest is at rest (no frame on the wasm stack, the
shadow-stack pointer back at its start), the module exports no mutable globals, and the
instance's only other state is on the host (WASI's descriptors). What it doesn't carry: a
file the code left open (its descriptor number means nothing in B) and the session's
directory (copy it beside the memory).

    .venv/bin/python bench/session_snapshot.py
"""

from __future__ import annotations

import sys
import tempfile
import time
import zlib
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox import Job  # noqa: E402
from sandbox.engines.stack import locate  # noqa: E402
from sandbox.engines.stack.host import StackRuntime  # noqa: E402
from sandbox.engines.wasmtime.host import _CollectingSink  # noqa: E402

PAGE = 65536
MIB = 1024 * 1024
SETUP = (
    "import numpy as np, pandas as pd, random\n"
    "random.seed(3)\n"
    "x = 41\n"
    "df = pd.DataFrame(np.arange(40_000).reshape(10_000, 4))\n"
    "def double(v):\n"
    "    return v * 2\n"
)
CHECK = "x + 1, int(df.values.sum()), double(21), random.random()"


def memory_of(runtime: StackRuntime, session_id: str) -> tuple[wasmtime.Store, wasmtime.Memory]:
    session = runtime._sessions[session_id]
    # The instance's memory export, held by the call StackRuntime made for it.
    for cell in session.call.__closure__ or ():
        if isinstance(cell.cell_contents, wasmtime.Memory):
            return session.store, cell.cell_contents
    raise SystemExit("no memory export found")


def turn(runtime: StackRuntime, session_id: str, code: str) -> object:
    report, alive = runtime.run_turn(session_id, Job(code=code), _CollectingSink())
    if report.status.value != "ok" or not alive:
        raise SystemExit(f"{code!r}: {report}")
    return report.result.json if report.result else None


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sandlot-snapshot-"))
    runtime = StackRuntime(locate(ROOT / ".artifacts"), work / "worker")
    runtime.open_session("a", work / "a", 512)
    turn(runtime, "a", SETUP)
    store_a, memory_a = memory_of(runtime, "a")

    started = time.perf_counter()
    image_a = memory_a.read(store_a, 0, memory_a.data_len(store_a))
    runtime.open_session("base", work / "base", 512)
    store_base, memory_base = memory_of(runtime, "base")
    image_base = memory_base.read(store_base, 0, memory_base.data_len(store_base))
    changed = [
        offset
        for offset in range(0, len(image_a), PAGE)
        if image_a[offset : offset + PAGE] != image_base[offset : offset + PAGE]
    ]
    saved = zlib.compress(b"".join(image_a[o : o + PAGE] for o in changed), 1)
    save_ms = (time.perf_counter() - started) * 1000
    expected = turn(runtime, "a", CHECK)

    runtime.open_session("b", work / "b", 512)
    store_b, memory_b = memory_of(runtime, "b")
    started = time.perf_counter()
    pages = zlib.decompress(saved)
    grow = (len(image_a) - memory_b.data_len(store_b)) // PAGE
    if grow > 0:
        memory_b.grow(store_b, grow)
    for index, offset in enumerate(changed):
        memory_b.write(store_b, pages[index * PAGE : (index + 1) * PAGE], offset)
    restore_ms = (time.perf_counter() - started) * 1000
    got = turn(runtime, "b", CHECK)
    runtime.close()

    print("| measure | value |")
    print("|---|---:|")
    print(f"| session's linear memory | {len(image_a) / MIB:.1f} MiB |")
    changed_mib = len(changed) * PAGE / MIB
    print(f"| pages differing from a fresh instance | {len(changed)} ({changed_mib:.1f} MiB) |")
    print(f"| saved, zlib level 1 | {len(saved) / MIB:.1f} MiB |")
    print(f"| save (read both images, compare, compress) | {save_ms:.0f} ms |")
    print(f"| restore into a fresh instance | {restore_ms:.1f} ms |")
    print(f"| the restored session carries on | {got == expected} ({got}) |")


if __name__ == "__main__":
    main()
