"""Sandlot's copy of Pyodide's Emscripten loader, with linking replayed from a plan.

``pyodide.asm.mjs`` (npm ``pyodide``) links the main wasm module on every
start. ``pyodide-runtime/src/fastlink.js`` is injected into a copy of it so
that the outcome is recorded once, when the snapshot is made, and replayed by
every restore (see that file). The copy is an artifact, written beside the
snapshot; Pyodide's own files are never changed.

Each edit must match Pyodide's source exactly once: another Pyodide version
fails the build here, with the edit that no longer fits, instead of linking
differently at run time.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.errors import BuildError

__all__ = ["patched_loader", "write_loader"]

# (what Pyodide 314.0.7 has, what the copy gets); {fastlink} is the injected code.
_EDITS = (
    # Link through the plan instead of Emscripten's per-start loops.
    (
        "updateGOT(origExports);LDSO.init();loadDylibs();",
        "sandlotLink(origExports);",
    ),
    # GOT entries of a replayed plan are made when first asked for.
    ("var GOT={};", "var GOT=sandlotLazyGot();"),
    # The injected functions, in the module's scope, before their caller.
    ("async function createWasm(){", "{fastlink}\nasync function createWasm(){"),
    # A replayed plan wraps JS imports as table slots without Emscripten's
    # function → slot map; they join it when the map is first built.
    (
        "functionsInTableMap=new WeakMap;updateTableMap(0,wasmTable.length)}",
        "functionsInTableMap=new WeakMap;updateTableMap(0,wasmTable.length);"
        "for(var[f,i]of sandlotLinkedJs)functionsInTableMap.set(f,i)}",
    ),
)


def patched_loader(original: str, fastlink: str) -> str:
    """Pyodide's ``pyodide.asm.mjs`` source with the link plan wired in.

    Raises:
        BuildError: an edit does not match the source exactly once (another
            Pyodide version); the message names it.
    """
    text = original
    for old, new in _EDITS:
        count = text.count(old)
        if count != 1:
            raise BuildError(
                f"Pyodide's pyodide.asm.mjs has {count} copies of {old!r} (expected 1): "
                "this Pyodide version is not the one sandbox/engines/pyodide/loader.py knows"
            )
        text = text.replace(old, new.replace("{fastlink}", fastlink))
    return text


def write_loader(index_dir: Path, fastlink: Path, target: Path) -> None:
    """Write the patched copy of ``index_dir/pyodide.asm.mjs`` to ``target``."""
    source = (index_dir / "pyodide.asm.mjs").read_text()
    tmp = target.with_suffix(".tmp")
    tmp.write_text(patched_loader(source, fastlink.read_text()))
    tmp.rename(target)
