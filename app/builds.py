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

from app.bundles import write_bundle
from sandbox import Job, Limits, Runner, Status, collect

__all__ = ["Build", "BuildFailed", "build", "describe"]

_CHECK = """
import ast, base64, importlib.util, json, marshal, sys
modules = json.loads({modules!r})
errors, warnings, bytecode = [], [], {{}}
for path in sorted(modules):
    top = path.split("/")[0].removesuffix(".py")
    if top in sys.modules:
        errors.append({{"file": path, "line": None, "message": (
            f"{{top!r}} is already imported in this runtime (the standard library or the "
            "worker API), so the worker would get that module, not this file: rename it"
        )}})
for path, source in sorted(modules.items()):
    where = "/work/" + path
    try:
        tree = compile(source, path, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        code = compile(tree, where, "exec", dont_inherit=True)
    except SyntaxError as exc:
        errors.append({{"file": path, "line": exc.lineno, "message": exc.msg}})
        continue
    # An unchecked hash-based .pyc (PEP 552): imported without reading the source.
    pyc = (
        importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little")
        + importlib.util.source_hash(source.encode()) + marshal.dumps(code)
    )
    cached = importlib.util.cache_from_source(where).removeprefix("/work/")
    bytecode[cached] = base64.b64encode(pyc).decode()
    if path == {main!r} and not any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "on_fetch"
        for node in tree.body
    ):
        warnings.append(f"{{path}} defines no on_fetch(request, env): dispatch will fail")
{{"errors": errors[:20], "warnings": warnings[:20], "bytecode": {{}} if errors else bytecode}}
"""


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
    code = _CHECK.format(modules=json.dumps(modules), main=main_module)
    size = len(code.encode())
    limits = Limits(cpu_ms=10_000, wall_ms=20_000, code_bytes=size + 1)
    # The bytecode comes back base64-encoded in the result: room for a few times the source.
    job = Job(code=code, limits=limits, result_bytes=min(_MAX_RESULT, 4 * size + _MIB))
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
