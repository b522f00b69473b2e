"""A stand-in worker process for pool tests: speaks the protocol, misbehaves on request.

    python fake_worker.py MODE --workdir DIR

Modes: ok (echo each job's code as stdout, or the pid for code ``pid``; end ok),
exit-at-start, never-ready, garbage-at-start, hang (never answers a run, ignores cancel),
die-mid-run, bad-frame-mid-run, slow-cancel (answers cancel with end canceled after 0.1 s).
hang and slow-cancel write ``pid <their pid>`` to stderr when a run starts.

Mode ok also takes codes: ``pid`` prints the process's pid, ``hang`` never answers (nor
its cancel), ``after:<s>`` answers ok after s seconds (on a thread: later runs go on).

Sessions (mode ok): ``open`` answers ``opened``; a ``turn`` prints ``<pid> <session>
<turns so far>`` and ends ok, or with the status its code names after ``status:`` (then
the session is dropped); code ``sleep:<s>`` sleeps first, code ``die`` kills the process,
code ``tenant`` prints ``<pid> <the tenant its open named, or ->``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

from sandbox import protocol


def main() -> None:
    mode = sys.argv[1]
    out = sys.stdout.buffer
    if mode == "exit-at-start":
        sys.exit(3)
    if mode == "never-ready":
        time.sleep(3600)
    if mode == "garbage-at-start":
        out.write(b"\x00\x00\x00\x05hello")
        out.flush()
        time.sleep(3600)
    protocol.write_frame(out, {"t": "ready", "pid": os.getpid()})
    out.flush()
    lock = threading.Lock()
    sessions: dict[str, int] = {}
    tenants: dict[str, str] = {}
    # The run under way: every frame about it names it, as real workers' do.
    current: list[object] = [None]

    def send(message: dict[str, object]) -> None:
        with lock:
            tagged = message if current[0] is None else {**message, "id": current[0]}
            protocol.write_frame(out, tagged)
            out.flush()

    while (message := protocol.read_frame(sys.stdin.buffer)) is not None:
        op = message["op"]
        if op == "exit":
            return
        if op in ("run", "turn", "open"):
            current[0] = message.get("id")  # an open has none: its answer names none
        if op == "cancel":
            if mode == "slow-cancel":
                time.sleep(0.1)
                send(_end("canceled"))
            continue
        if op == "open":
            sessions[message["session"]] = 0
            tenants[message["session"]] = str(message.get("tenant", "-"))
            send({"t": "opened", "session": message["session"]})
            continue
        if op == "close":
            sessions.pop(message["session"], None)
            continue
        code = message["job"]["code"]
        if op == "turn" and code == "tenant":
            said = f"{os.getpid()} {tenants.get(message['session'])}"
            send({"t": "out", "s": "stdout", "d": said})
            send({**_end("ok"), "session_alive": True})
            continue
        if op == "turn":
            _turn(message["session"], code, sessions, send)
            continue
        if mode in ("hang", "slow-cancel"):
            # Which process took the run, so tests can tell a reused worker from a new one.
            send({"t": "out", "s": "stderr", "d": f"pid {os.getpid()}"})
        if mode == "ok" and code == "hang":
            continue
        if mode == "ok" and code.startswith("after:"):
            run_id = message.get("id")

            def later(
                delay: float = float(code.removeprefix("after:")), run_id: object = run_id
            ) -> None:
                time.sleep(delay)
                with lock:
                    for frame in ({"t": "out", "s": "stdout", "d": "late"}, _end("ok")):
                        protocol.write_frame(out, {**frame, "id": run_id})
                    out.flush()

            threading.Thread(target=later).start()
        elif mode == "ok":
            send({"t": "out", "s": "stdout", "d": str(os.getpid()) if code == "pid" else code})
            send(_end("ok"))
        elif mode == "die-mid-run":
            send({"t": "out", "s": "stdout", "d": "partial"})
            os._exit(9)
        elif mode == "bad-frame-mid-run":
            out.write(b"\x00\x00\x00\x02[]")
            out.flush()
        # hang / slow-cancel: say nothing until canceled or killed


def _turn(
    session: str, code: str, sessions: dict[str, int], send: Callable[[dict[str, object]], None]
) -> None:
    if code == "die":
        os._exit(9)
    if code.startswith("sleep:"):
        time.sleep(float(code.removeprefix("sleep:")))
    if session not in sessions:
        send({**_end("internal_error"), "session_alive": False})
        return
    sessions[session] += 1
    send({"t": "out", "s": "stdout", "d": f"{os.getpid()} {session} {sessions[session]}"})
    status = code.removeprefix("status:") if code.startswith("status:") else "ok"
    alive = status in ("ok", "error")
    if not alive:
        del sessions[session]
    send({**_end(status), "session_alive": alive})


def _end(status: str) -> dict[str, object]:
    usage = {
        "cpu_ms": 1.0,
        "wall_ms": 1.0,
        "memory_peak_bytes": 0,
        "subrequests": 0,
        "output_bytes": 0,
    }
    return {
        "t": "end",
        "status": status,
        "usage": usage,
        "error": None,
        "result": None,
        "exit_code": None,
        "output_truncated": False,
    }


if __name__ == "__main__":
    main()
