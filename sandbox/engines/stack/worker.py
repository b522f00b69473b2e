"""The data-stack guest's worker process (see ``sandbox/engines/serving.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.engines.fairshare import Demotion
from sandbox.engines.serving import lane_workdirs, serve_process
from sandbox.engines.stack.builder import StackArtifacts
from sandbox.engines.stack.host import StackRuntime
from sandbox.limits import MIB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--mpl-data", type=Path, required=True)
    parser.add_argument("--precompiled", type=Path, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--site", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, required=True)
    # Each session's disk quota, held while its turns run.
    parser.add_argument("--session-disk-mb", type=int, default=None)
    # What a run's working directory and /tmp may hold together, held while it runs.
    parser.add_argument("--run-disk-mb", type=int, default=None)
    # Runs at once in this process, each on its own thread in its own runtime.
    parser.add_argument("--runs", type=int, default=1)
    # When a run's thread is demoted for using the cores (fairshare.py).
    Demotion.add_arguments(parser)
    args = parser.parse_args(argv)
    artifacts = StackArtifacts(
        key=args.key,
        root=args.root,
        mpl_data=args.mpl_data,
        precompiled=args.precompiled,
        site=args.site,
    )

    disk_bytes = args.session_disk_mb * MIB if args.session_disk_mb is not None else None
    run_disk_bytes = args.run_disk_mb * MIB if args.run_disk_mb is not None else None

    def make_runtime(workdir: Path) -> StackRuntime:
        runtime = StackRuntime(
            artifacts, workdir, session_disk_bytes=disk_bytes, run_disk_bytes=run_disk_bytes
        )
        # One throwaway run faults in the pages every run touches.
        runtime.run_simple("pass", cpu_ms=10_000, wall_ms=10_000)
        runtime.prepare()
        return runtime

    next_dir = lane_workdirs(args.workdir)
    serve_process(
        lambda: make_runtime(args.workdir),
        make_lane_runtime=lambda: make_runtime(next_dir()),
        runs=max(1, args.runs),
        demotion=Demotion.from_arguments(args),
    )


if __name__ == "__main__":
    main()
