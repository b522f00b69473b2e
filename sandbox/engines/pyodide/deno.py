"""How Deno is started for the Pyodide engine: deny by default, in pure functions.

The Deno process may read only the runtime's own files (its JS, the Pyodide
package, the snapshot and our lock file) and connect only to the egress gate
and the driver's control channel, both on loopback. No environment, no
writes, no subprocesses, no FFI, no system information, no remote or npm
imports, no Node built-in modules (an import map sends each to a module that
refuses). Per-run Web Workers get narrower permissions: read the same files,
connect to the gate only (``--unstable-worker-options``; see ``src/host.mjs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CODE_FLAGS",
    "SEMI_SPACE_MB",
    "V8_FLAGS",
    "RuntimeLayout",
    "allow_read",
    "deno_env",
    "host_argv",
    "host_config",
    "snapshot_argv",
]

_COMMON_FLAGS = (
    "--no-prompt",
    "--no-remote",
    "--no-npm",
    "--no-config",
    "--no-lock",
    "--quiet",
)

# V8's young generation, fixed at 32 MiB per semi-space for the host and every
# worker. Restoring Pyodide allocates tens of MB of short-lived JS objects
# (about 8,800 exports, GOT entries and table slots); with V8's default
# (growing from 1 MiB) that meant a train of parallel scavenges. Measured on
# the 2-core box, fresh workers restored back to back: about 20% less CPU per
# restore (645 -> 520 ms, process total) and about 10% less wall time; 64 MiB
# gained nothing more. See BENCHMARKS.md.
SEMI_SPACE_MB = 32
# Deno's terminate() can't stop a worker thread that spins outside Python (measured, Deno
# 2.9.8: a worker in `for(;;){}` burns a core forever after it), so guest code must not
# get to run long in JavaScript at all:
# - no code from strings (eval, Function, setTimeout with a string, pyodide's run_js):
#   guest code calls only the JavaScript that is there, it writes none. Process-wide;
#   the host's and Pyodide's own code compile no strings.
# - a backtracking RegExp falls back to V8's linear-time engine after 50,000 backtracks
#   (default); what that engine can't run is refused in workers (src/lockdown.mjs).
CODE_FLAGS = (
    "--disallow-code-generation-from-strings",
    "--enable-experimental-regexp-engine",
    "--enable-experimental-regexp-engine-on-excessive-backtracks",
)
_SEMI_SPACE_FLAGS = (
    f"--min-semi-space-size={SEMI_SPACE_MB}",
    f"--max-semi-space-size={SEMI_SPACE_MB}",
)
V8_FLAGS = "--v8-flags=" + ",".join((*_SEMI_SPACE_FLAGS, *CODE_FLAGS))


@dataclass(frozen=True, slots=True)
class RuntimeLayout:
    """Where the runtime's files are: ``pyodide-runtime/`` and the built artifacts."""

    deno: Path
    runtime_dir: Path
    snapshot: Path
    lock_file: Path

    @property
    def index_dir(self) -> Path:
        return self.runtime_dir / "node_modules" / "pyodide"

    @property
    def loader(self) -> Path:
        """Our copy of Pyodide's Emscripten loader (``loader.py``), beside the snapshot."""
        return self._beside_snapshot("loader", ".mjs")

    @property
    def link_plan(self) -> Path:
        """The link plan recorded when the snapshot was made (``src/fastlink.js``)."""
        return self._beside_snapshot("link", ".json")

    @property
    def built(self) -> tuple[Path, Path, Path]:
        """The files one build makes together: the snapshot, the loader and the link plan."""
        return (self.snapshot, self.loader, self.link_plan)

    def _beside_snapshot(self, kind: str, suffix: str) -> Path:
        # snapshot-<key>.bin -> <kind>-<key><suffix>: the same key, so they go stale together.
        key = self.snapshot.stem.removeprefix("snapshot-")
        return self.snapshot.with_name(f"{kind}-{key}{suffix}")


def host_argv(layout: RuntimeLayout, gate: str, control: str) -> list[str]:
    """argv of the long-lived Deno host (``src/host.mjs``) that runs jobs.

    ``gate`` is the egress gate's address and ``control`` the driver's control
    channel, both ``127.0.0.1:port``: the only places the process may connect
    to (its workers: the gate only). The configuration goes on stdin
    (:func:`host_config`), not here: workers can read ``Deno.args``.
    """
    for name, address in (("egress gate", gate), ("control channel", control)):
        if not address.startswith("127.0.0.1:"):
            raise ValueError(f"the {name} must listen on loopback, got {address!r}")
    return [
        str(layout.deno),
        "run",
        *_COMMON_FLAGS,
        "--unstable-worker-options",
        V8_FLAGS,
        # Every Node built-in resolves to a module that refuses (src/refused.mjs), for
        # the workers too: guest code gets no node:vm realm, thread or process.
        f"--import-map={layout.runtime_dir / 'src' / 'imports.json'}",
        allow_read(layout.runtime_dir, *layout.built, layout.lock_file.parent),
        f"--allow-net={gate},{control}",
        str(layout.runtime_dir / "src" / "host.mjs"),
    ]


def host_config(
    layout: RuntimeLayout, gate: str, spares: int, control_port: int, nonce: str
) -> dict[str, object]:
    """What ``src/host.mjs`` reads from stdin: its files, the gate, and how to call home.

    ``nonce`` proves to the driver that the connection on ``control_port`` is this
    process's; stdin is closed once it is written, so no worker reads it later.
    """
    return {
        "indexURL": f"{layout.index_dir}/",
        "snapshot": str(layout.snapshot),
        "lockFile": str(layout.lock_file),
        "loader": str(layout.loader),
        "linkPlan": str(layout.link_plan),
        "packagesDir": str(layout.lock_file.parent),
        "runtimeDir": str(layout.runtime_dir),
        "gate": gate,
        "spares": spares,
        "control": control_port,
        "nonce": nonce,
    }


def snapshot_argv(layout: RuntimeLayout) -> list[str]:
    """argv of the build step that makes the memory snapshot (``src/snapshot.mjs``)."""
    return [
        str(layout.deno),
        "run",
        *_COMMON_FLAGS,
        allow_read(layout.runtime_dir, layout.loader, layout.lock_file.parent),
        str(layout.runtime_dir / "src" / "snapshot.mjs"),
    ]


def allow_read(*paths: Path) -> str:
    """Deno's flag that lets a process read ``paths`` (and what is under them) and nothing else."""
    return f"--allow-read={','.join(str(p) for p in paths)}"


def deno_env(deno_dir: Path) -> dict[str, str]:
    """The whole environment Deno gets: its cache dir and nothing of the service's."""
    return {"DENO_DIR": str(deno_dir), "DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1"}
