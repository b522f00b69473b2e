"""The guest: runs inside the CPython 3.14 WebAssembly component.

Two phases:

* Build time. componentize-py imports this module once and snapshots the
  interpreter's memory. Everything imported here (the broad standard library
  named in ``_sandlot_preload``, our patches) is in the snapshot that every run
  starts from, so it costs nothing per run. ``gc.freeze()`` at the end keeps the
  collector from walking that heap on every collection.
* Run time. The host instantiates a fresh component per run and calls ``run``
  once with a JSON job. The outcome goes back as JSON; stdout and stderr go to
  WASI file descriptors that the host captures and streams.

Only guest-visible errors are produced here: an exception in user code is
data (``status: "error"``), never a trap. Limits (fuel, epoch, memory) are
enforced by the host; the guest cannot see or change them.
"""

from __future__ import annotations

import ast
import gc
import io
import json
import linecache
import os
import random
import sys
import traceback
import types
from typing import Any

import _sandlot_boot
import componentize_py_types as cpt
import sandlot
import wit_world
from _sandlot_preload import MODULES

USER_FILENAME = "main.py"
# Bound before any user code runs: code that patches json.dumps must not be
# able to garble the outcome the host reads.
_ENCODE = json.JSONEncoder(ensure_ascii=True).encode
_DECODE = json.JSONDecoder().decode
_CHECK_JSON = json.JSONEncoder(allow_nan=False).encode
_TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
_CO_COROUTINE = 0x80


def _preload() -> None:
    for name in MODULES:
        try:
            __import__(name)
        except BaseException:
            sys.modules.pop(name, None)


_preload()
_sandlot_boot.install()
_SANDBOX_DIRS = tuple(
    sorted(
        {
            os.path.dirname(module.__file__ or "") + "/"
            for module in (sys.modules[__name__], _sandlot_boot, sandlot, wit_world, cpt)
        }
    )
)
gc.collect()
gc.freeze()


class WitWorld(wit_world.WitWorld):
    def run(self, job: str) -> str:
        try:
            outcome = _run_job(_DECODE(job))
        except BaseException as exc:
            outcome = {
                "status": "error",
                "error": {
                    "type": "SandboxInternalError",
                    "message": f"{type(exc).__name__}: {exc}",
                    "traceback": "",
                },
            }
        _sandlot_boot.flush_output()
        try:
            return _ENCODE(outcome)
        except BaseException as exc:
            return _ENCODE({"status": "error", "error": _describe(exc)})


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    _prepare_process(job)
    code: str = job["code"]
    linecache.cache[USER_FILENAME] = (len(code), None, code.splitlines(True), USER_FILENAME)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        value = _execute(code, namespace)
    except SystemExit as exc:
        return _exit_outcome(exc)
    except BaseException as exc:
        return {"status": "error", "error": _describe(exc)}
    result = None if value is None else _describe_value(value, job.get("result_max_bytes", 65536))
    return {"status": "ok", "result": result}


def _prepare_process(job: dict[str, Any]) -> None:
    os.environ.clear()
    os.environ.update(job.get("env") or {})
    cwd = job.get("cwd")
    if cwd:
        os.chdir(cwd)
    sys.argv = [USER_FILENAME]
    sys.stdin = io.StringIO(job.get("stdin") or "")
    # Every instance starts from the same snapshot: reseed from the host's
    # entropy so that runs don't share a random sequence.
    random.seed()


def _execute(code: str, namespace: dict[str, Any]) -> Any:
    """Execute like a notebook cell: the value of a trailing expression is returned."""
    tree = ast.parse(code, USER_FILENAME, "exec")
    tail: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        tail = ast.Expression(tree.body.pop().value)
    value = _evaluate(compile(tree, USER_FILENAME, "exec", flags=_TOP_LEVEL_AWAIT), namespace)
    if tail is not None:
        value = _evaluate(compile(tail, USER_FILENAME, "eval", flags=_TOP_LEVEL_AWAIT), namespace)
    return value


def _evaluate(code: types.CodeType, namespace: dict[str, Any]) -> Any:
    if code.co_flags & _CO_COROUTINE:
        return _sandlot_boot.run_coroutine(eval(code, namespace))
    return eval(code, namespace)


def _exit_outcome(exc: SystemExit) -> dict[str, Any]:
    code = exc.code
    if code is None or code == 0:
        return {"status": "ok", "result": None, "exit_code": 0}
    exit_code = code if isinstance(code, int) else 1
    if not isinstance(code, int):
        print(code, file=sys.stderr)
    return {
        "status": "error",
        "exit_code": exit_code,
        "error": {
            "type": "SystemExit",
            "message": f"exit code {exit_code}",
            "traceback": "",
        },
    }


def _describe(exc: BaseException) -> dict[str, str]:
    """The exception as data, its traceback cut to the user's code and the stdlib."""
    summary = traceback.TracebackException.from_exception(exc)
    _hide_sandbox_frames(summary, set())
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(summary.format()),
    }


def _hide_sandbox_frames(summary: traceback.TracebackException, seen: set[int]) -> None:
    # Frames of this app, the sandlot module and the bindings are ours, not the
    # user's; the user's main.py and the stdlib it called stay. Chained and
    # grouped exceptions are cut the same way.
    if id(summary) in seen:
        return
    seen.add(id(summary))
    summary.stack = traceback.StackSummary.from_list(
        [frame for frame in summary.stack if not frame.filename.startswith(_SANDBOX_DIRS)]
    )
    for nested in (summary.__cause__, summary.__context__, *(summary.exceptions or ())):
        if nested is not None:
            _hide_sandbox_frames(nested, seen)


def _describe_value(value: Any, max_bytes: int) -> dict[str, Any]:
    try:
        text = repr(value)
    except BaseException as exc:
        text = f"<repr failed: {type(exc).__name__}: {exc}>"
    truncated = len(text) > max_bytes
    described: dict[str, Any] = {"repr": text[:max_bytes], "truncated": truncated}
    try:
        encoded = _CHECK_JSON(value)
    except (TypeError, ValueError, RecursionError):
        return described
    if len(encoded) <= max_bytes:
        described["json"] = value
    return described
