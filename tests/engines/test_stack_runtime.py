"""sandbox/engines/stack: the data-stack guest runs real data code, within the same limits.

The real snapshot (built by ``make build``), driven through StackRuntime as a worker
process drives it; only the internet is faked (a loopback server).
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.egress import EgressPolicy, SubrequestRecord
from sandbox.engines.stack import StackArtifacts, build
from sandbox.engines.stack.host import INLINE_JOB_MAX_CHARS, OUTBOX_CAPACITY, StackRuntime
from sandbox.events import Display, RunReport, Status
from sandbox.jobs import Job
from sandbox.limits import Limits
from tests.conftest import ARTIFACT_DIR, PRINT_THEN_BUSY
from tests.loopback import LOOPBACK_NETWORKS, LoopbackServer

pytestmark = pytest.mark.slow


class Sink:
    def __init__(self) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        # When each piece of output reached the host.
        self.arrived: list[float] = []
        self.records: list[SubrequestRecord] = []
        self.displays: list[Display] = []

    def output(self, stream: str, text: str) -> None:
        self.arrived.append(time.monotonic())
        (self.stdout if stream == "stdout" else self.stderr).append(text)

    def text(self, stream: str) -> str:
        return "".join(self.stdout if stream == "stdout" else self.stderr)

    def subrequest(self, record: SubrequestRecord) -> None:
        self.records.append(record)

    def display(self, output: Display) -> None:
        self.displays.append(output)

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def stack_artifacts() -> StackArtifacts:
    return build(ARTIFACT_DIR)


@pytest.fixture(scope="module")
def runtime(
    stack_artifacts: StackArtifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackRuntime]:
    rt = StackRuntime(stack_artifacts, tmp_path_factory.mktemp("stack-work"))
    yield rt
    rt.close()


def run(
    runtime: StackRuntime,
    code: str,
    *,
    egress: EgressPolicy | None = None,
    live: bool = True,
    **limits: Any,
) -> tuple[RunReport, Sink]:
    sink = Sink()
    job = Job(
        code=code,
        limits=Limits(**limits) if limits else Limits(),
        live_output=live,
        **({"egress": egress} if egress is not None else {}),
    )
    report = runtime.run(job, sink)
    runtime.prepare()
    return report, sink


def test_numpy_pandas_and_matplotlib_are_loaded_and_compute(runtime: StackRuntime) -> None:
    code = (
        "import sys\n"
        "loaded = all(m in sys.modules for m in ('numpy', 'pandas', 'matplotlib.pyplot'))\n"
        "import numpy as np, pandas as pd\n"
        "df = pd.DataFrame({'k': list('abcab'), 'v': np.arange(5) * 1.5})\n"
        "det = round(float(np.linalg.det(np.eye(3) * 2)), 9)\n"
        "[loaded, df.groupby('k').v.sum().round(2).to_dict(), det]"
    )
    report, _ = run(runtime, code)
    assert report.status is Status.OK, report.error
    assert report.result is not None
    assert report.result.json == [True, {"a": 4.5, "b": 7.5, "c": 3.0}, 8.0]


def test_a_chart_renders_to_a_png_of_the_right_size(runtime: StackRuntime) -> None:
    code = (
        "import io, base64, matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(4, 3), dpi=50)\n"
        "ax.plot([1, 2, 3], [3, 1, 2])\n"
        "buf = io.BytesIO()\n"
        "fig.savefig(buf, format='png')\n"
        "base64.b64encode(buf.getvalue()).decode()"
    )
    report, _ = run(runtime, code)
    assert report.status is Status.OK, report.error
    assert report.result is not None
    png = base64.b64decode(report.result.json)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (200, 150)


def test_the_rest_of_the_stack_imports_on_demand(runtime: StackRuntime) -> None:
    code = (
        "from scipy import optimize\n"
        "from sklearn.linear_model import LinearRegression\n"
        "import numpy as np\n"
        "x = np.arange(10.0).reshape(-1, 1)\n"
        "fit = LinearRegression().fit(x, 3 * x.ravel() + 1)\n"
        "root = optimize.brentq(lambda t: t * t - 2, 0, 2)\n"
        "[round(float(fit.coef_[0]), 6), round(float(fit.intercept_), 6), round(root, 6)]"
    )
    report, _ = run(runtime, code, wall_ms=60_000, cpu_ms=60_000, memory_mb=512)
    assert report.status is Status.OK, report.error
    assert report.result is not None and report.result.json == [3.0, 1.0, 1.414214]


def test_output_streams_and_errors_are_the_users(runtime: StackRuntime) -> None:
    report, sink = run(runtime, "print('hello')\nimport sys\nprint('oops', file=sys.stderr)\n1/0")
    assert report.status is Status.ERROR
    assert report.error is not None and report.error.type == "ZeroDivisionError"
    assert 'File "main.py", line 4' in report.error.traceback
    assert "_sandlot" not in report.error.traceback
    assert "".join(sink.stdout) == "hello\n"
    # The uncaught exception's traceback follows on stderr, as python prints it.
    stderr = "".join(sink.stderr)
    assert stderr.startswith("oops\nTraceback (most recent call last):\n")
    assert stderr.endswith("ZeroDivisionError: division by zero\n")


@pytest.mark.parametrize("padding", [0, INLINE_JOB_MAX_CHARS], ids=["in-source", "by-door"])
def test_the_job_arrives_whole_in_the_turns_source_or_by_the_door(
    runtime: StackRuntime, padding: int
) -> None:
    # A short job travels in the turn's source as a literal, a long one through the door:
    # either way the code, stdin and env arrive exactly, whatever characters they hold.
    tricky = "quote ' \" \\ \\x00 \x01 \u2028 é \U0001f600 ''' \"\"\" )\n_sandlot_stack.run()\nend"
    code = f"# {'x' * padding}\nimport os, sys\n[{tricky!r}, sys.stdin.read(), os.environ['K']]"
    job = Job(code=code, stdin=tricky, env={"K": tricky.replace("\x00", "")})
    sink = Sink()
    report = runtime.run(job, sink)
    runtime.prepare()
    assert report.status is Status.OK, report.error
    assert report.result is not None
    assert report.result.json == [tricky, tricky, tricky.replace("\x00", "")]


def test_runs_do_not_see_each_other(runtime: StackRuntime) -> None:
    run(runtime, "import numpy as np\nnp.secret = 42\nopen('/work/left', 'w').write('x')")
    report, _ = run(runtime, "import numpy as np, os\n[hasattr(np, 'secret'), os.listdir('/work')]")
    assert report.result is not None and report.result.json == [False, []]


def test_a_run_finds_matplotlib_as_a_fresh_process_does(runtime: StackRuntime) -> None:
    # The snapshot drew warm-up figures (_boot_csv.py): none of it may show in a run.
    code = (
        "import sys, matplotlib, matplotlib.pyplot as plt, matplotlib.units as units\n"
        "open_at_start = plt.get_fignums()\n"
        "rc = sorted(k for k, v in matplotlib.rcParams.items()\n"
        "            if v != matplotlib.rcParamsDefault[k] and not k.startswith('backend'))\n"
        "converters = sorted(t.__name__ for t in units.registry)\n"
        "warned = sorted(name for name, m in list(sys.modules.items())\n"
        "                if set(getattr(m, '__warningregistry__', None) or ()) - {'version'})\n"
        "[open_at_start, plt.figure().number, rc, converters, warned]"
    )
    report, _ = run(runtime, code)
    assert report.status is Status.OK, report.error
    assert report.result is not None
    # What `python -c` shows with the same releases and matplotlib.use("Agg"): no figure,
    # numbering from 1, rcParams at their defaults but the backend, matplotlib's own
    # unit converters only (pandas adds its own while it plots), no warning remembered.
    assert report.result.json == [
        [],
        1,
        [],
        ["Decimal", "bytes", "bytes_", "date", "datetime", "datetime64", "str", "str_"],
        [],
    ]


def test_bundled_font_tables_are_kept_and_other_fonts_read_each_time(
    runtime: StackRuntime,
) -> None:
    code = (
        "import shutil, matplotlib\n"
        "from matplotlib import ft2font\n"
        "fonts = matplotlib.get_data_path() + '/fonts/ttf/'\n"
        "bundled = ft2font.FT2Font(fonts + 'DejaVuSans.ttf')\n"
        "table = bundled.get_sfnt_table('head')\n"
        "table['unitsPerEm'] = 1\n"
        "kept = bundled.get_sfnt_table('head')['unitsPerEm']\n"
        "shutil.copy(fonts + 'DejaVuSans.ttf', '/work/font.ttf')\n"
        "first = ft2font.FT2Font('/work/font.ttf').get_sfnt_table('OS/2')['usWeightClass']\n"
        "shutil.copy(fonts + 'DejaVuSans-Bold.ttf', '/work/font.ttf')\n"
        "second = ft2font.FT2Font('/work/font.ttf').get_sfnt_table('OS/2')['usWeightClass']\n"
        "[kept, first, second, bundled.get_sfnt_table('pclt') is None]"
    )
    report, _ = run(runtime, code)
    assert report.status is Status.OK, report.error
    assert report.result is not None
    # A caller's change stays its own; a font the code wrote is read again when replaced.
    assert report.result.json == [2048, 400, 700, True]


@pytest.mark.parametrize(
    ("code", "limits", "status"),
    [
        (
            "import pandas as pd\nwhile True:\n    pd.DataFrame({'a': [1]}).sum()",
            {"cpu_ms": 300},
            Status.CPU_LIMIT,
        ),
        ("import time\ntime.sleep(10)", {"wall_ms": 500}, Status.WALL_LIMIT),
        (
            "import numpy as np\na = np.ones(2 * 10**9, dtype=np.uint8)",
            {"memory_mb": 64},
            Status.MEMORY_LIMIT,
        ),
        ("x = bytearray(10**9)", {"memory_mb": 64}, Status.MEMORY_LIMIT),
        ("while True:\n    print('x' * 1000)", {"output_bytes": 10_000}, Status.OUTPUT_LIMIT),
    ],
    ids=["cpu-in-pandas", "sleep", "numpy-bomb", "bytearray-bomb", "output"],
)
def test_limits_hold_with_the_stack_loaded(
    runtime: StackRuntime, code: str, limits: dict[str, int], status: Status
) -> None:
    report, _ = run(runtime, code, **limits)
    assert report.status is status, (report.status, report.error)
    if "wall_ms" in limits:
        assert report.usage.wall_ms < limits["wall_ms"] + 1_000


@pytest.mark.parametrize(
    "frame",
    [b"garbage", b'{"op": "nope"}', b'{"op": "sleep"}', b'{"op": "fetch", "url": 5}', b"[]"],
    ids=["not-json", "unknown-op", "no-ms", "bad-fetch", "not-an-object"],
)
def test_a_bad_frame_at_the_door_is_the_guests_error(runtime: StackRuntime, frame: bytes) -> None:
    report, _ = run(runtime, f"import _host\n_host.call({frame!r})")
    assert report.status is Status.ERROR
    assert report.error is not None and report.error.type == "OSError"
    ok, _ = run(runtime, "1 + 1")  # the worker is fine
    assert ok.result is not None and ok.result.json == 2


def test_egress_goes_through_the_gate_only(runtime: StackRuntime) -> None:
    allowed, canary = LoopbackServer(), LoopbackServer()
    try:
        policy = EgressPolicy.from_strings([allowed.host], private_networks=LOOPBACK_NETWORKS)
        code = (
            "import sandlot, urllib.request\n"
            f"a = sandlot.fetch('{allowed.url}/json').json()\n"
            f"b = urllib.request.urlopen('{allowed.url}/hello').read().decode()\n"
            "try:\n"
            f"    sandlot.fetch('{canary.url}/hello')\n"
            "    c = 'reached'\n"
            "except sandlot.FetchError as exc:\n"
            "    c = 'refused'\n"
            "[a, b, c]"
        )
        report, sink = run(runtime, code, egress=policy)
        assert report.status is Status.OK, report.error
        assert report.result is not None
        assert report.result.json == [{"answer": 42}, "hello from loopback", "refused"]
        assert allowed.hit_count == 2 and canary.hit_count == 0
        assert [r.allowed for r in sink.records] == [True, True, False]
    finally:
        allowed.close()
        canary.close()


def test_the_snapshot_is_mapped_not_copied(stack_artifacts: StackArtifacts, tmp_path: Path) -> None:
    # A run of print(1+1) touches a few MB of a heap of about 150 MB.
    rt = StackRuntime(stack_artifacts, tmp_path)
    try:
        run(rt, "pass")
        report, _ = run(rt, "print(1 + 1)")
        assert report.usage.memory_peak_bytes < 64 * 1024 * 1024
    finally:
        rt.close()


# The outbox (guest/_sandlot_outbox.py): a run nobody follows as it goes (live_output
# false: JSON answers, tools, dispatch) writes its stdout and stderr into a buffer in the
# guest instead of a WASI call per line; the host reads it when the turn is over, however
# it ended.


def test_held_output_comes_back_whole_and_in_order(runtime: StackRuntime) -> None:
    # Several times the outbox's size, both streams, text and bytes: it is written out
    # when full, and the rest read by the host at the end.
    code = (
        "import sys\n"
        "for i in range(20000):\n"
        "    print(f'line {i}')\n"
        "    if i % 1000 == 0:\n"
        "        print(f'err {i}', file=sys.stderr)\n"
        "        sys.stdout.buffer.write(memoryview(b'raw\\xc3\\xa9\\n').cast('H'))\n"
        "print('no newline at the end', end='')\n"
    )
    report, sink = run(runtime, code, live=False)
    assert report.status is Status.OK, report.error
    expected = []
    for i in range(20000):
        expected.append(f"line {i}\n")
        if i % 1000 == 0:
            expected.append("rawé\n")
    expected.append("no newline at the end")
    stdout = sink.text("stdout")
    assert len(stdout) > 3 * OUTBOX_CAPACITY
    assert stdout == "".join(expected)
    assert sink.text("stderr") == "".join(f"err {i}\n" for i in range(0, 20000, 1000))


@pytest.mark.parametrize(
    ("tail", "limits", "status"),
    [
        ("while True:\n    pass", {"wall_ms": 400}, Status.WALL_LIMIT),
        ("while True:\n    pass", {"cpu_ms": 300}, Status.CPU_LIMIT),
        ("x = bytearray(10**9)", {"memory_mb": 64}, Status.MEMORY_LIMIT),
        ("import os\nos._exit(3)", {}, Status.ERROR),
        ("while True:\n    print('x' * 1000)", {"output_bytes": 100_000}, Status.OUTPUT_LIMIT),
    ],
    ids=["wall", "cpu", "memory", "os-exit", "output"],
)
def test_held_output_is_not_lost_when_the_run_is_stopped(
    runtime: StackRuntime, tail: str, limits: dict[str, int], status: Status
) -> None:
    code = "import sys\nprint('a')\nprint('b', file=sys.stderr)\nprint('c', end='')\n" + tail
    report, sink = run(runtime, code, live=False, **limits)
    assert report.status is status, report.error
    # A MemoryError's traceback follows on stderr, as python prints it.
    assert sink.text("stderr").startswith("b\n")
    assert (sink.text("stderr") == "b\n") is (status is not Status.MEMORY_LIMIT)
    if status is Status.OUTPUT_LIMIT:
        assert sink.text("stdout").startswith("a\ncxxx")
        assert len(sink.text("stdout")) + len(sink.text("stderr")) <= 100_000
    else:
        assert sink.text("stdout") == "a\nc"


@pytest.mark.parametrize("live", [False, True], ids=["held", "live"])
def test_output_printed_before_a_display_is_counted_before_it(
    runtime: StackRuntime, live: bool
) -> None:
    # The display goes over output_bytes: what was printed before it must be what's kept,
    # held in the outbox or not (a unittest verdict before a chart: it used to be lost).
    code = (
        "import sys, sandlot\n"
        "print('before')\n"
        "print('err-before', file=sys.stderr)\n"
        "sandlot.display('x' * 5000, mime_type='text/plain')\n"
        "print('after')\n"
    )
    report, sink = run(runtime, code, live=live, output_bytes=2000)
    assert report.status is Status.OUTPUT_LIMIT, report.error
    assert sink.text("stdout") == "before\n"
    assert sink.text("stderr") == "err-before\n"
    assert sink.displays == []


def test_live_output_comes_as_it_is_written_held_output_at_the_end(
    runtime: StackRuntime,
) -> None:
    started = time.monotonic()
    report, live = run(runtime, PRINT_THEN_BUSY, live=True)
    assert report.status is Status.OK and live.text("stdout") == "first\nlast\n"
    first_at = live.arrived[0] - started
    assert first_at < 0.3, f"live output came {first_at:.2f} s into a 0.5 s run"

    started = time.monotonic()
    report, held = run(runtime, PRINT_THEN_BUSY, live=False)
    assert report.status is Status.OK and held.text("stdout") == "first\nlast\n"
    first_at = held.arrived[0] - started
    assert first_at >= 0.5, f"held output came {first_at:.2f} s into a 0.5 s run"


def test_a_guest_that_scribbles_on_its_outbox_harms_only_its_own_output(
    runtime: StackRuntime,
) -> None:
    # The outbox is the user's own memory: what the host reads there is checked, and the
    # next run's outbox is the snapshot's again.
    code = (
        "import _sandlot_outbox, struct\n"
        "box = _sandlot_outbox.OUTBOX._buf\n"
        "print('kept')\n"
        "box[24:29] = bytes([9]) + struct.pack('<I', 5)\n"  # a record for fd 9
        "struct.pack_into('<II', box, 16, 0xFFFFFFF0, 0)\n"  # more than there is room for
    )
    report, sink = run(runtime, code, live=False)
    assert report.status is Status.OK, report.error
    assert sink.text("stdout") == "" and sink.text("stderr") == ""
    report, sink = run(runtime, "print('fine')", live=False)
    assert report.status is Status.OK and sink.text("stdout") == "fine\n"


def test_each_turn_of_a_session_gets_its_own_output(runtime: StackRuntime, tmp_path: Path) -> None:
    runtime.open_session("ses_outbox", tmp_path / "ses", memory_mb=256)
    try:
        outputs = []
        for code in ("print('one')", "print('two')", "print('three')\nwhile True:\n    pass"):
            sink = Sink()
            job = Job(code=code, limits=Limits(wall_ms=400), live_output=False)
            report, alive = runtime.run_turn("ses_outbox", job, sink)
            outputs.append((report.status, alive, sink.text("stdout")))
        assert outputs == [
            (Status.OK, True, "one\n"),
            (Status.OK, True, "two\n"),
            (Status.WALL_LIMIT, False, "three\n"),
        ]
    finally:
        runtime.close_session("ses_outbox")
