"""sandlot_client's public surface: __all__ is complete, and it stands alone (httpx only)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import sandlot_client

CLIENT_DIR = Path(sandlot_client.__file__).parent


def test_every_exported_name_exists_and_every_public_name_is_exported() -> None:
    for name in sandlot_client.__all__:
        assert hasattr(sandlot_client, name), name
    public = {name for name in vars(sandlot_client) if not name.startswith("_")}
    assert public == set(sandlot_client.__all__)


def test_it_imports_nothing_but_the_standard_library_and_httpx() -> None:
    # Users install the client to talk to a service, not the service itself.
    allowed = set(sys.stdlib_module_names) | {"httpx", "sandlot_client"}
    offenders = []
    for path in CLIENT_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] not in allowed]
    assert offenders == []


def test_it_is_typed() -> None:
    assert (CLIENT_DIR / "py.typed").exists()
