"""The process as a locked-down Linux machine without a shell would show it, on every engine.

Agent code probes its process (who am I, run a command, set a timeout alarm) far more often
than it needs one; the guests answered with ``AttributeError`` (WASI has no ids, no
``system``, no ``kill``, no ``alarm``) or, on Pyodide, a dead interpreter (Deno refuses
``getuid`` and ``system``; a signal that ends the process took the interpreter down with
it). :func:`install` gives every engine the same answers:

* ``os.getuid``/``geteuid``/``getgid``/``getegid`` are 0 and ``os.getgroups()`` is
  empty: every file in every guest is owned by uid 0 and gid 0 (WASI has no owners,
  Emscripten's file system says root), so code that compares a file's owner with its own
  id (nltk's data folders, ``netrc``, ``nltk.internals.is_writable``) must find its own
  files its own. An unprivileged 1000 would make every file someone else's. ``getppid``
  is 1 (Pyodide's answer).
* ``os.system(command)`` runs nothing and returns 32512, the wait status of a shell that
  could not be executed (exit status 127, what a machine without ``/bin/sh`` gives), after
  a line on stderr that says why. ``subprocess`` and ``os.popen`` keep raising
  ``OSError``, as on such a machine (there: ``FileNotFoundError`` for ``/bin/sh``); code
  that calls ``os.system('clear')`` or checks its status goes on.
* ``os.kill``/``signal.raise_signal``: this process (its pid, 0 or -1: the group and
  "everyone" are just it) gets the signal as python would handle it: a handler set with
  ``signal.signal`` is called, ``SIGINT`` raises ``KeyboardInterrupt``, an ignored or
  harmless one does nothing, and the rest end the run with exit code 128 + the signal
  (137 for ``SIGKILL``), as a shell reports it. Signal 0 only checks the pid. Pid 1 (the
  parent) is there but out of reach (``PermissionError``); any other pid is not there
  (``ProcessLookupError``). Stop signals are ignored: nothing could continue the run.
* ``signal.alarm``, ``setitimer``, ``getitimer``: timers are kept and count down, but
  their signal never comes: one thread runs in a guest and nothing can interrupt it
  between two bytecodes. So a ``signal.alarm(n)`` timeout around work that finishes
  behaves as on Linux, and work that doesn't is ended by the run's ``wall_ms``.
"""

from __future__ import annotations

import errno
import grp
import operator
import os
import pwd
import signal
import sys
import time
from types import ModuleType
from typing import Any

import _sandlot_hooks

UID = 0
PARENT_PID = 1
NO_SHELL_STATUS = 127 << 8  # os.system's wait status for exit status 127
# Default action ignore (signal(7)); the stop signals are ignored too (module docstring).
_HARMLESS = frozenset({"SIGCHLD", "SIGCONT", "SIGURG", "SIGWINCH", "SIGSTOP", "SIGTSTP"})
_HARMLESS |= {"SIGTTIN", "SIGTTOU"}
ITIMERS = {"ITIMER_REAL": 0, "ITIMER_VIRTUAL": 1, "ITIMER_PROF": 2}
# which -> (when it runs out, on time.monotonic(); its interval in seconds)
_timers: dict[int, tuple[float, float]] = {}


def install() -> None:
    for name in ("getuid", "geteuid", "getgid", "getegid"):
        setattr(os, name, _id(name))
    os.getgroups = getgroups
    os.getppid = getppid
    os.system = system
    for name, function in _WAIT_STATUS.items():
        if not hasattr(os, name):  # WASI has none: os.system's status needs them
            function.__name__ = function.__qualname__ = name
            function.__module__ = "posix"
            setattr(os, name, function)
    os.kill = kill
    signal.raise_signal = raise_signal
    for name, which in ITIMERS.items():
        setattr(signal, name, which)
    if not hasattr(signal, "ItimerError"):
        signal.ItimerError = type("ItimerError", (OSError,), {"__module__": "signal"})  # type: ignore[attr-defined]
    signal.alarm = alarm
    signal.setitimer = setitimer
    signal.getitimer = getitimer
    # pwd and grp (ours, beside this file) are imported above, so that they are in every
    # snapshot (Pyodide's has no files of ours to import from later). Modules that looked
    # for them when they were imported, before ours were there, get them now.
    _sandlot_hooks.after_import("pathlib", _pathlib_owners)
    _sandlot_hooks.after_import("tarfile", _account_modules)
    _sandlot_hooks.after_import("shutil", _account_modules)


def _pathlib_owners(pathlib: ModuleType) -> None:
    # Path.owner() and group() are defined to raise when pwd or grp was missing.
    home = sys.modules[pathlib.Path.__module__]
    if getattr(home, "pwd", pwd) is None:
        home.pwd = pwd  # type: ignore[attr-defined]
        pathlib.Path.owner = _owner
    if getattr(home, "grp", grp) is None:
        home.grp = grp  # type: ignore[attr-defined]
        pathlib.Path.group = _group


def _owner(self: Any, *, follow_symlinks: bool = True) -> str:
    """Return the login name of the file owner."""
    return str(pwd.getpwuid(self.stat(follow_symlinks=follow_symlinks).st_uid).pw_name)


def _group(self: Any, *, follow_symlinks: bool = True) -> str:
    """Return the group name of the file gid."""
    return str(grp.getgrgid(self.stat(follow_symlinks=follow_symlinks).st_gid).gr_name)


def _account_modules(module: ModuleType) -> None:
    # tarfile names the owners of what it archives; shutil.make_archive takes names.
    for name, value in (
        ("pwd", pwd),
        ("grp", grp),
        ("getpwnam", pwd.getpwnam),
        ("getgrnam", grp.getgrnam),
    ):
        if hasattr(module, name) and getattr(module, name) is None:
            setattr(module, name, value)


def _id(name: str) -> Any:
    def ident() -> int:
        return UID

    ident.__name__ = ident.__qualname__ = name
    ident.__module__ = "posix"
    ident.__doc__ = f"Return the current process's {_WHOSE[name]} id."
    return ident


_WHOSE = {"getuid": "user", "geteuid": "effective user", "getgid": "group"}
_WHOSE["getegid"] = "effective group"


def getgroups() -> list[int]:
    """Return list of supplemental group IDs for the process (none here)."""
    return []


def getppid() -> int:
    """Return the parent's process id (1: nothing in the sandbox started this one)."""
    return PARENT_PID


def system(command: str) -> int:
    """Execute the command in a subshell: there is none, so it fails as without /bin/sh."""
    os.fspath(command)  # python's argument check: str, bytes or a path
    print(
        f"sh: can't run {command!r}: the sandbox has no shell and cannot start processes "
        "(exit status 127)",
        file=sys.stderr,
    )
    return NO_SHELL_STATUS


# Reading a wait status (Linux's encoding), as python's os module offers it.
_WAIT_STATUS: dict[str, Any] = {
    "WIFEXITED": lambda status: status & 0x7F == 0,
    "WEXITSTATUS": lambda status: (status >> 8) & 0xFF,
    "WIFSIGNALED": lambda status: status & 0x7F not in (0, 0x7F),
    "WTERMSIG": lambda status: status & 0x7F,
    "WIFSTOPPED": lambda status: status & 0xFF == 0x7F,
    "WSTOPSIG": lambda status: (status >> 8) & 0xFF,
    "WCOREDUMP": lambda status: bool(status & 0x80),
    "WIFCONTINUED": lambda status: status == 0xFFFF,
}


def _waitstatus_to_exitcode(status: int) -> int:
    """Convert a wait status to an exit code: the code, or -signal for a killed process."""
    status = operator.index(status)
    if status & 0x7F == 0:
        return (status >> 8) & 0xFF
    if status & 0x7F != 0x7F:
        return -(status & 0x7F)
    raise ValueError(f"invalid wait status: {status}")


_WAIT_STATUS["waitstatus_to_exitcode"] = _waitstatus_to_exitcode


def kill(pid: int, signal_number: int, /) -> None:
    """Kill a process with a signal: only this one can get one (module docstring)."""
    pid, number = operator.index(pid), operator.index(signal_number)
    _check_signal(number)
    if pid not in (os.getpid(), 0, -1, -os.getpid()):
        if pid == PARENT_PID:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))
        raise ProcessLookupError(errno.ESRCH, "No such process")
    if number:
        _deliver(number, sys._getframe(1))


def raise_signal(signal_number: int, /) -> None:
    """Send a signal to the executing process."""
    number = operator.index(signal_number)
    if not 1 <= number < signal.NSIG:
        raise ValueError("signal number out of range")
    _deliver(number, sys._getframe(1))


def _check_signal(number: int) -> None:
    if not 0 <= number < signal.NSIG:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


def _deliver(number: int, frame: Any) -> None:
    """What the signal does to this process: python's handler runs, or the default action."""
    try:
        name = signal.Signals(number).name
    except ValueError:  # a real-time signal: default action terminate
        name = ""
    handler = None if name in ("SIGKILL", "SIGSTOP") else signal.getsignal(number)
    if callable(handler):
        handler(number, frame)
    elif handler == signal.SIG_IGN or name in _HARMLESS:
        return
    else:
        os._exit(128 + number)  # the run ends as a killed process's shell reports it


def alarm(seconds: int, /) -> int:
    """Arrange for SIGALRM after ``seconds``; it never arrives here (module docstring).

    Returns the whole seconds left of the previous alarm, as Linux rounds them."""
    left, _ = setitimer(ITIMERS["ITIMER_REAL"], float(operator.index(seconds)))
    if not left:
        return 0
    return max(1, int(left + 0.5))


def setitimer(which: int, seconds: float, interval: float = 0.0, /) -> tuple[float, float]:
    """Set a timer that counts down (its signal never arrives); returns the old one."""
    which = _check_timer(which)
    seconds, interval = float(seconds), float(interval)
    if seconds < 0 or interval < 0:
        raise signal.ItimerError(errno.EINVAL, os.strerror(errno.EINVAL))  # type: ignore[attr-defined]
    previous = getitimer(which)
    if seconds > 0:
        _timers[which] = (time.monotonic() + seconds, interval)
    else:
        _timers.pop(which, None)
    return previous


def getitimer(which: int, /) -> tuple[float, float]:
    """The timer's seconds left and its interval, (0.0, 0.0) when it is off."""
    timer = _timers.get(_check_timer(which))
    if timer is None:
        return (0.0, 0.0)
    ends, interval = timer
    left = ends - time.monotonic()
    if left > 0:
        return (left, interval)
    if interval > 0:  # a periodic timer keeps running out, one interval after another
        return (interval - (-left % interval), interval)
    return (0.0, 0.0)


def _check_timer(which: int) -> int:
    which = operator.index(which)
    if which not in ITIMERS.values():
        raise signal.ItimerError(errno.EINVAL, os.strerror(errno.EINVAL))  # type: ignore[attr-defined]
    return which
