"""The wasmtime engine's worker process (see ``sandbox/engines/serving.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.engines.fairshare import Demotion
from sandbox.engines.serving import lane_workdirs, serve_process
from sandbox.engines.wasmtime.host import GuestRuntime
from sandbox.limits import MIB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--precompiled", type=Path, required=True)
    parser.add_argument("--stdlib", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    # Runs at once in this process, each on its own thread in its own runtime.
    parser.add_argument("--runs", type=int, default=1)
    # What a run's working directory and /tmp may hold together, held while it runs.
    parser.add_argument("--run-disk-mb", type=int, default=None)
    # When a run's thread is demoted for using the cores (fairshare.py).
    Demotion.add_arguments(parser)
    args = parser.parse_args(argv)

    def make_runtime(workdir: Path) -> GuestRuntime:
        run_disk = args.run_disk_mb * MIB if args.run_disk_mb is not None else None
        runtime = GuestRuntime(args.precompiled, args.stdlib, workdir, run_disk_bytes=run_disk)
        # One throwaway run faults in the code pages every run touches, so the
        # first real job is as fast as the rest.
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
