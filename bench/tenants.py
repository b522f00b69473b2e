"""Pyodide sessions of many namespaces: what a Deno process per namespace costs.

Starts the real service on loopback with one Pyodide worker process (so every Deno is in
one place) and, for each of ``--namespaces`` new namespaces, one after the other:

* its first session (`POST /v1/sessions`), after a pause (``--pause-s``) in which the
  worker warms its next unclaimed Deno: the namespace claims it;
* ``--next`` more sessions of the same namespace, back to back;
* a turn (`x = 1`) in each, and every session left open.

Memory is read from the Deno processes' ``smaps_rollup`` (resident, and private:
Private_Clean + Private_Dirty) after each step, and split by difference into what a
namespace's Deno adds and what each session adds.

    .venv/bin/python bench/tenants.py [--namespaces 6] [--next 3] [--pause-s 3]
        [--no-tenant-spare]
"""

from __future__ import annotations

import argparse
import statistics
import time

from execute import BENCH_KEY, is_deno, service
from sessions import Api, memory, workers_of

MIB = 1024 * 1024


class Client(Api):
    """sessions.py's client, holding ``key`` (a namespace's) instead of the admin's."""

    def __init__(self, port: int, key: str) -> None:
        super().__init__(port, "pyodide")
        self.headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}

    def connect(self) -> None:
        """A fresh connection (the server closes an idle one after a few seconds)."""
        self.conn.close()
        self.conn.connect()

    def create(self) -> tuple[str, float]:
        status, answer, elapsed = self.call(
            "POST", "/v1/sessions", {"memory_mb": 256, "runtime": "pyodide"}
        )
        if status != 201:
            raise SystemExit(f"create: {status} {answer}")
        status, answer, _ = self.call(
            "POST", f"/v1/sessions/{answer['id']}/execute", {"code": "x = 1"}
        )
        if status != 200 or answer["status"] != "ok":
            raise SystemExit(f"turn: {status} {answer}")
        return str(answer["session"]["id"]), elapsed


def denos(service_pid: int) -> tuple[int, int, int]:
    """How many Deno processes, and their resident and private bytes together."""
    pids = [pid for pid in workers_of(service_pid) if is_deno(pid)]
    rss, private = memory(pids)
    return len(pids), rss, private


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespaces", type=int, default=6)
    parser.add_argument("--next", type=int, default=3, help="more sessions per namespace")
    parser.add_argument("--pause-s", type=float, default=3.0)
    parser.add_argument(
        "--tenant-spare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="SANDLOT_PYODIDE_TENANT_SPARE (the service's default: on)",
    )
    args = parser.parse_args()
    if args.namespaces < 2:
        parser.error(
            "--namespaces must be at least 2 (the first session of the process has no warm Deno)"
        )
    settings = {
        "build_on_start": "false",
        "pool_size": "1",
        "pyodide_pool_size": "1",
        "sessions_max_per_key": "50",
        "queue_timeout_ms": "30000",
    }
    settings["pyodide_tenant_spare"] = "true" if args.tenant_spare else "false"
    firsts, nexts = [], []
    deno_steps: list[tuple[int, int]] = []  # (private bytes added, rss added) per Deno
    session_steps: list[tuple[int, int]] = []
    with service(**settings) as (port, proc):
        admin = Client(port, BENCH_KEY)
        for _ in range(3):  # warm-up: runs only
            admin.call("POST", "/v1/execute", {"code": "1", "runtime": "pyodide"})
        time.sleep(args.pause_s)
        count0, rss0, private0 = denos(proc.pid)
        print(
            f"before any session: {count0} Deno, {rss0 / MIB:.0f} MiB resident, "
            f"{private0 / MIB:.0f} MiB private"
        )
        cold = None
        for n in range(args.namespaces):
            name = f"bench-{n}-{int(time.time())}"
            admin.connect()
            admin.call("POST", "/v1/namespaces", {"name": name})
            _, made, _ = admin.call("POST", f"/v1/namespaces/{name}/keys", {})
            tenant = Client(port, made["key"])
            time.sleep(args.pause_s)  # the next warm Deno is ready
            _, rss_a, private_a = denos(proc.pid)
            tenant.connect()  # outside the timing
            _, elapsed = tenant.create()
            if cold is None:
                cold = elapsed  # the process's first: no warm Deno yet
            else:
                firsts.append(elapsed)
            time.sleep(args.pause_s)  # the next warm one made
            _, rss_b, private_b = denos(proc.pid)
            tenant.connect()
            for _ in range(args.next):
                nexts.append(tenant.create()[1])
                if args.tenant_spare:
                    time.sleep(args.pause_s)  # its spare restored again
            time.sleep(1)
            count_c, rss_c, private_c = denos(proc.pid)
            per_session = ((private_c - private_b) / args.next, (rss_c - rss_b) / args.next)
            session_steps.append((int(per_session[0]), int(per_session[1])))
            if n > 0:  # one more Deno (the warm one replaced), one session in it
                deno_steps.append(
                    (
                        int(private_b - private_a - per_session[0]),
                        int(rss_b - rss_a - per_session[1]),
                    )
                )
            print(
                f"namespace {n}: first {elapsed:.0f} ms, next "
                f"{', '.join(f'{x:.0f}' for x in nexts[-args.next :])} ms; "
                f"{count_c} Deno, {rss_c / MIB:.0f} MiB resident, {private_c / MIB:.0f} private"
            )

    def mib(values: list[int]) -> str:
        return f"{statistics.median(values) / MIB:.0f}"

    print("\n| measure | value |\n|---|---:|")
    print(f"| the process's first session (no warm Deno yet), ms | {cold:.0f} |")
    print(
        f"| a namespace's first session (claims the warm Deno), p50 ms | "
        f"{statistics.median(firsts):.0f} (n={len(firsts)}) |"
    )
    print(
        f"| a namespace's next sessions, p50 ms | {statistics.median(nexts):.0f} (n={len(nexts)}) |"
    )
    print(
        f"| per idle session (x = 1), private / resident MiB | "
        f"{mib([s[0] for s in session_steps])} / {mib([s[1] for s in session_steps])} |"
    )
    print(
        f"| per extra namespace's Deno, private / resident MiB | "
        f"{mib([d[0] for d in deno_steps])} / {mib([d[1] for d in deno_steps])} |"
    )


if __name__ == "__main__":
    main()
