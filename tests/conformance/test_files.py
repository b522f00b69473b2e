"""``/dev/null``, disk usage and ``np.fromfile`` as agent code expects them
(``sandbox/guest/_sandlot_files.py``).

The WASI guests had no ``/dev/null`` (a preopen maps a directory, never a device), no
``os.statvfs`` (so no ``shutil.disk_usage``), and numpy's ``fromfile`` needs ``os.dup``,
which WASI lacks; Pyodide made disk numbers up.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Run, engine_gap

MIB = 1024 * 1024


def _ok(body: dict[str, object]) -> list[str]:
    assert body["status"] == "ok", (body["error"], body["stderr"])
    return str(body["stdout"]).splitlines()


def test_dev_null_swallows_writes_and_reads_empty(run: Run) -> None:
    code = (
        "import contextlib, io, logging, os, pathlib, sys\n"
        "with open(os.devnull, 'w') as sink:\n"
        "    print(sink.write('x' * 100), sink.name, sink.mode)\n"
        "with contextlib.redirect_stdout(open(os.devnull, 'w')):\n"
        "    print('hidden')\n"
        "saved, sys.stdout = sys.stdout, open(os.devnull, 'w')\n"
        "print('hidden too')\n"
        "sys.stdout = saved\n"
        "print(repr(open(os.devnull).read()), open('/dev/null', 'rb').read())\n"
        "with open(os.devnull, 'r+b') as both:\n"
        "    print(both.write(b'abc'), both.read(), both.seek(10), both.tell())\n"
        "print(pathlib.Path(os.devnull).write_text('hi'), pathlib.Path('/dev/null').read_bytes())\n"
        "handler = logging.FileHandler(os.devnull)\n"
        "logging.getLogger('x').addHandler(handler)\n"
        "logging.getLogger('x').error('nowhere')\n"
        "handler.close()\n"
        "try:\n"
        "    open(os.devnull, 'x')\n"
        "except FileExistsError:\n"
        "    print('FileExistsError')\n"
        "try:\n"
        "    open(os.devnull, 'rw')\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    body = run(code)
    assert _ok(body) == [
        "100 /dev/null w",
        "'' b''",
        "3 b'' 0 0",
        "2 b''",
        "FileExistsError",
        "must have exactly one of create/read/write/append mode",
    ]
    assert body["stderr"] == ""


def test_dev_null_descriptor(run: Run, engine: str) -> None:
    # Emscripten's /dev/null is a device; the WASI guests' is an in-memory file, which
    # has no descriptor and says so.
    code = (
        "import io, os\n"
        "for get in (lambda: open(os.devnull, 'w').fileno(),\n"
        "            lambda: os.open(os.devnull, os.O_WRONLY)):\n"
        "    try:\n"
        "        print(type(get()).__name__)\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__, 'in-memory file' in str(exc))\n"
    )
    if engine == "pyodide":
        assert _ok(run(code)) == ["int", "int"]
    else:
        assert _ok(run(code)) == ["UnsupportedOperation True", "FileNotFoundError True"]


def test_other_files_open_as_before(run: Run) -> None:
    code = (
        "import io, os\n"
        "open('null', 'w').write('not the device')\n"
        "print(open('null').read(), open('./null').read())\n"
        "fd = os.open('raw.bin', os.O_WRONLY | os.O_CREAT)\n"
        "os.write(fd, b'xyz')\n"
        "os.close(fd)\n"
        "with io.open('raw.bin', 'rb', buffering=0) as raw:\n"
        "    print(type(raw).__name__, raw.read())\n"
        "try:\n"
        "    open('/dev/nothing')\n"
        "except FileNotFoundError:\n"
        "    print('FileNotFoundError')\n"
    )
    assert _ok(run(code)) == ["not the device not the device", "FileIO b'xyz'", "FileNotFoundError"]


def test_disk_usage_reports_the_runs_room(run: Run, engine: str) -> None:
    # The service's run quota (SANDLOT_RUN_DISK_MB, 512 by default); a Pyodide run's files
    # live in its memory: its memory_mb.
    total = 256 * MIB if engine == "pyodide" else 512 * MIB
    code = (
        "import os, shutil\n"
        "before = shutil.disk_usage('/')\n"
        "os.makedirs('sub', exist_ok=True)\n"
        "open('sub/blob.bin', 'wb').write(b'x' * (2 * 1024 * 1024 + 1))\n"
        "open('/tmp/scratch.bin', 'wb').write(b'x' * (1024 * 1024))\n"
        "after = shutil.disk_usage('.')\n"
        "print(before.total, before.used, before.free + before.used == before.total)\n"
        "print(after.total, after.used, after.free + after.used == after.total)\n"
        "st = os.statvfs('sub')\n"
        "print(st.f_frsize, st.f_blocks * st.f_frsize, st.f_bavail == st.f_bfree)\n"
        "try:\n"
        "    shutil.disk_usage('/no/such/place')\n"
        "except FileNotFoundError:\n"
        "    print('FileNotFoundError')\n"
    )
    assert _ok(run(code, limits={"memory_mb": 256})) == [
        f"{total} 0 True",
        f"{total} {3 * MIB + 4096} True",  # /work and /tmp, in whole blocks
        f"4096 {total} True",
        "FileNotFoundError",
    ]


def test_np_fromfile_reads_through_python(run: Run, engine: str) -> None:
    engine_gap(engine, "component", "no numpy (the data-stack guest has it)")
    engine_gap(engine, "pyodide", "no numpy here")
    code = (
        "import io, numpy as np\n"
        "a = np.arange(6, dtype='<f8')\n"
        "open('a.bin', 'wb').write(a.tobytes() + b'xy')\n"
        "print(np.fromfile('a.bin', dtype='<f8').tolist())\n"
        "with open('a.bin', 'rb') as f:\n"
        "    print(np.fromfile(f, dtype='<f8', count=2).tolist(), f.tell())\n"
        "    print(np.fromfile(f, dtype='<f8', offset=8).tolist(), f.tell())\n"
        "b = np.fromfile('a.bin', dtype='<f8', count=1)\n"
        "b[0] = 7\n"
        "print(b.flags.writeable, b.tolist())\n"
        "open('a.txt', 'w').write('1, 2, 3, 4')\n"
        "print(np.fromfile('a.txt', sep=',', dtype=int).tolist())\n"
        "print(np.fromfile(io.BytesIO(a.tobytes()), dtype='<f8', count=3).tolist())\n"
        "try:\n"
        "    a.tofile('b.bin')\n"
        "except OSError as exc:\n"
        "    print('np.save' in str(exc))\n"
    )
    assert _ok(run(code)) == [
        "[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]",
        "[0.0, 1.0] 16",
        "[3.0, 4.0, 5.0] 48",
        "True [7.0]",
        "[1, 2, 3, 4]",
        "[0.0, 1.0, 2.0]",
        "True",
    ]


@pytest.mark.parametrize("name", ["os.statvfs", "shutil.disk_usage"])
def test_disk_usage_can_be_patched(run: Run, name: str) -> None:
    code = (
        "import os, shutil\n"
        "from unittest import mock\n"
        f"with mock.patch({name!r}, return_value=(1, 2, 3)):\n"
        f"    print({name}('/'))\n"
    )
    assert _ok(run(code)) == ["(1, 2, 3)"]
