"""A session's (or a run's) directory on the host, read and written on behalf of its owner.

The guest sees this directory at ``/work`` and may have made anything in it, symlinks
included (WASI lets a guest create a link whose target points anywhere; only the guest's
own lookups are confined). So every operation here walks the path one component at a
time from an open descriptor of the root, with ``O_NOFOLLOW`` on every step: a link the
guest made is never followed, and the answer for a path through one is "not a file".
Paths are checked with :func:`~sandbox.jobs.check_relative_path` first.

The byte quota counts regular files (their sizes, not blocks). Writes are refused when
they would go over it; what the guest itself writes is measured by :meth:`Workspace.usage`
(while a turn runs, by the engine's disk watch; after it, by the service), and the caller
decides what to do about it. A directory with more entries, or deeper, than that walk goes
is over its quota too: bytes it can't see would be bytes nobody counts.

On the wasmtime engine the guest also has a ``/tmp``: a second directory beside the first
(:func:`tmp_beside`), so that code listing ``/work`` never finds it there. The quota counts
both, :meth:`Workspace.remove` removes both, and everything else here (reads, writes,
listings: the files API, returned files) is about ``/work`` alone: ``/tmp`` is scratch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from sandbox.jobs import check_relative_path

__all__ = [
    "DiskUsage",
    "FileEntry",
    "FileTooLarge",
    "QuotaExceeded",
    "TreeEntry",
    "Workspace",
    "tmp_beside",
]

# How far a listing goes: a guest can make a million empty files.
_MAX_ENTRIES = 10_000
_MAX_DEPTH = 32
# How far the quota's count goes (files and directories): past it, over the quota.
MAX_COUNTED_ENTRIES = 10_000
_CHUNK = 1024 * 1024


class QuotaExceeded(ValueError):
    """A write would take the workspace over its quota (the message says by how much)."""


class FileTooLarge(ValueError):
    """A file is larger than the caller will read at once."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A regular file of the workspace: path relative to its root, size in bytes."""

    path: str
    size: int


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """What one count of the workspace found: bytes in regular files, entries (files,
    directories, links) seen, and whether it saw them all (False past
    ``MAX_COUNTED_ENTRIES`` entries or 32 levels down)."""

    file_bytes: int
    entries: int
    complete: bool

    def over(self, quota_bytes: int) -> bool:
        """Over ``quota_bytes``, or too many entries to tell."""
        return self.file_bytes > quota_bytes or not self.complete


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """A regular file or a directory of the workspace, as :meth:`Workspace.tree` saw it."""

    is_dir: bool
    size: int
    mtime_ns: int


def tmp_beside(root: Path) -> Path:
    """Where the guest's ``/tmp`` of the run or session whose directory is ``root`` lives
    on the host: ``<root>-tmp``, beside it (the worker pool removes a worker's ``<name>-*``
    with it)."""
    return root.with_name(root.name + "-tmp")


class Workspace:
    """The directory at ``root`` with a quota of ``quota_bytes`` over it and ``tmp`` (when
    given; it need not exist); not thread-safe.

    Raises ValueError (bad path), FileNotFoundError (no regular file there, or a link
    on the way), IsADirectoryError, QuotaExceeded, or OSError for what the disk refuses.
    """

    def __init__(self, root: Path, quota_bytes: int, *, tmp: Path | None = None) -> None:
        if quota_bytes < 0:
            raise ValueError(f"quota_bytes must not be negative, got {quota_bytes}")
        self.root = root
        self.quota_bytes = quota_bytes
        self.tmp = tmp
        # What usage() walks: both, under one budget of entries.
        self._counted = (root,) if tmp is None else (root, tmp)

    @classmethod
    def with_tmp(cls, root: Path, quota_bytes: int) -> Workspace:
        """The directory at ``root`` with its ``/tmp`` beside it (:func:`tmp_beside`)."""
        return cls(root, quota_bytes, tmp=tmp_beside(root))

    def remove(self) -> None:
        """Delete the directory (and ``tmp``) and everything in them. Idempotent."""
        for directory in self._counted:
            shutil.rmtree(directory, ignore_errors=True)

    def write(self, path: str, data: bytes) -> None:
        """Create or replace the file at ``path`` (making its directories)."""
        check_relative_path(path)
        parts = path.split("/")
        old = self._size_of(parts)
        used = self.usage_bytes()
        if used - old + len(data) > self.quota_bytes:
            with_tmp = "" if self.tmp is None else " (with those in its /tmp)"
            raise QuotaExceeded(
                f"{path!r} ({len(data)} bytes) would take the session's files{with_tmp} to "
                f"{used - old + len(data)} bytes; its quota is {self.quota_bytes} bytes "
                "(delete files first)"
            )
        with self._parent(parts, create=True) as dir_fd:
            name = parts[-1]
            temporary = f".{name[:200]}.upload-{os.getpid()}"
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                0o600,
                dir_fd=dir_fd,
            )
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                # rename() replaces a link itself, never what it points to.
                os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=dir_fd)
                raise

    def read(self, path: str, max_bytes: int) -> bytes:
        """The content of the regular file at ``path``; FileTooLarge when over ``max_bytes``."""
        check_relative_path(path)
        parts = path.split("/")
        with self._parent(parts, create=False) as dir_fd:
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError as exc:
                raise _not_a_file(path, exc) from None
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if stat.S_ISDIR(info.st_mode):
                    raise IsADirectoryError(errno.EISDIR, f"{path!r} is a directory")
                if not stat.S_ISREG(info.st_mode):
                    raise FileNotFoundError(errno.ENOENT, f"{path!r} is not a regular file")
                if info.st_size > max_bytes:
                    raise FileTooLarge(
                        f"{path!r} is {info.st_size} bytes; at most {max_bytes} come back "
                        "in one answer"
                    )
                data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FileTooLarge(f"{path!r} grew past {max_bytes} bytes while it was read")
        return data

    def delete(self, path: str) -> None:
        """Remove the file (or link, or directory tree) at ``path``."""
        check_relative_path(path)
        parts = path.split("/")
        with self._parent(parts, create=False) as dir_fd:
            name = parts[-1]
            try:
                info = os.lstat(name, dir_fd=dir_fd)
            except OSError as exc:
                raise _not_a_file(path, exc) from None
            if stat.S_ISDIR(info.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    for entry in os.listdir(fd):
                        _remove_tree_at(fd, entry)
                finally:
                    os.close(fd)
                os.rmdir(name, dir_fd=dir_fd)
            else:
                os.unlink(name, dir_fd=dir_fd)

    def open(self, path: str, mode: Literal["rb", "wb", "ab"]) -> BinaryIO:
        """The regular file at ``path``, opened without following a link anywhere on the
        way: for reading, or for writing or appending (its directories made). No quota
        check: a caller that writes counts the bytes itself."""
        check_relative_path(path)
        parts = path.split("/")
        flags = os.O_NOFOLLOW | os.O_NONBLOCK
        if mode == "rb":
            flags |= os.O_RDONLY
        else:
            flags |= os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
        with self._parent(parts, create=mode != "rb") as dir_fd:
            try:
                fd = os.open(parts[-1], flags, 0o600, dir_fd=dir_fd)
            except OSError as exc:
                raise _not_a_file(path, exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileNotFoundError(errno.ENOENT, f"{path!r} is not a regular file")
        return os.fdopen(fd, mode)

    def make_dirs(self, path: str) -> None:
        """Make the directory at ``path`` and those above it (none through a link)."""
        check_relative_path(path)
        parts = path.split("/")
        with self._parent(parts, create=True) as dir_fd, contextlib.suppress(FileExistsError):
            os.mkdir(parts[-1], 0o700, dir_fd=dir_fd)

    def tree(self) -> dict[str, TreeEntry]:
        """Every regular file and directory (links and other kinds left out), by path."""
        found: dict[str, TreeEntry] = {}
        for path, info in self._walk_tree():
            is_dir = stat.S_ISDIR(info.st_mode)
            found[path] = TreeEntry(is_dir, 0 if is_dir else info.st_size, info.st_mtime_ns)
        return found

    def files(self) -> list[FileEntry]:
        """Every regular file (links and other kinds are left out), sorted by path."""
        return sorted(self._walk(), key=lambda entry: entry.path)

    def usage_bytes(self) -> int:
        """Bytes in regular files (``tmp``'s too), counted up to ``MAX_COUNTED_ENTRIES``
        entries."""
        return self.usage().file_bytes

    def usage(self) -> DiskUsage:
        """Bytes in regular files of the directory and ``tmp``, and whether the count saw
        every entry of both (see DiskUsage)."""
        walk = _Walk(MAX_COUNTED_ENTRIES)
        total = 0
        for directory in self._counted:
            for _path, info in self._walk_tree(walk, directory):
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
        return DiskUsage(total, MAX_COUNTED_ENTRIES - walk.left, not walk.truncated)

    # -- walking without following links ----------------------------------

    def _size_of(self, parts: list[str]) -> int:
        try:
            with self._parent(parts, create=False) as dir_fd:
                info = os.lstat(parts[-1], dir_fd=dir_fd)
        except (OSError, ValueError):
            return 0
        return info.st_size if stat.S_ISREG(info.st_mode) else 0

    @contextlib.contextmanager
    def _parent(self, parts: list[str], *, create: bool) -> Iterator[int]:
        """An open descriptor of the directory holding ``parts[-1]``, reached link-free."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for index, part in enumerate(parts[:-1]):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o700, dir_fd=fd)
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    shown = "/".join(parts[: index + 1])
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                        raise NotADirectoryError(
                            errno.ENOTDIR, f"{shown!r} is a file or a link, not a directory"
                        ) from None
                    raise FileNotFoundError(errno.ENOENT, f"no directory {shown!r}") from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _walk(self) -> Iterator[FileEntry]:
        for path, info in self._walk_tree():
            if stat.S_ISREG(info.st_mode):
                yield FileEntry(path, info.st_size)

    def _walk_tree(
        self, walk: _Walk | None = None, directory: Path | None = None
    ) -> Iterator[tuple[str, os.stat_result]]:
        """Below ``directory`` (default: the root)."""
        walk = walk or _Walk(_MAX_ENTRIES)
        try:
            root = os.open(directory or self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            yield from _walk_at(root, "", walk, 0)
        finally:
            os.close(root)


class _Walk:
    """One walk's budget of entries, and whether it left some out."""

    __slots__ = ("left", "truncated")

    def __init__(self, max_entries: int) -> None:
        self.left = max_entries
        self.truncated = False


def _walk_at(
    dir_fd: int, prefix: str, walk: _Walk, depth: int
) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files and directories below ``dir_fd``, each with its ``lstat``."""
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError:
        return
    if depth > _MAX_DEPTH:
        walk.truncated = walk.truncated or bool(names)
        return
    for name in names:
        if walk.left <= 0:
            walk.truncated = True
            return
        walk.left -= 1
        try:
            info = os.lstat(name, dir_fd=dir_fd)
        except OSError:
            continue
        path = prefix + name
        if stat.S_ISREG(info.st_mode):
            yield path, info
        elif stat.S_ISDIR(info.st_mode):
            yield path, info
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                yield from _walk_at(child, path + "/", walk, depth + 1)
            finally:
                os.close(child)


def _remove_tree_at(dir_fd: int, name: str) -> None:
    info = os.lstat(name, dir_fd=dir_fd)
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        for entry in os.listdir(fd):
            _remove_tree_at(fd, entry)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def _not_a_file(path: str, exc: OSError) -> OSError:
    if exc.errno == errno.ELOOP:
        return FileNotFoundError(errno.ENOENT, f"{path!r} is a link, not a file")
    if exc.errno == errno.ENOENT:
        return FileNotFoundError(errno.ENOENT, f"no file {path!r}")
    return exc
