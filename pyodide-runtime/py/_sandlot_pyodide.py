"""The Pyodide guest's glue: network through the gate, job files, and run().

Installed before the snapshot is taken (see sandbox/engines/pyodide/builder.py);
each run calls :func:`run` once in a fresh interpreter restored from it.
"""

from __future__ import annotations

import base64
import fnmatch
import os
import sys
from typing import Any

import _sandlot_dns
import _sandlot_exec
import _sandlot_files
import _sandlot_hashlib
import _sandlot_http
import _sandlot_multiprocessing
import _sandlot_os
import _sandlot_pools
import _sandlot_urllib
import sandlot
import sandlot._outputs
import workers
from pyodide.ffi import run_sync
from pyodide.http import pyfetch

WORKDIR = "/work"


def install() -> None:
    sys.dont_write_bytecode = True
    sandlot._set_transport(_fetch)
    sandlot._outputs.set_transport(_display)
    _sandlot_urllib.install()
    # http.client has no sockets here; urllib3 (requests) would use its own Emscripten
    # fetch, which knows no timeout or gate errors: both go through sandlot.fetch.
    _sandlot_http.install_http_client()
    _sandlot_http.install_urllib3_hook()
    _sandlot_pools.install()
    _sandlot_multiprocessing.install()
    _sandlot_hashlib.install()
    # Emscripten's system(), getuid() and name lookups ask Deno for what it refuses, and
    # the refusal kills the interpreter; a signal that ends the process did too. These
    # answer as on the WASI guests (Emscripten's /dev/null is real: it stays).
    _sandlot_os.install()
    _sandlot_dns.install()
    _sandlot_files.install()
    _sandlot_exec.install_module_help(_module_help)
    _sandlot_exec.install_hard_exit(_hard_exit)
    _sandlot_exec.hide_frames_from(
        sys.modules[__name__], _sandlot_urllib, _sandlot_http, sandlot, workers
    )


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


async def run(job_json: str) -> str:
    try:
        job: dict[str, Any] = _sandlot_exec.DECODE(job_json)
        _installed[:] = job.pop("installed", None) or []
        files = job.pop("files", None) or {}
        os.makedirs(WORKDIR, exist_ok=True)
        job["cwd"] = WORKDIR
        sandlot._outputs.begin(job)
        outcome = _sandlot_exec.write_files(
            WORKDIR, {name: base64.b64decode(data) for name, data in files.items()}
        ) or sandlot._outputs.finish(await _sandlot_exec.run_job_async(job))
        if job.get("return_files"):
            outcome = {**outcome, "files": _gather_files(WORKDIR, job)}
    except BaseException as exc:  # the host needs an outcome, whatever happened
        outcome = _sandlot_exec.internal_error(exc)
    _sandlot_exec.flush_output()
    return _sandlot_exec.encode_outcome(outcome)


def _display(mime_type: str, data: str) -> None:
    # The worker's sandlotDisplay: streamed to the host, which checks and counts it.
    import js  # type: ignore[import-not-found]  # the Web Worker's globals

    js.sandlotDisplay(mime_type, data)


def _gather_files(root: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The files under ``root`` that match ``job["return_files"]``, for the host to check.

    This file system is the interpreter's own (in memory): nothing here reaches the
    host's. Symlinks are neither followed nor returned; the host re-applies every cap.
    """
    patterns = [str(p).split("/") for p in job["return_files"]]
    room = int(job.get("return_files_max_bytes") or 0)
    per_file = int(job.get("return_file_max_bytes") or 0)
    limit = int(job.get("return_files_max_count") or 0)
    found: list[dict[str, Any]] = []
    for path, size in _walk(root, ""):
        if len(found) >= limit:
            break
        parts = path.split("/")
        if not any(_matches(parts, pattern) for pattern in patterns):
            continue
        entry: dict[str, Any] = {"path": path, "size": size, "data": None}
        if size <= per_file and size <= room:
            try:
                with open(os.path.join(root, path), "rb") as handle:
                    data = handle.read(size + 1)
            except OSError:
                continue
            if len(data) <= size:
                entry["data"] = base64.b64encode(data).decode()
                room -= len(data)
        found.append(entry)
    return found


def _walk(root: str, prefix: str, budget: list[int] | None = None) -> Any:
    budget = budget if budget is not None else [10_000]
    try:
        entries = sorted(os.scandir(os.path.join(root, prefix)), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        budget[0] -= 1
        if budget[0] < 0:
            return
        path = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(root, path, budget)
        elif entry.is_file(follow_symlinks=False):
            yield path, entry.stat(follow_symlinks=False).st_size


def _matches(parts: list[str], pattern: list[str]) -> bool:
    """Glob matching by path part; ``**`` is any number of directories."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and _matches(parts[1:], pattern[1:])
    )


def _fetch(
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    timeout_ms: int,
    follow_redirects: bool,
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    # Synchronous on purpose (sandlot.fetch is sync): JSPI suspends the
    # interpreter while the gate answers.
    request_headers = dict(headers)
    if timeout_ms:
        request_headers["x-sandlot-timeout-ms"] = str(timeout_ms)
    if not follow_redirects:
        # The worker's fetch wrapper hands a redirect from the gate back as it is.
        request_headers["x-sandlot-redirect"] = "manual"
    try:
        response = run_sync(pyfetch(url, method=method, headers=request_headers, body=body or None))
        content = run_sync(response.bytes())
    except Exception as exc:  # JsException, pyodide's AbortError, ...: the fetch failed
        raise sandlot.FetchError(str(exc).removeprefix("TypeError: ")) from None
    final_url = response.url or url
    return response.status, final_url, list(response.headers.items()), bytes(content)
