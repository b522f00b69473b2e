"""sandbox/engines/pyodide/loader.py and src/fastlink.js: linking replayed from a plan."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sandbox.engines.pyodide.builder import PyodideArtifacts
from sandbox.engines.pyodide.loader import _EDITS, patched_loader
from sandbox.errors import BuildError

CHECK = Path(__file__).parent / "js" / "link_check.mjs"
ORIGINAL = "".join(f"/*{i}*/{old}" for i, (old, _) in enumerate(_EDITS))


def test_every_edit_is_applied_once() -> None:
    patched = patched_loader(ORIGINAL, "/*fastlink*/")
    for old, new in _EDITS:
        assert patched.count(old) == new.count(old)  # left only where the edit keeps it
        assert new.replace("{fastlink}", "/*fastlink*/") in patched
    assert patched.count("/*fastlink*/") == 1


@pytest.mark.parametrize(
    "mangle",
    ["missing", "twice"],
    ids=["an edit that no longer matches", "an edit that matches twice"],
)
def test_another_pyodide_fails_the_build_naming_the_edit(mangle: str) -> None:
    old = _EDITS[0][0]
    source = ORIGINAL.replace(old, "") if mangle == "missing" else ORIGINAL + old
    with pytest.raises(BuildError, match=r"pyodide\.asm\.mjs has [02] copies of .updateGOT"):
        patched_loader(source, "")


@pytest.fixture(scope="module")
def link_check(pyodide_artifacts: PyodideArtifacts) -> dict[str, object]:
    layout = pyodide_artifacts.layout
    read = ",".join(str(p) for p in (layout.runtime_dir, CHECK.parent, layout.snapshot.parent))
    done = subprocess.run(
        [
            str(layout.deno),
            "run",
            "--no-prompt",
            "--no-remote",
            "--no-npm",
            "--no-config",
            "--no-lock",
            f"--allow-read={read}",
            str(CHECK),
            f"{layout.index_dir}/",
            str(layout.snapshot),
            str(layout.lock_file),
            str(layout.loader),
            str(layout.link_plan),
        ],
        capture_output=True,
        timeout=180,
        env={"DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, object] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def test_replay_fills_the_table_and_got_as_emscripten_does(link_check: dict[str, object]) -> None:
    [expected, actual] = link_check["tableLength"]  # type: ignore[misc]
    assert expected == actual > 10_000
    assert link_check["tableDiffers"] == []
    assert link_check["gotDiffers"] == []
    assert link_check["unlinkedGot"] == 0


def test_the_build_plan_is_what_this_pyodide_records(link_check: dict[str, object]) -> None:
    assert link_check["recordedMatchesBuild"] is True


def test_a_replayed_interpreter_runs_python(link_check: dict[str, object]) -> None:
    assert link_check["replayedRuns"] == "1.5"


def test_a_plan_that_does_not_fit_is_refused(link_check: dict[str, object]) -> None:
    assert "the link plan does not fit this Pyodide" in str(link_check["misfit"])
