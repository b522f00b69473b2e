"""The Pyodide engine's worker process (see ``sandbox/engines/serving.py``): a Deno for
runs, and one per tenant for sessions (``tenants.py``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sandbox.engines.pyodide.deno import RuntimeLayout
from sandbox.engines.pyodide.host import PyodideRuntime
from sandbox.engines.pyodide.tenants import TenantRuntimes
from sandbox.engines.serving import serve_process
from sandbox.limits import MIB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", required=True, help="RuntimeLayout as JSON")
    parser.add_argument("--spares", type=int, default=1)
    parser.add_argument("--memory-backstop-mb", type=int, default=4096)
    parser.add_argument("--deno-dir", type=Path, required=True)
    parser.add_argument("--session-disk-mb", type=int, default=512)
    parser.add_argument("--tenant-spare", action="store_true")
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    layout = RuntimeLayout(**{k: Path(v) for k, v in json.loads(args.layout).items()})

    def make_runtime(for_tenant: bool) -> PyodideRuntime:
        # A tenant's Deno keeps no spare past the one it starts with, unless told to
        # (tenants.py).
        return PyodideRuntime(
            layout,
            args.deno_dir,
            spares=1 if for_tenant else args.spares,
            refill=args.tenant_spare or not for_tenant,
            memory_backstop_bytes=args.memory_backstop_mb * MIB,
            session_disk_bytes=args.session_disk_mb * MIB,
        )

    serve_process(lambda: TenantRuntimes(make_runtime))


if __name__ == "__main__":
    main()
