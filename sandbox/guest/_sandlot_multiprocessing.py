"""multiprocessing's shared state where a pool's tasks run in the caller (``_sandlot_pools``).

Code that maps a function over a ``multiprocessing.Pool`` often shares state with its
tasks through multiprocessing's own objects: a ``Manager().dict()`` the tasks fill, a
``Queue`` they put results on, a ``Value`` counter under a ``Lock``. In the guests none of
them can be made (no ``_multiprocessing``, no ``os.pipe``, no ``mmap``: ``ModuleNotFoundError``,
``AttributeError``, ``OSError``), though the pool they were for works. Every task runs in
the one thread there is, in the caller's memory, so :func:`install` makes each context's
factories hand out the in-process equivalents:

* ``Lock``, ``RLock``, ``Condition``, ``Semaphore``, ``BoundedSemaphore``, ``Event`` and
  ``Barrier`` are ``threading``'s (whose waits ``_sandlot_pools`` already answers: with a
  timeout, python's answer after it; without one, ``RuntimeError`` at once).
* ``Queue``, ``JoinableQueue`` and ``SimpleQueue`` are ``queue.Queue``s with
  multiprocessing's extra methods (``close``, ``join_thread``, ``cancel_join_thread``).
  Items are pickled on ``put`` and unpickled on ``get``, as between processes: the getter
  has its own copy, and what can't be pickled fails at ``put``.
* ``Pipe()`` is two connected ends over in-memory buffers, pickling likewise; a ``recv``
  with nothing sent would wait forever, so it raises (``EOFError`` once the other end is
  closed, as in python).
* ``Value`` and ``Array`` keep their items in an ``array.array`` of the typecode (``'i'``,
  ``'d'``, ...; ctypes types are mapped to theirs), with ``get_lock()``/``get_obj()``.
* ``Manager()`` starts nothing: its ``dict()``, ``list()``, ``Namespace()``, ``Queue()``,
  ``Value()``, ``Lock()``... are the plain objects above, shared by reference (its
  ``Array()`` an ``array.array``, as python's manager keeps one).

``multiprocessing.Process`` still refuses to start (``_sandlot_pools``): these objects are
for the in-line pool and for code that makes them whether or not it forks.
"""

from __future__ import annotations

import array
import pickle
import queue
import threading
import time
import types
from collections import deque
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import _sandlot_hooks
import _sandlot_pools

# The context factories replaced; multiprocessing's module-level names of the same are
# bound methods of its default context, made when it was imported: re-bound too.
_FACTORIES = (
    "Lock",
    "RLock",
    "Condition",
    "Semaphore",
    "BoundedSemaphore",
    "Event",
    "Barrier",
    "Queue",
    "JoinableQueue",
    "SimpleQueue",
    "Pipe",
    "Value",
    "Array",
    "RawValue",
    "RawArray",
    "Manager",
)
# ctypes' types by name, for Value(ctypes.c_int, 0): their array typecodes.
_CTYPES_CODES = {
    "c_bool": "b",
    "c_char": "c",
    "c_wchar": "u",
    "c_byte": "b",
    "c_ubyte": "B",
    "c_short": "h",
    "c_ushort": "H",
    "c_int": "i",
    "c_uint": "I",
    "c_long": "l",
    "c_ulong": "L",
    "c_longlong": "q",
    "c_ulonglong": "Q",
    "c_float": "f",
    "c_double": "d",
    "c_int8": "b",
    "c_uint8": "B",
    "c_int16": "h",
    "c_uint16": "H",
    "c_int32": "i",
    "c_uint32": "I",
    "c_int64": "q",
    "c_uint64": "Q",
    "c_size_t": "L",
}


def install() -> None:
    """Patch multiprocessing's contexts now, or right after multiprocessing is imported."""
    _sandlot_hooks.after_import("multiprocessing.context", _patch_context)
    _sandlot_hooks.after_import("multiprocessing", _rebind)


def _patch_context(module: ModuleType) -> None:
    base = module.BaseContext
    for name in _FACTORIES:
        factory = vars(_Factories)[name]
        factory.__doc__ = getattr(base, name).__doc__
        factory.__qualname__ = f"{base.__qualname__}.{name}"
        factory.__module__ = base.__module__
        setattr(base, name, factory)


def _rebind(module: ModuleType) -> None:
    context = getattr(module, "context", None)
    default = getattr(context, "_default_context", None)
    if default is None:
        return
    for name in _FACTORIES:
        if name in vars(module):
            setattr(module, name, getattr(default, name))


class _Factories:
    """The methods of multiprocessing's ``BaseContext`` that :func:`_patch_context` replaces
    (with their signatures)."""

    def Lock(self) -> Any:
        return threading.Lock()

    def RLock(self) -> Any:
        return threading.RLock()

    def Condition(self, lock: Any = None) -> Any:
        return threading.Condition(lock)

    def Semaphore(self, value: int = 1) -> Any:
        return threading.Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> Any:
        return threading.BoundedSemaphore(value)

    def Event(self) -> Any:
        return threading.Event()

    def Barrier(self, parties: int, action: Any = None, timeout: Any = None) -> Any:
        return threading.Barrier(parties, action, timeout)

    def Queue(self, maxsize: int = 0) -> Any:
        return InProcessQueue(maxsize)

    def JoinableQueue(self, maxsize: int = 0) -> Any:
        return InProcessQueue(maxsize)

    def SimpleQueue(self) -> Any:
        return InProcessQueue(0)

    def Pipe(self, duplex: bool = True) -> tuple[Any, Any]:
        return Connection.pair(duplex)

    def Value(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
        return SharedValue(typecode_or_type, *args, lock=lock)

    def Array(self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
        return SharedArray(typecode_or_type, size_or_initializer, lock=lock)

    def RawValue(self, typecode_or_type: Any, *args: Any) -> Any:
        return SharedValue(typecode_or_type, *args, lock=False)

    def RawArray(self, typecode_or_type: Any, size_or_initializer: Any) -> Any:
        return SharedArray(typecode_or_type, size_or_initializer, lock=False)

    def Manager(self) -> Any:
        return InProcessManager()


# -- queues and pipes ---------------------------------------------------------------------


class InProcessQueue(queue.Queue):  # type: ignore[type-arg]
    """``multiprocessing.Queue`` (and ``JoinableQueue``, ``SimpleQueue``) in one process:
    items travel pickled, as between processes."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._closed = False

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        super().put(pickle.dumps(obj), block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        return pickle.loads(super().get(block, timeout))

    def close(self) -> None:
        self._closed = True

    def join_thread(self) -> None:
        if not self._closed:
            raise ValueError(f"Queue {self!r} not closed")

    def cancel_join_thread(self) -> None:
        pass


class Connection:
    """One end of ``multiprocessing.Pipe()`` in one process."""

    def __init__(self, inbox: deque[bytes], outbox: deque[bytes] | None, readable: bool):
        self._inbox, self._outbox = inbox, outbox
        self._readable = readable
        self._closed = False
        self._other: Connection | None = None

    @classmethod
    def pair(cls, duplex: bool) -> tuple[Connection, Connection]:
        one: deque[bytes] = deque()
        two: deque[bytes] = deque()
        if duplex:
            first, second = cls(one, two, True), cls(two, one, True)
        else:  # (reader, writer), as python's Pipe(duplex=False)
            first, second = cls(one, None, True), cls(two, one, False)
        first._other, second._other = second, first
        return first, second

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def readable(self) -> bool:
        return self._readable

    @property
    def writable(self) -> bool:
        return self._outbox is not None

    def send(self, obj: Any) -> None:
        self.send_bytes(pickle.dumps(obj))

    def recv(self) -> Any:
        return pickle.loads(self.recv_bytes())

    def send_bytes(self, buf: Any, offset: int = 0, size: int | None = None) -> None:
        self._check(writing=True)
        data = bytes(memoryview(buf).cast("B"))
        end = len(data) if size is None else offset + size
        if offset < 0 or end > len(data) or end < offset:
            raise ValueError("buffer length < offset + size")
        assert self._outbox is not None  # _check says so
        self._outbox.append(data[offset:end])

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        self._check(writing=False)
        if not self._inbox:
            if self._other is None or self._other._closed:
                raise EOFError
            raise RuntimeError(_sandlot_pools.WAIT_FOREVER_MESSAGE)
        data = self._inbox.popleft()
        if maxlength is not None and len(data) > maxlength:
            raise OSError("bad message length")
        return data

    def poll(self, timeout: float | None = 0.0) -> bool:
        self._check(writing=False)
        if self._inbox or self._other is None or self._other._closed:
            return True
        if timeout is None:
            raise RuntimeError(_sandlot_pools.WAIT_FOREVER_MESSAGE)
        if timeout > 0:
            time.sleep(timeout)
        return False

    def fileno(self) -> int:
        raise OSError("a pipe end in the sandbox has no file descriptor")

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _check(self, *, writing: bool) -> None:
        if self._closed:
            raise OSError("handle is closed")
        if writing and self._outbox is None:
            raise OSError("connection is read-only")
        if not writing and not self._readable:
            raise OSError("connection is write-only")


# -- values and arrays --------------------------------------------------------------------


def _typecode(typecode_or_type: Any) -> str:
    if isinstance(typecode_or_type, str):
        return typecode_or_type
    name = getattr(typecode_or_type, "__name__", "")
    code = _CTYPES_CODES.get(name)
    if code is None:
        raise TypeError(f"{typecode_or_type!r} is not a typecode or a ctypes type there is one for")
    return code


def _lock_for(lock: Any) -> Any:
    if lock is True or lock is None:
        return threading.RLock()
    if lock is False:
        return None
    if hasattr(lock, "acquire"):
        return lock
    raise AttributeError(f"{lock!r} has no method 'acquire'")


class _Synchronized:
    """What ``Value`` and ``Array`` share: the lock they were made with (``lock=``)."""

    _lock: Any

    def get_lock(self) -> Any:
        if self._lock is None:
            raise AttributeError(f"'{type(self).__name__}' made with lock=False has no get_lock()")
        return self._lock

    def get_obj(self) -> Any:
        return self

    def acquire(self, *args: Any) -> bool:
        return bool(self.get_lock().acquire(*args))

    def release(self) -> None:
        self.get_lock().release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


class SharedValue(_Synchronized):
    """``multiprocessing.Value``: one item of a typecode, behind its lock."""

    def __init__(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> None:
        self._typecode = _typecode(typecode_or_type)
        initial = args[0] if args else (b"\0" if self._typecode == "c" else 0)
        if self._typecode == "c":
            self._items: Any = bytearray(initial[:1] if isinstance(initial, bytes) else b"\0")
        else:
            self._items = array.array(self._typecode, [initial])
        self._lock = _lock_for(lock)

    @property
    def value(self) -> Any:
        return bytes(self._items) if self._typecode == "c" else self._items[0]

    @value.setter
    def value(self, value: Any) -> None:
        if self._typecode == "c":
            if not isinstance(value, bytes) or len(value) != 1:
                raise TypeError("one character bytes, bytearray or integer expected")
            self._items[0:1] = value
        else:
            self._items[0] = value

    def __reduce__(self) -> Any:
        return (_rebuild_value, (self._typecode, self.value))

    def __repr__(self) -> str:
        return f"<Synchronized wrapper for {self._typecode!r}({self.value!r})>"


def _rebuild_value(typecode: str, value: Any) -> SharedValue:
    return SharedValue(typecode, value)


class SharedArray(_Synchronized):
    """``multiprocessing.Array``: items of a typecode, behind their lock."""

    def __init__(self, typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True):
        self._typecode = _typecode(typecode_or_type)
        if isinstance(size_or_initializer, int):
            items: Iterable[Any] = [b"\0"[0] if self._typecode == "c" else 0] * size_or_initializer
        else:
            items = size_or_initializer
        if self._typecode == "c":
            self._items: Any = bytearray(items)
        else:
            self._items = array.array(self._typecode, items)
        self._lock = _lock_for(lock)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: Any) -> Any:
        got = self._items[index]
        if isinstance(index, slice):
            return bytes(got) if self._typecode == "c" else got.tolist()
        return got

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            replacement = (
                bytearray(value) if self._typecode == "c" else array.array(self._typecode, value)
            )
            if len(range(*index.indices(len(self._items)))) != len(replacement):
                raise ValueError("Can only assign sequence of same size")
            self._items[index] = replacement
        else:
            self._items[index] = value

    def __iter__(self) -> Any:
        return iter(self[:])

    @property
    def value(self) -> bytes:
        if self._typecode != "c":
            raise AttributeError("only an Array of 'c' has .value")
        return bytes(self._items).split(b"\0", 1)[0]

    @property
    def raw(self) -> bytes:
        if self._typecode != "c":
            raise AttributeError("only an Array of 'c' has .raw")
        return bytes(self._items)

    def __reduce__(self) -> Any:
        return (SharedArray, (self._typecode, self[:]))

    def __repr__(self) -> str:
        return f"<SynchronizedArray wrapper for {self._typecode!r}{self[:]!r}>"


# -- the manager --------------------------------------------------------------------------


class Namespace(types.SimpleNamespace):
    """``Manager().Namespace()``."""


class InProcessManager(_Factories):
    """``multiprocessing.Manager()`` with no server process: its objects are plain ones
    (a ``Queue``, a ``Lock``... as the context's factories make them)."""

    def start(self, initializer: Any = None, initargs: tuple[Any, ...] = ()) -> None:
        if initializer is not None:
            initializer(*initargs)

    def shutdown(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass

    def __enter__(self) -> InProcessManager:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()

    def dict(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def list(self, sequence: Iterable[Any] = ()) -> list[Any]:
        return list(sequence)

    def Namespace(self, **kwargs: Any) -> Namespace:
        return Namespace(**kwargs)

    def Value(self, typecode: Any, value: Any, lock: Any = True) -> SharedValue:  # type: ignore[override]
        return SharedValue(typecode, value, lock=lock)

    def Array(self, typecode: Any, sequence: Any, lock: Any = True) -> Any:  # type: ignore[override]
        # What python's manager keeps for one (its proxy hands back slices of it as such).
        return array.array(typecode, sequence)

    def Pool(self, *args: Any, **kwargs: Any) -> Any:
        from multiprocessing.pool import ThreadPool

        return ThreadPool(*args, **kwargs)
