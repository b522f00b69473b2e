"""Building a worker upload: check it in its own engine and make its artifact.

The code is compiled (never run) inside a sandbox of the worker's runtime, so
syntax is judged by the same CPython the worker will run on, with the file
and line of every error. The artifact is the canonical bundle of the modules
and the bytecode that sandbox compiled (unchecked hash-based .pyc files, so a
request never compiles the worker: compiling is slow under WebAssembly).
The store keeps it content-addressed (app/store/blobs.py): identical uploads of a
namespace share one artifact.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from app.bundles import write_bundle
from sandbox import Job, Limits, Runner, Status, collect

__all__ = ["CHECK_PROGRAM", "Build", "BuildFailed", "build", "describe"]

# The build program: compiles the modules sent on its stdin, never runs them.
CHECK_PROGRAM = (Path(__file__).parent / "guest" / "check_upload.py").read_text()


@dataclass(frozen=True, slots=True)
class Build:
    bundle: bytes
    build_ms: float
    warnings: list[str]


_MIB = 1024 * 1024
_MAX_RESULT = 64 * _MIB


class BuildFailed(Exception):
    """The upload doesn't compile; ``errors`` are {file, line, message}."""

    def __init__(self, errors: list[dict[str, object]]) -> None:
        super().__init__(describe(errors[0]))
        self.errors = errors


def describe(error: dict[str, object], *, file: bool = True) -> str:
    """``main.py line 3: invalid syntax`` (no line for errors about the whole file)."""
    where = [str(error["file"])] if file else []
    if error.get("line") is not None:
        where.append(f"line {error['line']}")
    return f"{' '.join(where)}: {error['message']}" if where else str(error["message"])


async def build(
    runner: Runner,
    *,
    runtime: str,
    main_module: str,
    modules: dict[str, str],
    requirements: list[str],
) -> Build:
    """Raises BuildFailed (the code's fault) or RuntimeError (the sandbox's)."""
    started = time.monotonic()
    upload = json.dumps({"modules": modules, "main": main_module})
    size = len(upload.encode())
    limits = Limits(cpu_ms=10_000, wall_ms=20_000, code_bytes=len(CHECK_PROGRAM.encode()))
    # The bytecode comes back base64-encoded in the result: room for a few times the source.
    job = Job(
        code=CHECK_PROGRAM,
        stdin=upload,
        limits=limits,
        result_bytes=min(_MAX_RESULT, 4 * size + _MIB),
        live_output=False,
    )
    result = await collect(runner.run(job))
    if result.status is not Status.OK or result.result is None or not result.result.has_json:
        raise RuntimeError(f"checking the upload failed in the sandbox: {result.status.value}")
    report = result.result.json
    if report["errors"]:
        raise BuildFailed(report["errors"])
    bundle = write_bundle(
        runtime=runtime,
        main_module=main_module,
        modules=modules,
        requirements=requirements,
        bytecode=report["bytecode"],
    )
    return Build(
        bundle=bundle,
        build_ms=round((time.monotonic() - started) * 1000, 3),
        warnings=list(report["warnings"]),
    )
