"""Engine A: CPython 3.14 components (componentize-py) run by wasmtime.

``build`` makes the guest artifacts; ``create_runner`` starts a pool of worker
processes that run jobs in fresh instances of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sandbox.engines.fairshare import Demotion
from sandbox.engines.wasmtime.builder import Artifacts, build, locate
from sandbox.pool import PoolConfig, WorkerPool, worker_command

__all__ = ["Artifacts", "build", "create_runner", "locate"]

ENGINE_NAME = "wasmtime"


def create_runner(
    artifacts: Artifacts,
    *,
    size: int,
    scratch_dir: Path,
    queue_timeout_ms: int = 2_000,
    kill_grace_ms: int = 2_000,
    env: Mapping[str, str] | None = None,
    runs_per_worker: int = 1,
    demotion: Demotion | None = None,
    memory_budget_mb: int | None = None,
    run_disk_mb: int = 512,
) -> WorkerPool:
    """A pool of ``size`` worker processes running this engine. Call ``start()`` on it.

    ``run_disk_mb``: the most a run's working directory and /tmp may hold together, held
    while it runs.

    ``env`` is the workers' entire environment (give them nothing secret); None
    means an empty one apart from ``PYTHONUNBUFFERED``.

    Raises EngineUnavailable if the artifacts are missing.
    """
    artifacts.check()
    command = worker_command(
        "sandbox.engines.wasmtime.worker",
        "--precompiled",
        str(artifacts.precompiled),
        "--stdlib",
        str(artifacts.stdlib_mount),
        "--runs",
        str(runs_per_worker),
        "--run-disk-mb",
        str(run_disk_mb),
        *(demotion or Demotion()).argv(),
    )
    config = PoolConfig(
        command=command,
        size=size,
        scratch_dir=scratch_dir,
        queue_timeout_ms=queue_timeout_ms,
        kill_grace_ms=kill_grace_ms,
        env={**(env or {}), "PYTHONUNBUFFERED": "1"},
        runs_per_worker=runs_per_worker,
        memory_budget_mb=memory_budget_mb,
    )
    return WorkerPool(ENGINE_NAME, config)
