"""The password database of a machine with one account, ``root``, whose home is ``/work``.

Neither WASI nor Pyodide's Emscripten has ``pwd``, so ``getpass.getuser()`` raised
``OSError``, ``pathlib.Path.owner()`` failed and ``expanduser("~root")`` did not expand.
The run is uid 0 (``_sandlot_os``) and its home is its working directory (the run's
``HOME``, ``_sandlot_exec.DEFAULT_ENV``); ``nobody`` is there as on any Linux machine.
No account has a shell: the sandbox has none.
"""

from __future__ import annotations

import collections
from typing import Any

__all__ = ["getpwall", "getpwnam", "getpwuid", "struct_passwd"]

_Fields = collections.namedtuple(
    "_Fields", "pw_name pw_passwd pw_uid pw_gid pw_gecos pw_dir pw_shell"
)


class struct_passwd(_Fields):
    """pwd.struct_passwd: Results from getpw*() routines."""

    __slots__ = ()
    __module__ = "pwd"


_ENTRIES = (
    struct_passwd("root", "x", 0, 0, "root", "/work", "/usr/sbin/nologin"),
    struct_passwd("nobody", "x", 65534, 65534, "nobody", "/nonexistent", "/usr/sbin/nologin"),
)


def getpwuid(uid: Any, /) -> struct_passwd:
    """Return the password database entry for the given numeric user ID."""
    for entry in _ENTRIES:
        if entry.pw_uid == uid:
            return entry
    raise KeyError(f"getpwuid(): uid not found: {uid}")


def getpwnam(name: str, /) -> struct_passwd:
    """Return the password database entry for the given user name."""
    if not isinstance(name, str):
        raise TypeError(f"getpwnam() argument must be str, not {type(name).__name__}")
    for entry in _ENTRIES:
        if entry.pw_name == name:
            return entry
    raise KeyError(f"getpwnam(): name not found: {name!r}")


def getpwall() -> list[struct_passwd]:
    """Return a list of all available password database entries, in arbitrary order."""
    return list(_ENTRIES)
