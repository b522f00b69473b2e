"""The wasmtime engine's worker process (see ``sandbox/engines/serving.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.engines.serving import serve_process
from sandbox.engines.wasmtime.host import GuestRuntime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--precompiled", type=Path, required=True)
    parser.add_argument("--stdlib", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)

    def make_runtime() -> GuestRuntime:
        runtime = GuestRuntime(args.precompiled, args.stdlib, args.workdir)
        # One throwaway run faults in the code pages every run touches, so the
        # first real job is as fast as the rest.
        runtime.run_simple("pass", cpu_ms=10_000, wall_ms=10_000)
        runtime.prepare()
        return runtime

    serve_process(make_runtime)


if __name__ == "__main__":
    main()
