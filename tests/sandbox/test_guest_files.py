"""sandbox/guest/_sandlot_exec.write_files: a job's files that can't be written end the run
with an error naming the file, never the interpreter (issue 11, finding 11).

The guest module runs here under CPython, on a temporary directory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

GUEST_EXEC = Path(__file__).resolve().parents[2] / "sandbox" / "guest" / "_sandlot_exec.py"


@pytest.fixture(scope="module")
def guest_exec() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_sandlot_exec_under_test", GUEST_EXEC)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_files_are_written_with_their_directories(guest_exec: ModuleType, tmp_path: Path) -> None:
    files = {"a.txt": b"1", "data/in.csv": b"x,y", "deep/er/f": b""}
    assert guest_exec.write_files(str(tmp_path), files) is None
    assert {
        str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
    } == files


@pytest.mark.parametrize(
    ("files", "error_type", "named"),
    [
        pytest.param({"a": b"x", "a/b": b"y"}, "FileExistsError", "files.a/b", id="file-then-dir"),
        pytest.param({"a/b": b"y", "a": b"x"}, "IsADirectoryError", "files.a", id="dir-then-file"),
    ],
)
def test_a_file_that_cannot_be_written_is_the_runs_error(
    guest_exec: ModuleType, tmp_path: Path, files: dict[str, bytes], error_type: str, named: str
) -> None:
    outcome = guest_exec.write_files(str(tmp_path), files)
    assert outcome["status"] == "error"
    assert outcome["error"]["type"] == error_type
    assert outcome["error"]["message"].startswith(f"{named}: could not be written")
