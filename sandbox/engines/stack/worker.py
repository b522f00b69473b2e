"""The data-stack guest's worker process (see ``sandbox/engines/serving.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.engines.serving import serve_process
from sandbox.engines.stack.builder import StackArtifacts
from sandbox.engines.stack.host import StackRuntime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--mpl-data", type=Path, required=True)
    parser.add_argument("--precompiled", type=Path, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--site", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    artifacts = StackArtifacts(
        key=args.key,
        root=args.root,
        mpl_data=args.mpl_data,
        precompiled=args.precompiled,
        site=args.site,
    )

    def make_runtime() -> StackRuntime:
        runtime = StackRuntime(artifacts, args.workdir)
        # One throwaway run faults in the pages every run touches.
        runtime.run_simple("pass", cpu_ms=10_000, wall_ms=10_000)
        runtime.prepare()
        return runtime

    serve_process(make_runtime)


if __name__ == "__main__":
    main()
