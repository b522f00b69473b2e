"""multiprocessing's shared state beside the in-line pool, on every engine
(``sandbox/guest/_sandlot_multiprocessing.py``).

Where a program's answer is the same as python's with real processes, the test runs it
natively too (this interpreter, fork) and compares: the sandbox must print what python
prints. Where the sandbox differs by design (a wait nothing can end raises), a comment
says so.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conformance.conftest import Run


def _ok(body: dict[str, object]) -> str:
    assert body["status"] == "ok", (body["error"], body["stderr"])
    return str(body["stdout"])


def _native(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


SHARED_STATE = """\
import multiprocessing as mp
from multiprocessing import Pool, Manager, Value, Array, Lock

counter = Value('i', 0)
squares = Array('d', 5)
lock = Lock()

def work(x):
    with counter.get_lock():
        counter.value += x
    squares[x] = x * x
    return x * 2

def fill(args):
    shared, log, x = args
    shared[x] = x * 10
    log.append(x)

if __name__ == '__main__':
    mp.set_start_method('fork', force=True) if hasattr(mp, 'set_start_method') else None
    with Pool(3) as pool:
        print(pool.map(work, range(5)))
    print(counter.value, squares[:], len(squares), squares[4])
    with Manager() as manager:
        shared, log = manager.dict(), manager.list()
        with Pool(2) as pool:
            pool.map(fill, [(shared, log, x) for x in range(4)])
        print(sorted(shared.items()), sorted(log))
        ns = manager.Namespace(total=1)
        ns.total += 1
        print(ns.total, manager.Value('i', 7).value, manager.Array('i', [1, 2])[:])
    with lock:
        print('locked', lock.acquire(False))
"""


def test_a_pools_tasks_share_values_arrays_and_a_managers_objects(run: Run) -> None:
    # Pickling a Manager's proxies into tasks and their items back: python's answers.
    assert _ok(run(SHARED_STATE)) == _native(SHARED_STATE)


QUEUES = """\
import multiprocessing as mp
import queue

def produce(q, n):
    for i in range(n):
        q.put({'i': i, 'sq': i * i})
    q.put(None)

if __name__ == '__main__':
    ctx = mp.get_context('fork')
    q = ctx.Queue()
    produce(q, 3)
    got = []
    while (item := q.get(timeout=5)) is not None:
        got.append(item)
    print(got, q.empty())
    item = {'list': [1]}
    q.put(item)
    item['list'].append(2)
    print(q.get(timeout=5))
    try:
        q.get(timeout=0.05)
    except queue.Empty:
        print('Empty')
    try:
        q.put(lambda: 1)
    except Exception as exc:
        print('unpicklable', type(exc).__name__)
    jq = ctx.JoinableQueue()
    jq.put(1)
    jq.get(timeout=5)
    jq.task_done()
    jq.join()
    print('joined')
    sq = ctx.SimpleQueue()
    sq.put('x')
    print(sq.get(), sq.empty())
    q.close()
    q.join_thread()
    try:
        q.put(1)
    except ValueError:
        print('closed')
"""


def test_queues_carry_copies_and_answer_as_pythons(run: Run) -> None:
    # The getter's item is the put one's copy (pickled), as between processes; a lambda
    # can't be put. (Natively a put is pickled later, in a feeder thread: its error is
    # printed there, and the copy may be taken after the change. The rest is compared.)
    sandbox = _ok(run(QUEUES, limits={"wall_ms": 10_000}))
    assert sandbox.splitlines() == [
        "[{'i': 0, 'sq': 0}, {'i': 1, 'sq': 1}, {'i': 2, 'sq': 4}] True",
        "{'list': [1]}",
        "Empty",
        "unpicklable PicklingError",
        "joined",
        "x True",
        "closed",
    ]
    native = _native(QUEUES).splitlines()
    assert (native[0], native[2]) == (sandbox.splitlines()[0], "Empty")


def test_a_pipe_carries_objects_both_ways_and_ends_as_pythons(run: Run) -> None:
    code = (
        "from multiprocessing import Pipe\n"
        "a, b = Pipe()\n"
        "a.send({'x': [1, 2]})\n"
        "b.send_bytes(b'raw')\n"
        "print(b.poll(), b.recv(), a.recv_bytes(), a.poll(0.05))\n"
        "reader, writer = Pipe(duplex=False)\n"
        "writer.send(3)\n"
        "print(reader.recv(), reader.writable, writer.readable)\n"
        "for call in (lambda: reader.send(1), lambda: writer.recv()):\n"
        "    try:\n"
        "        call()\n"
        "    except OSError as exc:\n"
        "        print(exc)\n"
        "writer.close()\n"
        "try:\n"
        "    reader.recv()\n"
        "except EOFError:\n"
        "    print('EOF')\n"
    )
    lines = _ok(run(code, limits={"wall_ms": 10_000})).splitlines()
    assert lines == [
        "True {'x': [1, 2]} b'raw' False",
        "3 False False",
        "connection is read-only",
        "connection is write-only",
        "EOF",
    ]


@pytest.mark.parametrize(
    "call",
    [
        "a, b = multiprocessing.Pipe()\nb.recv()",
        "multiprocessing.Queue().get()",
        "multiprocessing.Event().wait()",
        "lock = multiprocessing.Lock()\nlock.acquire()\nlock.acquire()",
    ],
    ids=["pipe", "queue", "event", "lock"],
)
def test_a_wait_nothing_can_end_raises_at_once(run: Run, call: str) -> None:
    # Natively these wait forever for another process; here there is none.
    body = run(f"import multiprocessing\n{call}\n", limits={"wall_ms": 10_000})
    assert body["status"] == "error", body
    assert body["error"]["type"] == "RuntimeError"
    assert body["error"]["message"].startswith("this wait would never end"), body["error"]


def test_values_and_arrays_keep_their_typecodes(run: Run) -> None:
    code = (
        "import multiprocessing as mp\n"
        "v = mp.Value('d', 1.5)\n"
        "v.value *= 2\n"
        "c = mp.Array('c', b'hi\\0\\0')\n"
        "r = mp.RawValue('i', 4)\n"
        "a = mp.Array('i', range(4), lock=False)\n"
        "a[1:3] = [7, 8]\n"
        "print(v.value, c.value, c.raw, r.value, list(a), a[-1])\n"
        "try:\n"
        "    a[0:2] = [1]\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    assert _ok(run(code)) == _native(code)
