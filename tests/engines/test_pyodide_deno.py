"""sandbox/engines/pyodide/deno.py: the Deno command line grants as little as possible."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sandbox.engines.pyodide.builder import find_deno
from sandbox.engines.pyodide.deno import (
    SEMI_SPACE_MB,
    RuntimeLayout,
    deno_env,
    host_argv,
    host_config,
    snapshot_argv,
)

LAYOUT = RuntimeLayout(
    deno=Path("/opt/deno"),
    runtime_dir=Path("/srv/pyodide-runtime"),
    snapshot=Path("/srv/artifacts/pyodide/snapshot-x.bin"),
    lock_file=Path("/srv/artifacts/pyodide/packages/pyodide-lock.json"),
)


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(
        arg.split("=", 1) if "=" in arg else (arg, "") for arg in argv if arg.startswith("--")
    )


GATE = "127.0.0.1:4567"
CONTROL = "127.0.0.1:4568"


def test_host_may_read_only_its_files_and_reach_only_the_gate_and_its_driver() -> None:
    flags = _flags(host_argv(LAYOUT, GATE, CONTROL))
    assert flags["--allow-read"].split(",") == [
        "/srv/pyodide-runtime",
        "/srv/artifacts/pyodide/snapshot-x.bin",
        "/srv/artifacts/pyodide/loader-x.mjs",
        "/srv/artifacts/pyodide/link-x.json",
        "/srv/artifacts/pyodide/packages",
    ]
    assert flags["--allow-net"] == f"{GATE},{CONTROL}"
    for granted in (
        "--allow-all",
        "--allow-env",
        "--allow-write",
        "--allow-run",
        "--allow-ffi",
        "--allow-sys",
        "--allow-import",
        "-A",
    ):
        assert granted not in flags
    for denied in ("--no-prompt", "--no-remote", "--no-npm", "--no-config"):
        assert denied in flags


def test_host_config_tells_workers_the_same_narrow_world() -> None:
    config = host_config(LAYOUT, GATE, spares=2, control_port=4568, nonce="n0nce")
    assert config["gate"] == GATE
    assert config["spares"] == 2
    assert config["control"] == 4568
    assert config["nonce"] == "n0nce"
    assert config["loader"] == "/srv/artifacts/pyodide/loader-x.mjs"
    assert config["linkPlan"] == "/srv/artifacts/pyodide/link-x.json"


def test_argv_carries_no_configuration_a_worker_could_read() -> None:
    # Workers can read Deno.args: paths, ports and the nonce go on stdin instead.
    argv = host_argv(LAYOUT, GATE, CONTROL)
    assert argv[-1].endswith("src/host.mjs")
    assert not any("{" in arg or "nonce" in arg for arg in argv)


def test_host_sizes_v8s_young_generation_for_restores() -> None:
    flags = _flags(host_argv(LAYOUT, GATE, CONTROL))
    v8 = flags["--v8-flags"].split(",")
    assert f"--min-semi-space-size={SEMI_SPACE_MB}" in v8
    assert f"--max-semi-space-size={SEMI_SPACE_MB}" in v8


@pytest.mark.parametrize("address", ["0.0.0.0:80", "example.com:443", "10.0.0.1:8080", ":1"])
def test_gate_and_control_channel_must_be_on_loopback(address: str) -> None:
    with pytest.raises(ValueError, match="egress gate must listen on loopback"):
        host_argv(LAYOUT, address, CONTROL)
    with pytest.raises(ValueError, match="control channel must listen on loopback"):
        host_argv(LAYOUT, GATE, address)


def test_snapshot_build_has_no_network_at_all() -> None:
    flags = _flags(snapshot_argv(LAYOUT))
    assert "--allow-net" not in flags
    assert flags["--allow-read"].split(",") == [
        "/srv/pyodide-runtime",
        "/srv/artifacts/pyodide/loader-x.mjs",
        "/srv/artifacts/pyodide/packages",
    ]


def test_environment_is_only_denos_own() -> None:
    assert deno_env(Path("/tmp/d")) == {
        "DENO_DIR": "/tmp/d",
        "DENO_NO_UPDATE_CHECK": "1",
        "NO_COLOR": "1",
    }


def test_host_maps_node_builtins_to_the_sandbox_ones() -> None:
    flags = _flags(host_argv(LAYOUT, GATE, CONTROL))
    assert flags["--import-map"] == "/srv/pyodide-runtime/src/imports.json"


# What Pyodide's loader reads files, URLs and terminals with (src/node/module.mjs): none
# makes a realm, a thread or a process.
_OFFERED = {"node:crypto", "node:fs", "node:fs/promises", "node:path", "node:tty", "node:url"}
_RUNTIME = Path(__file__).parents[2] / "pyodide-runtime"


def test_every_node_builtin_of_the_pinned_deno_is_refused_or_offered(tmp_path: Path) -> None:
    # A Deno upgrade that adds a built-in fails here until imports.json says what it gets.
    lister = tmp_path / "list.mjs"
    lister.write_text(
        'import { builtinModules } from "node:module";\n'
        "console.log(JSON.stringify(builtinModules));\n"
    )
    listed = subprocess.run(
        [str(find_deno()), "run", "--no-config", "--no-remote", "--quiet", str(lister)],
        capture_output=True,
        text=True,
        check=True,
        env=deno_env(tmp_path / "deno"),
        timeout=60,
    )
    builtins = {f"node:{name.removeprefix('node:')}" for name in json.loads(listed.stdout)}
    mapped = json.loads((_RUNTIME / "src" / "imports.json").read_text())["imports"]
    assert builtins - _OFFERED == set(mapped)
    stubs = {target for target in mapped.values() if "refused.mjs" not in target}
    assert stubs == {"./node/vm.mjs", "./node/module.mjs"}
    for name, target in mapped.items():
        assert target in stubs or target == f"./node/refused.mjs?{name}"


def test_host_compiles_no_code_from_strings_and_bounds_backtracking() -> None:
    # Deno's terminate() can't stop a worker spinning in JavaScript: guest code gets no
    # JavaScript of its own (test_pyodide_spinning.py).
    v8 = _flags(host_argv(LAYOUT, GATE, CONTROL))["--v8-flags"].split(",")
    assert "--disallow-code-generation-from-strings" in v8
    assert "--enable-experimental-regexp-engine-on-excessive-backtracks" in v8
