"""The sandbox package's public surface: everything in __all__ exists, nothing knows HTTP."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sandbox

SANDBOX_DIR = Path(sandbox.__file__).parent


def test_every_exported_name_exists() -> None:
    for name in sandbox.__all__:
        assert hasattr(sandbox, name), name


def test_sandbox_never_imports_the_http_layer() -> None:
    forbidden = ("app", "fastapi", "starlette", "sse_starlette", "pydantic_settings")
    offenders = []
    for path in SANDBOX_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []


def test_sandbox_never_reads_the_environment() -> None:
    # Settings, and what worker processes inherit, are app/'s to decide.
    offenders = []
    for path in SANDBOX_DIR.rglob("*.py"):
        if "guest" in path.parts:
            continue  # the guest's os.environ is the job's, not the host's
        text = path.read_text()
        for needle in ("os.getenv(", "environ.get(", "environ["):
            if needle in text:
                offenders.append(f"{path.relative_to(SANDBOX_DIR)}: {needle}")
    assert offenders == []


def test_the_core_imports_no_engine() -> None:
    # Every module of sandbox/ outside sandbox/engines/, imported in a fresh interpreter:
    # none may load an engine's modules or their hosts (wasmtime-py, a Deno driver).
    core = sorted(
        ".".join(path.relative_to(SANDBOX_DIR.parent).with_suffix("").parts).removesuffix(
            ".__init__"
        )
        for path in SANDBOX_DIR.rglob("*.py")
        if not {"engines", "guest"} & set(path.relative_to(SANDBOX_DIR).parts)
    )
    assert "sandbox.pool" in core and "sandbox" in core
    script = (
        "import importlib, sys\n"
        f"for name in {core!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    engines = [name for name in loaded if name.startswith(("sandbox.engines.", "wasmtime"))]
    assert engines == []
