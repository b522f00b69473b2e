"""The wasmtime guest's glue: patches that make the stdlib fit this sandbox.

Installed once, before the snapshot is taken:

* stdout and stderr, ``time.sleep`` and ``asyncio``'s loop as every WASI guest
  has them (``_sandlot_wasi``), with sleeps on the ``sleep`` host import.
* ``sandlot.fetch`` (and with it ``urllib.request.urlopen``, ``http.client`` and
  urllib3) goes through the ``fetch`` host import, the egress gate.
* ``os._exit(n)`` ends the run through the ``hard-exit`` host import, with exit code n.
* A missing module's error says what this guest has and where the module is.
* ``sandlot.display`` sends each output through the ``display`` host import.
* Executors and pools run their tasks in-line; starting a thread or a process says so
  (``_sandlot_pools``).
* The process and its files as a locked-down Linux machine shows them: ids, ``os.system``,
  ``os.kill``, ``signal.alarm``, name lookups, disk usage, ``/dev/null``
  (``_sandlot_os``, ``_sandlot_dns``, ``_sandlot_files``).
* Writing ``.pyc`` files is off: the standard library is mounted read-only.
"""

from __future__ import annotations

import sys
import time

import _sandlot_dns
import _sandlot_exec
import _sandlot_files
import _sandlot_hashlib
import _sandlot_http
import _sandlot_multiprocessing
import _sandlot_os
import _sandlot_pools
import _sandlot_ssl
import _sandlot_urllib
import _sandlot_wasi
import sandlot
import sandlot._outputs
from componentize_py_types import Err
from wit_world.imports import host


def install() -> None:
    sys.dont_write_bytecode = True
    sys.stdout = _sandlot_wasi.line_stream(1)
    sys.stderr = _sandlot_wasi.line_stream(2)
    sys.__stdout__ = sys.stdout
    sys.__stderr__ = sys.stderr
    time.sleep = _sandlot_wasi.install_loop(host.sleep)
    sandlot._set_transport(_host_fetch)
    sandlot._outputs.set_transport(_host_display)
    _sandlot_urllib.install()
    _sandlot_http.install_http_client()
    _sandlot_http.install_urllib3_hook()
    _sandlot_pools.install()
    _sandlot_multiprocessing.install()
    _sandlot_ssl.install()
    _sandlot_hashlib.install()
    _sandlot_os.install()
    _sandlot_dns.install()
    _sandlot_files.install()
    _sandlot_files.install_wasi()
    # WASI preview 2's exit carries only success or failure: the host takes the code.
    _sandlot_exec.install_hard_exit(host.hard_exit)
    _sandlot_exec.install_module_help(_module_help)


def _module_help(name: str) -> str:
    # This guest and the data-stack one are alternatives behind runtime "wasmtime": if
    # this one runs, the stack is not what this service runs there.
    text = 'This guest (runtime "wasmtime") has the standard library only and installs no packages.'
    if name in _sandlot_exec.STACK_MODULES:
        return (
            f'{text} {name} is in the data-stack guest of runtime "wasmtime", which this '
            "service does not run (an operator setting: SANDLOT_WASMTIME_GUEST=stack)."
        )
    return (
        f'{text} Pure-Python packages run on runtime "pyodide": name them in "requirements" '
        "(the operator installs them with `make packages`)."
    )


def _host_display(mime_type: str, data: str) -> None:
    try:
        host.display(mime_type, data)
    except Err as refused:
        raise ValueError(str(refused.value)) from None


def _host_fetch(
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    timeout_ms: int,
    follow_redirects: bool,
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    request = host.HttpRequest(
        method=method,
        url=url,
        headers=headers,
        body=body.decode("latin-1"),
        timeout_ms=timeout_ms,
        follow_redirects=follow_redirects,
    )
    try:
        response = host.fetch(request)
    except Err as refused:
        raise sandlot.FetchError(str(refused.value)) from None
    return response.status, response.url, response.headers, response.body.encode("latin-1")
