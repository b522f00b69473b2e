"""Running one job inside a guest interpreter; shared by every engine's guest.

Not imported by the host: each engine's builder puts this file (and the
``sandlot`` package beside it) into its guest. The engine's own glue calls
:func:`run_job` (synchronous engines) or :func:`run_job_async` (engines that
run Python inside an event loop, like Pyodide) with the job as a dict and
gets the outcome as a dict:

``{"status": "ok" | "error", "result": {...} | None, "error": {...} | None,
"exit_code": int | None}``

Guest failures are data here; only a bug in this file raises.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import io
import json
import linecache
import operator
import os
import random
import sys
import traceback
import types
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

USER_FILENAME = "main.py"
_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_CO_COROUTINE = 0x80
# Bound before any user code runs: code that patches json must not be able to
# garble the outcome the host reads.
ENCODE = json.JSONEncoder(ensure_ascii=True).encode
DECODE = json.JSONDecoder().decode
_CHECK_JSON = json.JSONEncoder(allow_nan=False).encode

# What the data-stack guest (runtime wasmtime, SANDLOT_WASMTIME_GUEST=stack) can import
# beyond the stdlib, by import name: the common ones, for the missing-module hint.
STACK_MODULES = frozenset(
    "numpy pandas scipy sklearn statsmodels matplotlib seaborn PIL lxml openpyxl xlsxwriter "
    "xlrd yaml jinja2 sympy networkx regex dateutil tzdata bs4 html5lib tabulate patsy "
    "joblib tqdm attrs toolz cloudpickle pypdf reportlab xmltodict defusedxml".split()
)
# What a run's environment holds unless its job's env says otherwise: a login's basics,
# so that "~" expands (os.path.expanduser, pathlib.Path.home, nltk, scikit-learn's data
# home) to the run's writable working directory, and shutil.which finds nothing rather
# than failing. Nothing of the host's.
DEFAULT_ENV = {"HOME": "/work", "PATH": "/usr/local/bin:/usr/bin:/bin"}
_DEFAULT_DATA = {name.encode(): value.encode() for name, value in DEFAULT_ENV.items()}
# The run's room for files in bytes (the job's "disk_bytes"), for os.statvfs and
# shutil.disk_usage (_sandlot_files); None when the host gave none.
disk_bytes: int | None = None
# sys.excepthook as the engine left it (Pyodide has its own), before the code ran.
_engine_excepthook = sys.__excepthook__
# Set by the engine's glue (install_module_help): what this guest has and how to add more.
_module_help: Callable[[str], str] | None = None

# Frames from these directories are the sandbox's, not the user's; engines add
# their own glue's directory with hide_frames_from().
_SANDBOX_DIRS: set[str] = {os.path.dirname(__file__) + "/"}


def hide_frames_from(*modules: types.ModuleType) -> None:
    """Cut frames of these modules' directories from tracebacks shown to the user."""
    for module in modules:
        _SANDBOX_DIRS.add(os.path.dirname(module.__file__ or "") + "/")


def run_job(
    job: dict[str, Any], run_coroutine: Callable[[Coroutine[Any, Any, Any]], Any]
) -> dict[str, Any]:
    """Run a job; top-level ``await`` code is driven by ``run_coroutine``."""
    namespace, filename = _prepare(job)
    try:
        codes = _compile_cell(job["code"], filename)
    except BaseException as exc:
        return _at_exit(_uncaught(exc, user_frames=False))
    try:
        value = None
        for code in codes:
            value = eval(code, namespace)
            if code.co_flags & _CO_COROUTINE:
                value = run_coroutine(value)
    except SystemExit as exc:
        return _at_exit(_exit_outcome(exc))
    except BaseException as exc:
        return _at_exit(_uncaught(exc))
    return _at_exit(_ok(value, job))


async def run_job_async(job: dict[str, Any]) -> dict[str, Any]:
    """Run a job inside the running event loop (top-level ``await`` is awaited)."""
    namespace, filename = _prepare(job)
    try:
        codes = _compile_cell(job["code"], filename)
    except BaseException as exc:
        return _at_exit(_uncaught(exc, user_frames=False))
    try:
        value = None
        for code in codes:
            value = eval(code, namespace)
            if code.co_flags & _CO_COROUTINE:
                value = await value
    except SystemExit as exc:
        return _at_exit(_exit_outcome(exc))
    except BaseException as exc:
        return _at_exit(_uncaught(exc))
    return _at_exit(_ok(value, job))


def internal_error(exc: BaseException) -> dict[str, Any]:
    """The outcome when the glue itself failed (never the user's code)."""
    return {
        "status": "error",
        "error": {
            "type": "SandboxInternalError",
            "message": f"{type(exc).__name__}: {exc}",
            "traceback": "",
        },
    }


def write_files(workdir: str, files: dict[str, bytes]) -> dict[str, Any] | None:
    """Write a job's files under ``workdir``; None, or an error outcome naming the file.

    The host already refused paths that can't work together (``a`` beside ``a/b``); what the
    file system still refuses ends the run with an error, never the interpreter.
    """
    for name, data in files.items():
        path = os.path.join(workdir, name)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            return {
                "status": "error",
                "error": {
                    "type": type(exc).__name__,
                    "message": f"files.{name}: could not be written to the working directory "
                    f"({exc.strerror or exc})",
                    "traceback": "",
                },
            }
    return None


def flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        # A stream the code closed or replaced has nothing of ours to flush.
        with contextlib.suppress(Exception):
            stream.flush()


def encode_outcome(outcome: dict[str, Any]) -> str:
    try:
        return ENCODE(outcome)
    except BaseException as exc:  # e.g. the user patched json's internals
        return ENCODE({"status": "error", "error": describe(exc)})


def _prepare(job: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Set the interpreter up for the job: its namespace, and the file name its code is
    compiled under."""
    reset_environ(job.get("env"))
    cwd = job.get("cwd")
    # chdir costs ~0.1 ms under WASI (the path is resolved on the host); an instance
    # that ran its warm-up job is there already.
    if cwd and _getcwd() != cwd:
        os.chdir(cwd)
    sys.argv = [USER_FILENAME]
    global _engine_excepthook, disk_bytes
    _engine_excepthook = sys.excepthook
    disk_bytes = job.get("disk_bytes")
    # Callbacks the sandbox's own modules registered are not the code's to run.
    atexit._clear()
    sys.stdin = io.StringIO(job.get("stdin") or "")
    code = job["code"]
    if job.get("session"):
        namespace = _session_module().__dict__
        filename = _next_turn_filename()
    else:
        # Every instance starts from the same snapshot: reseed from the host's
        # entropy so that runs don't share a random sequence.
        random.seed()
        namespace, filename = _main_module().__dict__, USER_FILENAME
    # mtime None: linecache.checkcache() keeps the entry (there is no such file to check).
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    return namespace, filename


def reset_environ(env: dict[str, str] | None = None) -> None:
    """Make ``os.environ`` the defaults with ``env`` over them.

    Each variable set is a ``putenv`` (measured per run: 4 us on the data-stack guest, 10 us
    on the component, 40 us on Pyodide): nothing is set when the environment holds just the
    defaults already, as an instance fresh from its snapshot does (below), and ``env`` is
    empty. The code may have replaced ``os.environ``: then it is cleared and set as before.
    """
    if not env and getattr(os.environ, "_data", None) == _DEFAULT_DATA:
        return
    os.environ.clear()
    os.environ.update(DEFAULT_ENV)
    os.environ.update(env or {})


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the code removed its working directory
        return None


# A session's ``__main__``: made by its first turn, kept by the ones after it (the host
# keeps the instance between turns), like a notebook's cells sharing one namespace.
_session_main: types.ModuleType | None = None
# The session's turns so far that reached the interpreter.
_session_turns = 0


def _next_turn_filename() -> str:
    """The name the session's next turn is compiled under: ``<turn-1>``, ``<turn-2>``, ...

    Each turn under its own name, its source kept in linecache for the session's life
    (like python's own REPL, ``<python-input-N>``): a traceback through a function an
    earlier turn defined shows that turn's line, not the current turn's.
    """
    global _session_turns
    _session_turns += 1
    return f"<turn-{_session_turns}>"


def _session_module() -> types.ModuleType:
    """The session's ``__main__``: its globals, imports and state persist across turns.

    Reseeds ``random`` only on the first turn, so ``random.seed(n)`` in one turn holds in
    the next.
    """
    global _session_main
    if _session_main is None:
        random.seed()
        _session_main = _main_module()
    sys.modules["__main__"] = _session_main
    return _session_main


def _main_module() -> types.ModuleType:
    """A fresh ``__main__``, registered like ``python main.py`` does.

    Pickle, unittest.main(), dataclasses and typing look the code's classes and
    functions up in ``sys.modules["__main__"]``: it has to be the code's own module.
    """
    main = types.ModuleType("__main__")
    main.__file__ = os.path.join(os.getcwd(), USER_FILENAME)
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    return main


def _compile_cell(code: str, filename: str) -> list[types.CodeType]:
    """Like a notebook cell: the body, then the trailing expression (if any) to evaluate."""
    # A cell that is one expression (`print(x)`, `df.describe()`) is compiled once as it
    # is; the parse below and the two compiles from its tree cost ~3x that (in WebAssembly,
    # ~60 us of a one-line run). Anything else fails here at its first statement.
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            single = compile(code, filename, "eval", flags=_TOP_LEVEL_AWAIT)
        except SyntaxError:
            single = None
    if single is not None:
        for w in warned:  # as the compiler would have warned (a failed try: the parse will)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return [single]
    tree = ast.parse(code, filename, "exec")
    tail: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        tail = ast.Expression(tree.body.pop().value)
    codes = [compile(tree, filename, "exec", flags=_TOP_LEVEL_AWAIT)]
    if tail is not None:
        codes.append(compile(tail, filename, "eval", flags=_TOP_LEVEL_AWAIT))
    return codes


def _ok(value: Any, job: dict[str, Any]) -> dict[str, Any]:
    try:
        import sandlot._outputs  # the guest's; imported here so this file loads anywhere

        sandlot._outputs.show_result(value)  # a DataFrame's table, an image
    except BaseException as exc:  # a broken _repr_html_ is the user's problem
        return {"status": "error", "error": describe(exc)}
    result = None if value is None else _describe_value(value, job.get("result_max_bytes", 65536))
    return {"status": "ok", "result": result}


def _exit_outcome(exc: SystemExit) -> dict[str, Any]:
    code = exc.code
    if code is None or code == 0:
        return {"status": "ok", "result": None, "exit_code": 0}
    # int(): unittest.main() exits with True, which must be 1, not JSON's true.
    exit_code = int(code) if isinstance(code, int) else 1
    if not isinstance(code, int):
        print(code, file=sys.stderr)
    return {
        "status": "error",
        "exit_code": exit_code,
        "error": {"type": "SystemExit", "message": f"exit code {exit_code}", "traceback": ""},
    }


def exit_outcome(code: int) -> dict[str, Any]:
    """The outcome of ``os._exit(code)``: ``ok`` for 0, else ``error`` with the code."""
    if code == 0:
        return {"status": "ok", "result": None, "exit_code": 0}
    return {
        "status": "error",
        "exit_code": code,
        "error": {"type": "SystemExit", "message": f"exit code {code}", "traceback": ""},
    }


def install_hard_exit(hard_exit: Callable[[int], Any]) -> None:
    """Make ``os._exit(n)`` flush stdout/stderr and end the run at once through ``hard_exit``.

    ``hard_exit`` must not return: it ends the instance (no ``finally``, no atexit), and
    the host reports exit code ``n`` (see :func:`exit_outcome`).
    """

    def _exit(status: int, /) -> None:
        code = operator.index(status)
        flush_output()
        hard_exit(code)
        raise SystemExit(code)  # only if hard_exit failed to end the instance

    os._exit = _exit


def install_module_help(module_help: Callable[[str], str]) -> None:
    """``module_help(name)`` explains a missing top-level module; added to its error."""
    global _module_help
    _module_help = module_help


def _add_module_help(exc: BaseException) -> str | None:
    name = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if not name or "." in name or _module_help is None:
        return None  # a submodule of a package that is there: not a missing package
    try:
        help_text = _module_help(name)
        exc.add_note(help_text)
    except Exception:  # the code broke what the help needs: the error stays as python's
        return None
    return help_text


def _uncaught(exc: BaseException, *, user_frames: bool = True) -> dict[str, Any]:
    """The outcome of an uncaught exception, its traceback also written to stderr like python.

    ``user_frames=False`` is for the code failing to compile: python shows no frame then.
    """
    help_text = _add_module_help(exc)
    error = describe(exc, user_frames=user_frames)
    if help_text:
        error["message"] += f". {help_text}"
    try:
        if sys.excepthook is _engine_excepthook:
            sys.stderr.write(error["traceback"])
        else:  # the code installed its own hook: python would call it
            sys.excepthook(type(exc), exc, exc.__traceback__)
    except BaseException:  # a closed or broken stderr: the outcome still has it
        pass
    return {"status": "error", "error": error}


def _at_exit(outcome: dict[str, Any]) -> dict[str, Any]:
    """Run the code's atexit callbacks, as python does when main.py ends."""
    # python prints what a callback raises (sys.exit too) and keeps the exit status.
    hook = sys.unraisablehook
    sys.unraisablehook = _print_unraisable
    try:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
    finally:
        sys.unraisablehook = hook
    return outcome


def _print_unraisable(unraisable: Any) -> None:
    """sys.unraisablehook's default output, with the sandbox's frames cut."""
    message = unraisable.err_msg or "Exception ignored in"
    if unraisable.object is not None:
        message += f": {unraisable.object!r}\n"
    else:
        message += ":\n"
    text = describe(unraisable.exc_value)["traceback"] if unraisable.exc_value else ""
    with contextlib.suppress(BaseException):
        sys.stderr.write(message + text)


def describe(exc: BaseException, *, user_frames: bool = True) -> dict[str, str]:
    """The exception as data, its traceback cut to the user's code and the stdlib."""
    summary = traceback.TracebackException.from_exception(exc)
    _hide_sandbox_frames(summary, set())
    if not user_frames:
        summary.stack = traceback.StackSummary.from_list([])
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(summary.format()),
    }


def _hide_sandbox_frames(summary: traceback.TracebackException, seen: set[int]) -> None:
    # The user's main.py and the stdlib it called stay; chained and grouped
    # exceptions are cut the same way.
    if id(summary) in seen:
        return
    seen.add(id(summary))
    hidden = tuple(_SANDBOX_DIRS)
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if not (frame.filename or "").startswith(hidden)]
    )
    for nested in (summary.__cause__, summary.__context__, *(summary.exceptions or ())):
        if nested is not None:
            _hide_sandbox_frames(nested, seen)


def _describe_value(value: Any, max_bytes: int) -> dict[str, Any]:
    try:
        text = repr(value)
    except BaseException as exc:  # a broken __repr__ is the user's problem
        text = f"<repr failed: {type(exc).__name__}: {exc}>"
    described: dict[str, Any] = {"repr": text[:max_bytes], "truncated": len(text) > max_bytes}
    try:
        encoded = _CHECK_JSON(value)
    except (TypeError, ValueError, RecursionError):
        return described
    if len(encoded) <= max_bytes:
        described["json"] = value
    return described


# The snapshot each instance starts from holds the defaults (nothing of the build's own
# environment), so a run whose job sets no variable has none to set.
reset_environ()
