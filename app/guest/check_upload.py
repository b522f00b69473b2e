"""A worker upload's build, run inside a sandbox of the worker's engine (app/builds.py).

Reads ``{"modules": {path: source}, "main": path}`` from stdin, compiles every
module (never runs it) and ends with the report as the run's value: errors with
file and line, warnings, and the bytecode as unchecked hash-based .pyc files
(PEP 552), base64-encoded by path under ``__pycache__``.
"""

import ast
import base64
import importlib.util
import json
import marshal
import sys

upload = json.load(sys.stdin)
modules, main = upload["modules"], upload["main"]
errors: list[dict[str, object]] = []
warnings: list[str] = []
bytecode: dict[str, str] = {}
for path in sorted(modules):
    top = path.split("/")[0].removesuffix(".py")
    if top in sys.modules:
        errors.append(
            {
                "file": path,
                "line": None,
                "message": (
                    f"{top!r} is already imported in this runtime (the standard library or the "
                    "worker API), so the worker would get that module, not this file: rename it"
                ),
            }
        )
for path, source in sorted(modules.items()):
    where = "/work/" + path
    try:
        tree = ast.parse(source, path)
        code = compile(tree, where, "exec", dont_inherit=True)
    except SyntaxError as exc:
        errors.append({"file": path, "line": exc.lineno, "message": exc.msg})
        continue
    # An unchecked hash-based .pyc (PEP 552): imported without reading the source.
    pyc = (
        importlib.util.MAGIC_NUMBER
        + (1).to_bytes(4, "little")
        + importlib.util.source_hash(source.encode())
        + marshal.dumps(code)
    )
    cached = importlib.util.cache_from_source(where).removeprefix("/work/")
    bytecode[cached] = base64.b64encode(pyc).decode()
    if path == main and not any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "on_fetch"
        for node in tree.body
    ):
        warnings.append(f"{path} defines no on_fetch(request, env): dispatch will fail")
# The run's value, like a notebook cell's last expression.
{"errors": errors[:20], "warnings": warnings[:20], "bytecode": {} if errors else bytecode}
