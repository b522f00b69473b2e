"""The group database of a machine with one account, ``root`` (see ``pwd.py`` beside this).

Neither WASI nor Pyodide's Emscripten has ``grp``: ``pathlib.Path.group()`` failed.
"""

from __future__ import annotations

import collections
from typing import Any

__all__ = ["getgrall", "getgrgid", "getgrnam", "struct_group"]

_Fields = collections.namedtuple("_Fields", "gr_name gr_passwd gr_gid gr_mem")


class struct_group(_Fields):
    """grp.struct_group: Results from getgr*() routines."""

    __slots__ = ()
    __module__ = "grp"


_ENTRIES = (struct_group("root", "x", 0, []), struct_group("nogroup", "x", 65534, []))


def getgrgid(id: Any) -> struct_group:
    """Return the group database entry for the given numeric group ID."""
    for entry in _ENTRIES:
        if entry.gr_gid == id:
            return entry
    raise KeyError(f"getgrgid(): gid not found: {id}")


def getgrnam(name: str) -> struct_group:
    """Return the group database entry for the given group name."""
    if not isinstance(name, str):
        raise TypeError(f"getgrnam() argument must be str, not {type(name).__name__}")
    for entry in _ENTRIES:
        if entry.gr_name == name:
            return entry
    raise KeyError(f"getgrnam(): name not found: {name!r}")


def getgrall() -> list[struct_group]:
    """Return a list of all available group database entries, in arbitrary order."""
    return list(_ENTRIES)
