"""Files as agent code expects them: ``/dev/null``, disk usage, ``np.fromfile``.

On every engine (:func:`install`):

* ``os.statvfs`` and ``shutil.disk_usage`` describe the run's room for files: its total
  is the run's disk quota (``SANDLOT_RUN_DISK_MB``, a session's quota in a session; on
  Pyodide, where a run's files live in its memory, its ``memory_mb``), handed over in the
  job as ``disk_bytes``, and what is used is what the quota counts, the regular files
  under ``/work`` and ``/tmp``. WASI has no ``statvfs`` and Pyodide's made numbers up (4 GB, half
  used); code that checks for room before it writes gets a true answer. ``/`` works on
  the WASI guests too, which have no root directory to look at.

On the WASI guests only (:func:`install_wasi`):

* ``/dev/null``: a WASI preopen maps a host directory, never a device, so ``open`` and
  ``io.open`` (hence ``pathlib``, ``codecs``, ``gzip``, ``logging``) hand out an in-memory
  null file for exactly that path: reads find the end, writes vanish, and ``fileno()``
  raises ``io.UnsupportedOperation`` as an in-memory file's does (there is no
  descriptor to give). ``os.open`` of it still fails, now saying why. Every other
  ``open`` pays one comparison. Pyodide has a real ``/dev/null``.
* ``np.fromfile``: numpy reads through a duplicate of the file's descriptor, and WASI
  cannot duplicate one; the data-stack guest's numpy reads the same bytes through python
  instead (also from ``io.BytesIO``, which numpy itself refuses). ``ndarray.tofile`` can't
  be replaced (a method of a built-in type): it still fails, and ``os.dup``'s error now
  names what to use instead.
"""

from __future__ import annotations

import builtins
import collections
import errno
import io
import os
import warnings
from types import ModuleType
from typing import Any

import _sandlot_exec
import _sandlot_hooks

# Where a run's files count against its room (the host's disk watch counts the same two).
COUNTED = ("/work", "/tmp")
DEVNULL = "/dev/null"
BLOCK = 4096
_MAX_ENTRIES = 10_000  # as many as the host's disk watch counts
NO_DUP = (
    "Not supported: WASI cannot duplicate a file descriptor (ndarray.tofile needs to): "
    "write arr.tobytes() to a file opened with open(), or use np.save"
)
NO_DEVNULL_FD = (
    "the sandbox's /dev/null is an in-memory file: open() gives one, os.open has no "
    "descriptor to give"
)


def install() -> None:
    _replace(os, "statvfs", statvfs)
    os.supports_fd.add(statvfs)  # it takes a descriptor, as Linux's does
    _sandlot_hooks.after_import("shutil", _patch_shutil)


def install_wasi() -> None:
    builtins.open = io.open = _open_with_devnull  # type: ignore[assignment]
    _replace(os, "open", _os_open_with_devnull)
    if hasattr(os, "dup"):
        _replace(os, "dup", _dup_saying_why)
    _sandlot_hooks.after_import("numpy", _patch_numpy)


def _replace(module: ModuleType, name: str, function: Any) -> None:
    """``module.name = function``, also in the os.supports_* sets that held the original
    (shutil.rmtree picks its safe way by ``os.open in os.supports_dir_fd``)."""
    original = getattr(module, name, None)
    for group in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks):
        if original in group:
            group.add(function)
    setattr(module, name, function)


# -- disk usage -----------------------------------------------------------------------


def statvfs(path: Any) -> os.statvfs_result:
    """Perform a statvfs system call on the given path: the run's room for files."""
    if isinstance(path, int):
        os.fstat(path)  # EBADF, as statvfs would say
    else:
        path = os.fspath(path)
        if os.path.normpath(os.path.abspath(os.fsdecode(path))) != "/":
            os.stat(path)  # FileNotFoundError and the like, with the path
    total = _sandlot_exec.disk_bytes
    if total is None:
        raise OSError(errno.ENOSYS, "the host set this run no disk quota to report")
    blocks = total // BLOCK
    free = max(0, blocks - -(-_used_bytes() // BLOCK))
    # bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax
    return os.statvfs_result((BLOCK, BLOCK, blocks, free, free, 0, 0, 0, 0, 255))


def _used_bytes() -> int:
    """The sizes of the regular files under /work and /tmp, as the quota counts them."""
    used, seen, pending = 0, 0, list(COUNTED)
    while pending and seen < _MAX_ENTRIES:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    used += entry.stat(follow_symlinks=False).st_size
            except OSError:  # gone since the listing
                continue
    return used


_DiskUsage = collections.namedtuple("usage", "total used free")  # shutil's own name


def disk_usage(path: Any) -> Any:
    """Return disk usage statistics about the given path as (total, used, free) bytes."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    total = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return _DiskUsage(total, used, free)


def _patch_shutil(shutil: ModuleType) -> None:
    # shutil defines disk_usage only where os.statvfs was there when it was imported.
    if not hasattr(shutil, "disk_usage"):
        disk_usage.__module__ = "shutil"
        shutil._ntuple_diskusage = _DiskUsage  # type: ignore[attr-defined]
        shutil.disk_usage = disk_usage
        shutil.__all__.append("disk_usage")


# -- /dev/null ------------------------------------------------------------------------

_io_open = io.open
_os_open = os.open
_os_dup = getattr(os, "dup", None)


def _is_devnull(file: Any) -> bool:
    if file.__class__ is not str:  # an fd, bytes, a path object
        if isinstance(file, int) or not isinstance(file, bytes | os.PathLike):
            return False
        file = os.fsdecode(file)
    return file.endswith("/null") and os.path.normpath(file) == DEVNULL


def _open_with_devnull(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
) -> Any:
    if opener is None and _is_devnull(file):
        return _open_null(os.fsdecode(file), mode, buffering, encoding, errors, newline, closefd)
    return _io_open(file, mode, buffering, encoding, errors, newline, closefd, opener)


_open_with_devnull.__doc__ = _io_open.__doc__
_open_with_devnull.__name__ = _open_with_devnull.__qualname__ = "open"
_open_with_devnull.__module__ = "_io"


def _os_open_with_devnull(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
    if dir_fd is None and _is_devnull(path):
        raise FileNotFoundError(errno.ENOENT, NO_DEVNULL_FD, os.fsdecode(path))
    return _os_open(path, flags, mode, dir_fd=dir_fd)


_os_open_with_devnull.__doc__ = _os_open.__doc__
_os_open_with_devnull.__name__ = _os_open_with_devnull.__qualname__ = "open"
_os_open_with_devnull.__module__ = "posix"


def _dup_saying_why(fd: int, /) -> int:
    assert _os_dup is not None
    try:
        return int(_os_dup(fd))
    except OSError as exc:
        if exc.errno != errno.ENOTSUP:
            raise
        raise OSError(errno.ENOTSUP, NO_DUP) from None


_dup_saying_why.__doc__ = _os_dup.__doc__ if _os_dup is not None else None
_dup_saying_why.__name__ = _dup_saying_why.__qualname__ = "dup"
_dup_saying_why.__module__ = "posix"


class _NullRaw(io.RawIOBase):
    """/dev/null's raw stream: reading finds the end at once, writing keeps nothing."""

    def __init__(self, name: str, mode: str, readable: bool, writable: bool) -> None:
        super().__init__()
        self.name = name
        self.mode = mode
        self._readable = readable
        self._writable = writable

    def readable(self) -> bool:
        self._checkClosed()  # type: ignore[attr-defined]
        return self._readable

    def writable(self) -> bool:
        self._checkClosed()  # type: ignore[attr-defined]
        return self._writable

    def seekable(self) -> bool:
        self._checkClosed()  # type: ignore[attr-defined]
        return True

    def readinto(self, buffer: Any) -> int:
        if not self.readable():
            raise io.UnsupportedOperation("File not open for reading")
        return 0

    def write(self, data: Any) -> int:
        if not self.writable():
            raise io.UnsupportedOperation("File not open for writing")
        with memoryview(data) as view:
            return view.nbytes

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        return 0

    def tell(self) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        return 0

    def truncate(self, size: int | None = None) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        return 0

    def fileno(self) -> int:
        raise io.UnsupportedOperation(f"fileno: {NO_DEVNULL_FD}")

    def isatty(self) -> bool:
        self._checkClosed()  # type: ignore[attr-defined]
        return False


def _open_null(
    name: str,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    closefd: bool,
) -> Any:
    """``open(name, ...)`` for the null device, with open()'s own checks and layers."""
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    modes = set(mode)
    if modes - set("axrwb+t") or len(mode) > len(modes):
        raise ValueError(f"invalid mode: {mode!r}")
    creating, reading, writing, appending = ("x" in modes, "r" in modes, "w" in modes, "a" in modes)
    updating, text, binary = "+" in modes, "t" in modes, "b" in modes
    if text and binary:
        raise ValueError("can't have text and binary mode at once")
    if creating + reading + writing + appending != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if binary and encoding is not None:
        raise ValueError("binary mode doesn't take an encoding argument")
    if binary and errors is not None:
        raise ValueError("binary mode doesn't take an errors argument")
    if binary and newline is not None:
        raise ValueError("binary mode doesn't take a newline argument")
    if not closefd:
        raise ValueError("Cannot use closefd=False with file name")
    if creating:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), name)
    if binary and buffering == 1:
        warnings.warn(
            "line buffering (buffering=1) isn't supported in binary mode, the default buffer "
            "size will be used",
            RuntimeWarning,
            2,
        )
    readable, writable = reading or updating, not reading or updating
    raw_mode = ("r" if reading else "a" if appending else "w") + "b" + ("+" if updating else "")
    raw = _NullRaw(name, raw_mode, readable, writable)
    if buffering == 0:
        if not binary:
            raise ValueError("can't have unbuffered text I/O")
        return raw
    line_buffering = buffering == 1
    size = io.DEFAULT_BUFFER_SIZE if buffering in (-1, 1) else buffering
    if size < 0:
        raise ValueError("invalid buffering size")
    layer = io.BufferedRandom if updating else io.BufferedWriter if writable else io.BufferedReader
    buffered = layer(raw, size)
    if binary:
        return buffered
    wrapper = io.TextIOWrapper(
        buffered, io.text_encoding(encoding), errors, newline, line_buffering
    )
    wrapper.mode = mode  # type: ignore[misc]
    return wrapper


# -- numpy ----------------------------------------------------------------------------


def _patch_numpy(numpy: ModuleType) -> None:
    original = numpy.fromfile

    def fromfile(
        file: Any,
        dtype: Any = float,
        count: int = -1,
        sep: str = "",
        offset: int = 0,
        *,
        like: Any = None,
    ) -> Any:
        dtype = numpy.dtype(dtype)
        if sep and offset:
            raise TypeError("'offset' argument only permitted for binary files")
        if dtype.hasobject:
            raise ValueError("Cannot read into object array")
        if isinstance(file, str | bytes | os.PathLike):
            with open(file, "rb") as handle:
                return _read(numpy, handle, dtype, count, sep, offset, like)
        if isinstance(file, io.TextIOBase):  # numpy reads a text file's bytes
            file.seek(file.tell())  # drops its read-ahead: the buffer is where it says
            try:
                return _read(numpy, file.buffer, dtype, count, sep, offset, like)
            finally:
                file.seek(file.buffer.tell())
        return _read(numpy, file, dtype, count, sep, offset, like)

    fromfile.__doc__ = original.__doc__
    fromfile.__module__ = original.__module__
    numpy.fromfile = fromfile


def _read(
    numpy: ModuleType, handle: Any, dtype: Any, count: int, sep: str, offset: int, like: Any
) -> Any:
    if offset:
        handle.seek(offset, os.SEEK_CUR)
    if sep:
        return numpy.fromstring(handle.read(), dtype, count, sep=sep, like=like)
    size = dtype.itemsize
    data = handle.read() if count < 0 else handle.read(count * size)
    whole = len(data) - len(data) % size if size else 0
    if whole < len(data):  # numpy reads whole items only: the rest stays unread
        handle.seek(whole - len(data), os.SEEK_CUR)
    return numpy.frombuffer(data[:whole], dtype, like=like).copy()
