"""Engine B: Pyodide (CPython 3.14 for the web) in Deno, with Workers-for-Platforms semantics.

``build`` makes the snapshot; ``create_runner`` starts a pool of worker
processes, each driving a Deno process whose Web Workers hold pre-restored
interpreters, one per run, and a Deno process per tenant (namespace) whose sessions it
holds, a Web Worker per session for all its turns (``tenants.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from sandbox.engines.pyodide.builder import PyodideArtifacts, build, locate
from sandbox.engines.pyodide.packages import LockFilePackages
from sandbox.pool import PoolConfig, WorkerPool, worker_command

__all__ = ["ENGINE_NAME", "PyodideArtifacts", "build", "create_runner", "locate"]

ENGINE_NAME = "pyodide"


def create_runner(
    artifacts: PyodideArtifacts,
    *,
    size: int,
    scratch_dir: Path,
    deno_dir: Path,
    spares: int = 1,
    tenant_spare: bool = False,
    queue_timeout_ms: int = 2_000,
    kill_grace_ms: int = 1_000,
    memory_backstop_mb: int = 4096,
    session_disk_mb: int = 512,
    env: Mapping[str, str] | None = None,
) -> WorkerPool:
    """A pool of ``size`` Deno-driving worker processes. Call ``start()`` on it.

    ``deno_dir`` is Deno's own cache, shared by the workers and kept across
    restarts: its V8 code cache saves each fresh Pyodide worker about 95 ms.
    ``session_disk_mb``: the most a session's turn may leave in its directory (past it,
    the session ends ``disk_quota``). ``tenant_spare``: each tenant's Deno keeps a restored
    worker ready for its next session (else an open after its first restores one then).

    Raises EngineUnavailable if the artifacts are missing.
    """
    artifacts.check()
    layout = {name: str(path) for name, path in asdict(artifacts.layout).items()}
    command = worker_command(
        "sandbox.engines.pyodide.worker",
        "--layout",
        json.dumps(layout),
        "--spares",
        str(spares),
        "--memory-backstop-mb",
        str(memory_backstop_mb),
        "--deno-dir",
        str(deno_dir),
        "--session-disk-mb",
        str(session_disk_mb),
        *(["--tenant-spare"] if tenant_spare else []),
    )
    config = PoolConfig(
        command=command,
        size=size,
        scratch_dir=scratch_dir,
        queue_timeout_ms=queue_timeout_ms,
        kill_grace_ms=kill_grace_ms,
        env={**(env or {}), "PYTHONUNBUFFERED": "1"},
        sessions=True,
        # Each tenant's sessions have a Deno of their own in a process (tenants.py).
        session_tenants=True,
    )
    return WorkerPool(ENGINE_NAME, config, LockFilePackages(artifacts.layout.lock_file))
