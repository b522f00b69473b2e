"""/tmp on every engine: writable, ``tempfile``'s directory, outside the working directory.

What agent data code does first when it needs scratch space (the most common failure a
probe of such code found left, before the wasmtime engine mounted a /tmp). On the wasmtime
engine it is a host directory of the run's own beside /work; on Pyodide, Emscripten's
in-memory /tmp. Each run finding it empty: test_isolation.py; links out of it:
test_isolation.py's escapes; its disk limit: tests/app/test_run_disk.py.
"""

from __future__ import annotations

from tests.conformance.conftest import Run, engine_gap


def test_agent_code_writes_and_reads_tmp(run: Run) -> None:
    code = (
        "import os, csv\n"
        "with open('/tmp/data.csv', 'w', newline='') as f:\n"
        "    csv.writer(f).writerows([['city', 'sales'], ['Oslo', 3], ['Lima', 4]])\n"
        "os.makedirs('/tmp/out/charts', exist_ok=True)\n"
        "open('/tmp/out/charts/a.bin', 'wb').write(bytes(range(256)))\n"
        "os.rename('/tmp/out/charts/a.bin', '/tmp/out/b.bin')\n"
        "rows = list(csv.reader(open('/tmp/data.csv')))\n"
        "[rows, sorted(os.listdir('/tmp')), os.path.getsize('/tmp/out/b.bin'), os.listdir('.')]"
    )
    body = run(code)
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [
        [["city", "sales"], ["Oslo", "3"], ["Lima", "4"]],
        ["data.csv", "out"],
        256,
        [],  # nothing of /tmp in the working directory
    ]


def test_tempfile_uses_tmp(run: Run) -> None:
    code = (
        "import os, tempfile\n"
        "with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as f:\n"
        "    f.write('scratch')\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    open(os.path.join(d, 'x'), 'w').write('x')\n"
        "    inside = os.listdir(d)\n"
        "[tempfile.gettempdir(), os.path.dirname(f.name), open(f.name).read(), inside,\n"
        " os.path.dirname(d), os.path.exists(d), os.listdir('.')]"
    )
    body = run(code)
    assert body["status"] == "ok", body
    assert body["result"]["json"] == ["/tmp", "/tmp", "scratch", ["x"], "/tmp", False, []]


def test_sqlite_database_in_tmp(run: Run) -> None:
    code = (
        "import sqlite3\n"
        "db = sqlite3.connect('/tmp/x.db')\n"
        "db.execute('create table t (a integer)')\n"
        "db.executemany('insert into t values (?)', [(1,), (2,), (3,)])\n"
        "db.commit()\n"
        "db.close()\n"
        "sqlite3.connect('/tmp/x.db').execute('select sum(a) from t').fetchone()[0]"
    )
    body = run(code)
    assert body["status"] == "ok", body
    assert body["result"]["json"] == 6


def test_a_chart_saved_to_tmp(run: Run, engine: str) -> None:
    engine_gap(engine, "component", "the component guest has no matplotlib")
    engine_gap(engine, "pyodide", "this Pyodide has no matplotlib (test_outputs.py)")
    code = (
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [3, 1, 2])\n"
        "plt.savefig('/tmp/plot.png')\n"
        "plt.close('all')\n"
        "open('/tmp/plot.png', 'rb').read(8)[1:4].decode()"
    )
    body = run(code, limits={"memory_mb": 512})
    assert body["status"] == "ok", body
    assert body["result"]["json"] == "PNG"
