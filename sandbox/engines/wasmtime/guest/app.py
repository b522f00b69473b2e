"""The wasmtime guest: runs inside the CPython 3.14 WebAssembly component.

Two phases:

* Build time. componentize-py imports this module once and snapshots the
  interpreter's memory. Everything imported here (the broad standard library
  named in ``_sandlot_preload``, our glue) is in the snapshot that every run
  starts from, so it costs nothing per run. ``gc.freeze()`` at the end keeps the
  collector from walking that heap on every collection.
* Run time. The host instantiates a fresh component per run and calls ``run``
  once with a JSON job (see ``_sandlot_exec``). The outcome goes back as JSON;
  stdout and stderr go to WASI file descriptors that the host captures.

Limits (CPU time, epoch, memory) are enforced by the host; the guest cannot see or
change them.
"""

from __future__ import annotations

import gc
import sys

import _sandlot_exec
import _sandlot_http
import _sandlot_urllib
import _sandlot_wasi
import _sandlot_wasmtime
import componentize_py_types
import sandlot
import sandlot._outputs
import wit_world
import workers
from _sandlot_preload import MODULES


def _preload() -> None:
    for name in MODULES:
        try:
            __import__(name)
        except BaseException:  # a module that can't load here is simply absent
            sys.modules.pop(name, None)


_preload()
_sandlot_wasmtime.install()
_sandlot_exec.hide_frames_from(
    sys.modules[__name__],
    _sandlot_wasmtime,
    _sandlot_urllib,
    _sandlot_http,
    sandlot,
    wit_world,
    componentize_py_types,
    workers,
)
gc.collect()
gc.freeze()


class WitWorld(wit_world.WitWorld):
    def run(self, job: str) -> str:
        try:
            job_dict = _sandlot_exec.DECODE(job)
            sandlot._outputs.begin(job_dict)
            outcome = _sandlot_exec.run_job(job_dict, _sandlot_wasi.run_coroutine)
            outcome = sandlot._outputs.finish(outcome)
        except BaseException as exc:  # a trap here would lose the outcome
            outcome = _sandlot_exec.internal_error(exc)
        _sandlot_exec.flush_output()
        return _sandlot_exec.encode_outcome(outcome)
