"""The Pyodide guest's glue: network through the gate, job files, and run().

Installed before the snapshot is taken (see sandbox/engines/pyodide/builder.py);
each run calls :func:`run` once in a fresh interpreter restored from it.
"""

from __future__ import annotations

import base64
import errno
import os
import sys
from typing import Any

import _sandlot_exec
import _sandlot_urllib
import sandlot
import workers
from pyodide.ffi import run_sync
from pyodide.http import pyfetch

WORKDIR = "/work"


def install() -> None:
    sys.dont_write_bytecode = True
    # emscripten's system() asks Deno to spawn a process: Deno refuses, and the
    # refusal kills the interpreter. Fail like a platform without processes.
    os.system = _no_processes
    sandlot._set_transport(_fetch)
    _sandlot_urllib.install()
    _sandlot_exec.install_module_help(_module_help)
    _sandlot_exec.install_hard_exit(_hard_exit)
    _sandlot_exec.hide_frames_from(sys.modules[__name__], _sandlot_urllib, sandlot, workers)


_installed: list[str] = []  # the operator's packages (names in the lock file), per run


def _module_help(name: str) -> str:
    installed = ", ".join(sorted(_installed)) or "none"
    text = (
        f"Installed here beyond the standard library: {installed}. More pure-Python packages: "
        'the operator adds them with `make packages`, then a run names them in "requirements".'
    )
    if name in _sandlot_exec.STACK_MODULES:
        text += (
            f" {name} is not available on Pyodide; it is in the data-stack guest of runtime "
            '"wasmtime" (an operator setting: SANDLOT_WASMTIME_GUEST=stack).'
        )
    return text


_emscripten_exit = os._exit


def _hard_exit(code: int) -> None:
    # The worker reports the run's end first: Emscripten's exit then takes the
    # interpreter down (no finally, no atexit), and the host terminates the worker.
    import js  # type: ignore[import-not-found]

    js.sandlotHardExit(_sandlot_exec.encode_outcome(_sandlot_exec.exit_outcome(code)))
    _emscripten_exit(code)


def _no_processes(command: str) -> int:
    raise OSError(errno.ENOSYS, "the sandbox cannot start processes")


async def run(job_json: str) -> str:
    try:
        job: dict[str, Any] = _sandlot_exec.DECODE(job_json)
        _installed[:] = job.pop("installed", None) or []
        files = job.pop("files", None) or {}
        os.makedirs(WORKDIR, exist_ok=True)
        job["cwd"] = WORKDIR
        outcome = _sandlot_exec.write_files(
            WORKDIR, {name: base64.b64decode(data) for name, data in files.items()}
        ) or await _sandlot_exec.run_job_async(job)
    except BaseException as exc:  # the host needs an outcome, whatever happened
        outcome = _sandlot_exec.internal_error(exc)
    _sandlot_exec.flush_output()
    return _sandlot_exec.encode_outcome(outcome)


def _fetch(
    method: str, url: str, headers: list[tuple[str, str]], body: bytes, timeout_ms: int
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    # Synchronous on purpose (sandlot.fetch is sync): JSPI suspends the
    # interpreter while the gate answers.
    request_headers = dict(headers)
    if timeout_ms:
        request_headers["x-sandlot-timeout-ms"] = str(timeout_ms)
    try:
        response = run_sync(pyfetch(url, method=method, headers=request_headers, body=body or None))
        content = run_sync(response.bytes())
    except Exception as exc:  # JsException, pyodide's AbortError, ...: the fetch failed
        raise sandlot.FetchError(str(exc).removeprefix("TypeError: ")) from None
    final_url = response.url or url
    return response.status, final_url, list(response.headers.items()), bytes(content)
