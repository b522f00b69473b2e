"""The hostile load test: N runs at concurrency C, a share of them hostile, K workers killed.

Starts the real service on loopback (its embedded defaults, a data dir of its own; or
targets ``--url`` with ``--key``), then, in one process:

1. warms every runtime up (C concurrent short sleeps, twice);
2. idle: ``--idle-runs`` benign runs one after another (nothing else running);
3. load: N runs from C clients, each run benign (a print, a small pandas group-by, a
   50 ms sleep) or, with probability ``--hostile``, hostile (a busy loop to ``cpu_limit``,
   a sleep to ``wall_limit``, numpy and list memory bombs to ``memory_limit``, an output
   bomb to ``output_limit``, ``os._exit(3)``, an uncaught exception, a recursion bomb,
   a thread bomb: each to its defined status); meanwhile K worker processes (children of
   the service process, found through /proc by PID) are SIGKILLed at even intervals;
4. recovery: every worker process back (the pool's full size) and a benign run ``ok``.

Prints a table of runs by kind x final status, then the checks against issue 15's
targets: 0 lost (no answer or a transport error), 0 5xx, every run in its defined status
(a run in flight when a worker was killed may end ``internal_error``: reported apart),
benign p99 under load at most 3x benign p99 idle, recovery. Exits 1 if one is missed.

    .venv/bin/python bench/load.py [--runs 10000] [--concurrency 32] [--hostile 0.1]
        [--kills 5] [--set NAME=VALUE ...]          # the service's SANDLOT_<NAME> settings
    .venv/bin/python bench/load.py --url http://host:port --key KEY [--service-pid PID]

Without ``--service-pid`` a ``--url`` target is not killed into (no way to find its workers).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_KEY = "load-" + "k" * 40
# Every run's limits unless its kind says otherwise.
LIMITS = {"cpu_ms": 1_000, "wall_ms": 10_000, "memory_mb": 256, "output_bytes": 262_144}
# The hostile kinds that compute (all but the endless sleep) get a wall time far past what
# they need, so their own limit is what ends them even on a twentieth of a core (32
# clients on 2 shared cores).
CPU_BOUND = {"wall_ms": 60_000}
# How many kinds the statuses table shows as columns, in this order; others after.
STATUS_ORDER = (
    "ok",
    "error",
    "cpu_limit",
    "wall_limit",
    "memory_limit",
    "output_limit",
    "canceled",
    "internal_error",
    "busy",
    "5xx",
    "lost",
)


@dataclass(frozen=True)
class Kind:
    """One kind of run: its code, the statuses it may end in, its limits."""

    name: str
    code: str
    expected: frozenset[str]
    hostile: bool
    limits: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None


BENIGN = (
    Kind("print", "print('hello')", frozenset({"ok"}), False),
    Kind(
        "pandas",
        "import pandas as pd\n"
        "df = pd.DataFrame({'k': [i % 7 for i in range(200)], 'v': range(200)})\n"
        "df.groupby('k').v.sum().sum()",
        frozenset({"ok"}),
        False,
    ),
    Kind("sleep", "import time\ntime.sleep(0.05)\nprint('slept')", frozenset({"ok"}), False),
)
HOSTILE = (
    Kind("busy_loop", "while True:\n    pass", frozenset({"cpu_limit"}), True, CPU_BOUND),
    Kind(
        "sleep_forever",
        "import time\nwhile True:\n    try:\n        time.sleep(60)\n    except BaseException:\n"
        "        pass",
        frozenset({"wall_limit"}),
        True,
        {"wall_ms": 2_000},
    ),
    Kind(
        "numpy_bomb",
        "import numpy as np\nheld = []\nwhile True:\n    held.append(np.ones(1 << 21))",
        frozenset({"memory_limit"}),
        True,
        CPU_BOUND,
    ),
    Kind("bytes_bomb", "x = b'x' * (1 << 30)", frozenset({"memory_limit"}), True, CPU_BOUND),
    Kind(
        "output_bomb",
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
        frozenset({"output_limit"}),
        True,
        CPU_BOUND,
    ),
    Kind(
        "os_exit",
        "import os\nprint('bye', flush=True)\nos._exit(3)",
        frozenset({"error"}),
        True,
        exit_code=3,
    ),
    Kind("crash", "raise RuntimeError('boom')", frozenset({"error"}), True),
    Kind(
        "recursion_bomb",
        "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)",
        frozenset({"error"}),
        True,
        CPU_BOUND,
    ),
    Kind(
        "thread_bomb",
        "import threading\nfor _ in range(10_000):\n"
        "    threading.Thread(target=lambda: None).start()",
        frozenset({"error"}),
        True,
    ),
)
KINDS = {kind.name: kind for kind in (*BENIGN, *HOSTILE)}


@dataclass
class Outcome:
    kind: str
    status: str  # the run's status, or busy (429), 5xx, lost
    started: float
    ended: float
    error_type: str | None = None
    detail: str = ""
    exit_code: int | None = None

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000


# -- the service -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def local_service(settings: dict[str, str]) -> Iterator[tuple[str, int]]:
    """The service on loopback with its defaults and ``settings``; yields (url, pid)."""
    port = _free_port()
    data = tempfile.mkdtemp(prefix="sandlot-load-")
    env = {
        **os.environ,
        "SANDLOT_LOG_LEVEL": "warning",
        **{f"SANDLOT_{name.upper()}": value for name, value in settings.items()},
        "SANDLOT_HOST": "127.0.0.1",
        "SANDLOT_PORT": str(port),
        "SANDLOT_DATA_DIR": data,
        "SANDLOT_ADMIN_KEY": BENCH_KEY,
    }
    log_path = Path(data) / "service.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log_file, stderr=log_file
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the service did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if os.environ.get("SANDLOT_LOAD_KEEP_LOG"):
            print(f"service log kept in {log_path}", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


def _ready(url: str) -> bool:
    try:
        status, _ = _get(url, "/readyz")
    except OSError:
        return False
    return status == 200


def _get(url: str, path: str, key: str | None = None) -> tuple[int, dict[str, object]]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=5)
    try:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, {}
    finally:
        conn.close()


def worker_pids(service_pid: int) -> list[int]:
    """The wasmtime worker processes: children of the service running an engine worker."""
    found = []
    for task in Path(f"/proc/{service_pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    if any(
                        a in (b"sandbox.engines.stack.worker", b"sandbox.engines.wasmtime.worker")
                        for a in argv
                    ):
                        found.append(int(pid))
    return sorted(found)


def cpu_seconds(service_pid: int) -> tuple[float, float]:
    """CPU seconds spent so far by the service process itself, and by its worker
    processes (live ones, and those it has reaped)."""
    tick = os.sysconf("SC_CLK_TCK")

    def fields(pid: int) -> list[str]:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()

    own = fields(service_pid)
    service = (int(own[11]) + int(own[12])) / tick
    workers = (int(own[13]) + int(own[14])) / tick
    for task in Path(f"/proc/{service_pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(OSError, ValueError):
                    child = fields(int(pid))
                    workers += sum(int(x) for x in child[11:15]) / tick
    return service, workers


# -- the clients -------------------------------------------------------------------------


class Client:
    """One keep-alive connection, one run at a time."""

    def __init__(self, url: str, key: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._timeout = timeout_s
        self._headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        self._conn: http.client.HTTPConnection | None = None

    def run(self, kind: Kind) -> Outcome:
        body = json.dumps({"code": kind.code, "limits": {**LIMITS, **kind.limits}}).encode()
        started = time.monotonic()
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, self._timeout)
            self._conn.request("POST", "/v1/execute", body, self._headers)
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Outcome(kind.name, "lost", started, time.monotonic(), detail=repr(exc))
        ended = time.monotonic()
        if response.getheader("connection", "").lower() == "close":
            self.close()
        text = raw[:300].decode(errors="replace")
        if response.status >= 500:
            return Outcome(kind.name, "5xx", started, ended, detail=text)
        if response.status == 429:
            return Outcome(kind.name, "busy", started, ended, detail=text)
        try:
            answer = json.loads(raw)
            status = str(answer["status"]) if response.status == 200 else f"http_{response.status}"
        except (ValueError, KeyError):
            return Outcome(kind.name, "lost", started, ended, detail=text)
        error = answer.get("error") or {}
        return Outcome(
            kind.name,
            status,
            started,
            ended,
            error_type=error.get("type"),
            detail=str(error.get("message") or "")[:200],
            exit_code=answer.get("exit_code"),
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def drive(
    url: str, key: str, kinds: list[Kind], concurrency: int, timeout_s: float, on_done=None
) -> list[Outcome]:
    """Run every kind in ``kinds`` (in order, by whichever client is free) from
    ``concurrency`` clients."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    todo = iter(kinds)

    def client_loop() -> None:
        client = Client(url, key, timeout_s)
        try:
            while True:
                with lock:
                    kind = next(todo, None)
                if kind is None:
                    return
                outcome = client.run(kind)
                with lock:
                    outcomes.append(outcome)
                    done = len(outcomes)
                if on_done is not None:
                    on_done(done)
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


# -- the killer --------------------------------------------------------------------------


@dataclass
class Kill:
    at: float
    pid: int
    after_runs: int


class Killer:
    """SIGKILLs one worker process (a random child of the service) at each milestone."""

    def __init__(self, service_pid: int, milestones: list[int], seed: int) -> None:
        self._pid = service_pid
        self._milestones = sorted(milestones)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.kills: list[Kill] = []

    def progress(self, done: int) -> None:
        with self._lock:
            if not self._milestones or done < self._milestones[0]:
                return
            self._milestones.pop(0)
            pids = worker_pids(self._pid)
            if not pids:
                return
            victim = self._random.choice(pids)
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
                self.kills.append(Kill(time.monotonic(), victim, done))


# -- the report --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    return data[min(len(data) - 1, round(q * (len(data) - 1)))]


# A run handed to a process in the moment between its SIGKILL and the pool seeing its
# pipe close ends internal_error too: that is how long the moment may be, under load.
KILL_NOTICE_S = 3.0


def affected_by_a_kill(outcome: Outcome, kills: list[Kill]) -> bool:
    """In flight when a worker process was killed (or handed to it just after)."""
    return any(
        outcome.started <= kill.at <= outcome.ended
        or (killed_defined(outcome) and 0 <= outcome.started - kill.at <= KILL_NOTICE_S)
        for kill in kills
    )


def defined(outcome: Outcome) -> bool:
    """Whether the run ended as its kind must."""
    kind = KINDS[outcome.kind]
    if outcome.status not in kind.expected:
        return False
    return kind.exit_code is None or outcome.exit_code == kind.exit_code


def killed_defined(outcome: Outcome) -> bool:
    """A run in flight when its worker process was killed ends internal_error (WorkerCrashed)."""
    return outcome.status == "internal_error" and outcome.error_type == "WorkerCrashed"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def status_table(outcomes: list[Outcome]) -> str:
    statuses = [s for s in STATUS_ORDER if any(o.status == s for o in outcomes)]
    statuses += sorted({o.status for o in outcomes} - set(statuses))
    rows = [["kind", "expected", "runs", *statuses, "p50 ms", "p99 ms"]]
    for kind in KINDS.values():
        mine = [o for o in outcomes if o.kind == kind.name]
        if not mine:
            continue
        counts = Counter(o.status for o in mine)
        ms = [o.ms for o in mine]
        rows.append(
            [
                kind.name,
                "/".join(sorted(kind.expected)),
                str(len(mine)),
                *(str(counts.get(s, "")) for s in statuses),
                f"{percentile(ms, 0.5):.0f}",
                f"{percentile(ms, 0.99):.0f}",
            ]
        )
    return table(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--hostile", type=float, default=0.10, help="share of hostile runs")
    parser.add_argument("--kills", type=int, default=5, help="worker processes to SIGKILL")
    parser.add_argument("--idle-runs", type=int, default=300)
    parser.add_argument(
        "--baseline-runs",
        type=int,
        default=-1,
        help="benign-only runs at the same concurrency (default: runs / 5, at most 1000)",
    )
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=120, help="client timeout, seconds")
    parser.add_argument("--max-ratio", type=float, default=3.0)
    parser.add_argument("--url", help="target a running service instead of starting one")
    parser.add_argument("--key", help="its admin (or a namespace's) key, with --url")
    parser.add_argument("--service-pid", type=int, help="with --url: its PID, to kill workers")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a service setting (SANDLOT_<NAME>) for the service this script starts",
    )
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        return run(args, args.url, args.key, args.service_pid, settings)
    with local_service(settings) as (url, pid):
        return run(args, url, BENCH_KEY, pid, settings)


def run(
    args: argparse.Namespace, url: str, key: str, pid: int | None, settings: dict[str, str]
) -> int:
    rng = random.Random(args.seed)
    pool_size = len(worker_pids(pid)) if pid is not None else None
    began = time.monotonic()
    warm = [KINDS["sleep"]] * (args.concurrency * 2)
    drive(url, key, warm, args.concurrency, args.timeout)

    idle_kinds = [rng.choice(BENIGN) for _ in range(args.idle_runs)]
    idle = drive(url, key, idle_kinds, 1, args.timeout)
    baseline_runs = args.baseline_runs if args.baseline_runs >= 0 else min(1000, args.runs // 5)
    baseline_kinds = [rng.choice(BENIGN) for _ in range(baseline_runs)]
    baseline = drive(url, key, baseline_kinds, args.concurrency, args.timeout)

    plan = [
        rng.choice(HOSTILE) if rng.random() < args.hostile else rng.choice(BENIGN)
        for _ in range(args.runs)
    ]
    killer = None
    if pid is not None and args.kills > 0:
        step = args.runs // (args.kills + 1)
        killer = Killer(pid, [step * (i + 1) for i in range(args.kills)], args.seed)
    load_began = time.monotonic()
    cpu_before = cpu_seconds(pid) if pid is not None else None
    client_before = resource.getrusage(resource.RUSAGE_SELF)
    load = drive(
        url, key, plan, args.concurrency, args.timeout, killer.progress if killer else None
    )
    load_s = time.monotonic() - load_began
    client_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    cpu_note = f"CPU during the load: this client {client_cpu:.1f} s"
    if cpu_before is not None and pid is not None:
        cpu_after = cpu_seconds(pid)
        cpu_note += (
            f", the service process {cpu_after[0] - cpu_before[0]:.1f} s, its workers "
            f"{cpu_after[1] - cpu_before[1]:.1f} s (of {load_s * (os.cpu_count() or 1):.0f} "
            "core-seconds)"
        )
    kills = killer.kills if killer else []

    # Recovery: every worker process back, then a benign run ok.
    recovered_workers: str
    deadline = time.monotonic() + 60
    back = False
    if pid is not None and pool_size is not None:
        while time.monotonic() < deadline:
            if len(worker_pids(pid)) >= pool_size and _ready(url):
                back = True
                break
            time.sleep(0.2)
        recovered_workers = f"{len(worker_pids(pid))}/{pool_size} worker processes"
    else:
        back = _ready(url)
        recovered_workers = "readyz " + ("200" if back else "not 200")
    after = drive(url, key, [KINDS["print"]] * 4, 1, args.timeout)
    recovered = back and all(o.status == "ok" for o in after)

    # -- the numbers
    benign_names = {k.name for k in BENIGN}
    idle_ms = [o.ms for o in idle if o.status == "ok"]
    base_ms = [o.ms for o in baseline if o.status == "ok"]
    load_benign = [o for o in load if o.kind in benign_names]
    load_ms = [o.ms for o in load_benign if o.status == "ok"]
    idle_p99, base_p99 = percentile(idle_ms, 0.99), percentile(base_ms, 0.99)
    load_p99 = percentile(load_ms, 0.99)
    ratio = load_p99 / base_p99 if base_p99 else float("inf")
    lost = [o for o in load if o.status == "lost"]
    fivexx = [o for o in load if o.status == "5xx"]
    busy = [o for o in load if o.status == "busy"]
    affected = [o for o in load if affected_by_a_kill(o, kills)]
    wrong = [
        o
        for o in load
        if o.status not in ("lost", "5xx")
        and not defined(o)
        and not (killed_defined(o) and o in affected)
    ]
    idle_wrong = [o for o in idle + baseline if not defined(o)]

    print(
        f"\n{args.runs} runs at concurrency {args.concurrency}, {args.hostile:.0%} hostile, "
        f"{len(kills)} worker processes killed; {load_s:.0f} s of load "
        f"({args.runs / load_s:.0f} runs/s), {time.monotonic() - began:.0f} s in all; "
        f"settings: {settings or 'defaults'}\n"
    )
    print(status_table(load))
    print()
    print(cpu_note)
    print()
    c = args.concurrency
    rows = [["benign runs", "runs", "p50 ms", "p99 ms", "p99 vs idle", "p99 vs benign only"]]
    for label, ms in (
        ("idle: one client", idle_ms),
        (f"benign only: {c} clients", base_ms),
        (f"under hostile load: {c} clients", load_ms),
    ):
        p99 = percentile(ms, 0.99)
        rows.append(
            [
                label,
                str(len(ms)),
                f"{percentile(ms, 0.5):.1f}",
                f"{p99:.1f}",
                f"{p99 / idle_p99:.2f}x",
                f"{p99 / base_p99:.2f}x",
            ]
        )
    for kind in BENIGN:
        per = [
            [o.ms for o in phase if o.kind == kind.name and o.status == "ok"]
            for phase in (idle, baseline, load_benign)
        ]
        rows.append(
            [
                f"  {kind.name}: idle / benign only / hostile load",
                " / ".join(str(len(ms)) for ms in per),
                " / ".join(f"{percentile(ms, 0.5):.1f}" for ms in per),
                " / ".join(f"{percentile(ms, 0.99):.1f}" for ms in per),
                f"{percentile(per[2], 0.99) / percentile(per[0], 0.99):.2f}x",
                f"{percentile(per[2], 0.99) / percentile(per[1], 0.99):.2f}x",
            ]
        )
    print(table(rows))
    print()
    affected_statuses = Counter(o.status for o in affected)
    print(
        "kills: "
        + (", ".join(f"pid {k.pid} after {k.after_runs} runs" for k in kills) if kills else "none")
    )
    print(
        f"runs affected by the kills (in flight, or handed to the process just after): "
        f"{len(affected)} "
        f"({', '.join(f'{s} {n}' for s, n in affected_statuses.most_common()) or '-'})"
    )
    print(f"recovery: {recovered_workers}; benign runs after: {', '.join(o.status for o in after)}")
    print()
    checks = [
        ("lost (no answer, transport error)", len(lost), len(lost) == 0),
        ("5xx answers", len(fivexx), len(fivexx) == 0),
        ("429 busy answers (the clients are fewer than the slots)", len(busy), not busy),
        (
            "runs not in their defined status",
            len(wrong) + len(idle_wrong),
            not wrong and not idle_wrong,
        ),
        (
            f"benign p99 under hostile load / benign only (<= {args.max_ratio:g}x)",
            f"{ratio:.2f}x",
            ratio <= args.max_ratio,
        ),
        (
            f"worker processes killed ({args.kills} asked)",
            len(kills),
            len(kills) == args.kills or pid is None,
        ),
        ("recovered (pool full, a benign run ok)", "yes" if recovered else "no", recovered),
    ]
    print(
        table(
            [["check", "value", "met"]]
            + [[c, str(v), "yes" if ok else "NO"] for c, v, ok in checks]
        )
    )
    for o in (wrong + idle_wrong + lost + fivexx + busy)[:20]:
        print(
            f"  finding: {o.kind} -> {o.status} ({o.error_type}: {o.detail[:150]}) {o.ms:.0f} ms",
            file=sys.stderr,
        )
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
