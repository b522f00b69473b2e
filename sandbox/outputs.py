"""What a run hands back besides text: rich outputs and files, checked on the host.

* :func:`check_display` validates one output a guest sent (``sandlot.display``, a chart,
  a DataFrame's table): a mime type from :data:`DISPLAY_TYPES`, base64 that decodes for
  binary types; returns it with the bytes it counts against ``output_bytes``.
* :func:`check_pattern` validates ``return_files`` globs; :func:`matches` is their
  semantics (``*``, ``?``, ``[...]`` within one path part; ``**`` any number of parts).
* :func:`collect_files` reads the matching files from a run's work directory on the
  host after the run (the wasmtime guests' ``/work`` is a host directory). It never
  follows a link the guest made: directories and files are opened relative to their
  parent with ``O_NOFOLLOW``, and only regular files are read.
* :func:`guest_files` re-checks files an engine gathered inside its guest (Pyodide's
  file system is in memory).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fnmatch
import mimetypes
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.events import Display, ReturnedFile

__all__ = [
    "BINARY_DISPLAY_TYPES",
    "DISPLAY_TYPES",
    "MAX_PATTERNS",
    "FileCaps",
    "check_display",
    "check_pattern",
    "collect_files",
    "guest_files",
    "matches",
    "mime_type_of",
]

BINARY_DISPLAY_TYPES = frozenset({"image/png", "image/jpeg", "image/gif"})
DISPLAY_TYPES = BINARY_DISPLAY_TYPES | {
    "image/svg+xml",
    "text/html",
    "text/markdown",
    "text/latex",
    "text/plain",
    "application/json",
}
MAX_PATTERNS = 20
_MAX_PATTERN_CHARS = 255
# A guest can make a million empty files; the walk stops looking after this many entries.
_MAX_WALK_ENTRIES = 10_000
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class FileCaps:
    """How much of the work dir comes back: bytes in all, bytes per file, files listed."""

    max_bytes: int = 10 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    max_count: int = 100

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_file_bytes", "max_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def check_display(mime_type: Any, data: Any) -> tuple[Display, int]:
    """The output and the bytes it counts; ValueError saying what is wrong with it."""
    if not isinstance(mime_type, str) or mime_type not in DISPLAY_TYPES:
        raise ValueError(
            f"mime_type {str(mime_type)[:80]!r} can't be displayed; "
            f"use one of {', '.join(sorted(DISPLAY_TYPES))}"
        )
    if not isinstance(data, str):
        raise ValueError(f"data for {mime_type} must be a string")
    if mime_type in BINARY_DISPLAY_TYPES:
        try:
            size = len(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            raise ValueError(f"data for {mime_type} is not valid base64") from None
    else:
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError(f"data for {mime_type} is not valid Unicode text") from None
    return Display(mime_type=mime_type, data=data), size


def check_pattern(pattern: str) -> None:
    """Raise ValueError unless ``pattern`` is a relative glob inside the work dir."""
    parts = pattern.split("/")
    if (
        not pattern
        or len(pattern) > _MAX_PATTERN_CHARS
        or pattern.startswith("/")
        or "\\" in pattern
        or "\x00" in pattern
        or any(part in ("", ".", "..") for part in parts)
        or len(parts) > _MAX_DEPTH
    ):
        raise ValueError(
            f"{pattern[:80]!r} must be a relative glob like '*.csv' or 'charts/**/*.png' "
            f"(no leading '/', no '.' or '..' parts, no empty parts, no backslashes, "
            f"at most {_MAX_PATTERN_CHARS} characters)"
        )


def matches(path: str, pattern: str) -> bool:
    """Whether the relative ``path`` matches the glob ``pattern`` (see the module doc)."""
    return _match(path.split("/"), pattern.split("/"))


def _match(parts: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return (
        bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(parts[1:], pattern[1:])
    )


def mime_type_of(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"


def collect_files(
    workdir: Path, patterns: tuple[str, ...], caps: FileCaps
) -> tuple[ReturnedFile, ...]:
    """The regular files under ``workdir`` matching ``patterns``, sorted by path, capped."""
    if not patterns:
        return ()
    found: list[ReturnedFile] = []
    room = caps.max_bytes
    try:
        root = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return ()
    try:
        for dir_fd, name, path in _walk(root, "", [_MAX_WALK_ENTRIES], 0):
            if len(found) >= caps.max_count:
                break
            if not any(matches(path, pattern) for pattern in patterns):
                continue
            entry = _read_file(dir_fd, name, path, min(room, caps.max_file_bytes))
            if entry is not None:
                room -= len(base64.b64decode(entry.data)) if entry.data else 0
                found.append(entry)
    finally:
        os.close(root)
    return tuple(found)


def _walk(
    dir_fd: int, prefix: str, budget: list[int], depth: int
) -> Iterator[tuple[int, str, str]]:
    """(fd of the parent directory, name, relative path) of every entry that is no directory."""
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError:
        return
    for name in names:
        budget[0] -= 1
        if budget[0] < 0:
            return
        path = f"{prefix}/{name}" if prefix else name
        try:
            info = os.lstat(name, dir_fd=dir_fd)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            if depth + 1 >= _MAX_DEPTH:
                continue
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                yield from _walk(child, path, budget, depth + 1)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            yield dir_fd, name, path


def _read_file(dir_fd: int, name: str, path: str, room: int) -> ReturnedFile | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None  # a link (ELOOP), or gone
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        size = info.st_size
        if size > room:
            return ReturnedFile(path, size, mime_type_of(path), None, truncated=True)
        chunks, left = [], size + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > room:
            return ReturnedFile(path, len(data), mime_type_of(path), None, truncated=True)
        return ReturnedFile(
            path, len(data), mime_type_of(path), base64.b64encode(data).decode(), False
        )
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def guest_files(items: Any, patterns: tuple[str, ...], caps: FileCaps) -> tuple[ReturnedFile, ...]:
    """Files a guest gathered itself (``{path, size, data}``), checked as if read here.

    Entries that aren't well-formed, don't match a pattern or repeat a path are dropped;
    the caps are applied again, whatever the guest claimed.
    """
    if not isinstance(items, list):
        return ()
    found: list[ReturnedFile] = []
    seen: set[str] = set()
    room = caps.max_bytes
    for item in items:
        if len(found) >= caps.max_count:
            break
        if not isinstance(item, dict):
            continue
        path, data, size = item.get("path"), item.get("data"), item.get("size")
        if (
            not isinstance(path, str)
            or path in seen
            or not _plain_path(path)
            or not any(matches(path, pattern) for pattern in patterns)
        ):
            continue
        seen.add(path)
        limit = min(room, caps.max_file_bytes)
        if isinstance(data, str):
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(raw) <= limit:
                room -= len(raw)
                found.append(ReturnedFile(path, len(raw), mime_type_of(path), data, False))
                continue
            size = len(raw)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            continue
        found.append(ReturnedFile(path, size, mime_type_of(path), None, truncated=True))
    return tuple(found)


def _plain_path(path: str) -> bool:
    parts = path.split("/")
    return (
        bool(path)
        and not path.startswith("/")
        and all(part not in ("", ".", "..") for part in parts)
    )
