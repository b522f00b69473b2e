"""JPEG in the data-stack guest: encode and decode times, in a run, against native Pillow.

Runs one job in the built snapshot (sandbox/engines/stack/host.py's runtime, as a worker
drives it) that saves a 640x480 photo-like image and a 640x480 matplotlib chart as JPEG
with a few option sets and opens them again. Each number is CPU time, so a busy box
changes it little: in the guest, the host's clock of the guest's thread for a run that
prepares the image and one that also encodes (or decodes) it ``--repeat`` times, the
difference per encode; natively (``--native``: an interpreter with numpy, Pillow and
matplotlib, such as .bench-venv from ``bench/data.py --setup``) the process's CPU clock
around the same loop, for the libjpeg columns.

With ``--baseline DIR`` (a data-stack artifact folder such as
``.artifacts/stack/<key>`` built from another commit), it also times ``print(1+1)``
there and here, alternating runs, to see what the codecs cost a run that doesn't use
them.

    .venv/bin/python bench/jpeg.py [--repeat 5] [--native .bench-venv/bin/python]
        [--baseline DIR --runs 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox import Job
from sandbox.engines.stack.builder import StackArtifacts, locate
from sandbox.engines.stack.host import StackRuntime
from sandbox.engines.wasmtime.host import _CollectingSink
from sandbox.limits import Limits

ROOT = Path(__file__).resolve().parent.parent
SETUP = """
import io, json, time
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

def photo(width, height):
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([
        128 + 100 * np.sin(x / 37) * np.cos(y / 23),
        128 + 90 * np.sin((x + y) / 51),
        128 + 80 * np.cos(np.hypot(x - width / 2, y - height / 2) / 19),
    ], axis=-1)
    noisy = rgb + rng.normal(0, 6, rgb.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))

def chart():
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    x = np.linspace(0, 10, 200)
    ax.plot(x, np.sin(x), label="sin")
    ax.plot(x, np.cos(x), "--", label="cos")
    ax.bar(np.arange(10), np.random.default_rng(1).random(10), alpha=0.3)
    ax.set_title("chart")
    ax.legend()
    ax.grid(True)
    fig.canvas.draw()
    image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy())
    plt.close(fig)
    return image

image = IMAGE
options = OPTIONS
buffer = io.BytesIO()
image.save(buffer, "JPEG", **options)
data = buffer.getvalue()
"""
ACTIONS = {
    "setup": "",
    "encode": "for _ in range(REPEAT):\n    image.save(io.BytesIO(), 'JPEG', **options)\n",
    "decode": "for _ in range(REPEAT):\n    Image.open(io.BytesIO(data)).load()\n",
}
CASES = [
    (name, image, options)
    for name, image in (("photo 640x480", "photo(640, 480)"), ("chart 640x480", "chart()"))
    for options in ({}, {"optimize": True}, {"quality": 90, "subsampling": 0})
]
# Natively: the same setup, each action timed by the process's CPU clock.
NATIVE = """
sizes, times = len(data), []
for action in ACTIONS:
    started = time.process_time()
    exec(action)
    times.append((time.process_time() - started) * 1000 / REPEAT)
print(json.dumps([sizes, *times]))
"""


def case_code(image: str, options: dict[str, object], action: str, repeat: int) -> str:
    code = SETUP.replace("IMAGE", image).replace("OPTIONS", repr(options)) + action
    return code.replace("REPEAT", str(repeat))


def in_guest(runtime: StackRuntime, code: str) -> tuple[float, str]:
    """The run's guest CPU ms (the host's clock of the guest's thread) and its stdout."""
    sink = _CollectingSink()
    job = Job(code=code, limits=Limits(cpu_ms=120_000, wall_ms=240_000))
    report = runtime.run(job, sink)
    runtime.prepare()
    if report.status.value != "ok":
        raise SystemExit(f"the guest's run failed: {report.error}")
    return report.usage.cpu_ms, "".join(sink.stdout)


def natively(python: str, image: str, options: dict[str, object], repeat: int) -> list[float]:
    actions = [
        ACTIONS["encode"].replace("REPEAT", str(repeat)),
        ACTIONS["decode"].replace("REPEAT", str(repeat)),
    ]
    code = case_code(image, options, "", repeat) + NATIVE.replace("ACTIONS", repr(actions)).replace(
        "REPEAT", str(repeat)
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    values: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return values


def print_one_plus_one(baseline: Path, here: StackArtifacts, runs: int) -> None:
    folders = {"baseline": baseline, "this build": here.root.parent}
    runtimes = {
        name: StackRuntime(
            StackArtifacts(
                key=folder.name,
                root=folder / "root",
                mpl_data=folder / "mpl-data",
                precompiled=folder / "stack.cwasm",
            ),
            Path(tempfile.mkdtemp(prefix="bench-jpeg-")),
        )
        for name, folder in folders.items()
    }
    walls: dict[str, list[float]] = {name: [] for name in runtimes}
    cpus: dict[str, list[float]] = {name: [] for name in runtimes}
    try:
        for i in range(runs + 5):  # alternating, the first five as warm-up
            for name, runtime in runtimes.items():
                started = time.perf_counter()
                report = runtime.run(Job(code="print(1+1)"), _CollectingSink())
                elapsed = (time.perf_counter() - started) * 1000
                runtime.prepare()
                if i >= 5:
                    walls[name].append(elapsed)
                    cpus[name].append(report.usage.cpu_ms)
    finally:
        for runtime in runtimes.values():
            runtime.close()
    print(f"\n`print(1+1)`, {runs} alternating runs each (runtime.run: the turn, no HTTP)\n")
    print("| snapshot | wall p10 ms | wall p50 ms | guest CPU p50 ms |\n|---|---|---|---|")
    for name, values in walls.items():
        values.sort()
        print(
            f"| {name} ({folders[name].name}) | {values[runs // 10]:.2f} "
            f"| {statistics.median(values):.2f} | {statistics.median(cpus[name]):.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--native", default=str(ROOT / ".bench-venv" / "bin" / "python"))
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    artifacts = locate(ROOT / ".artifacts")
    artifacts.check()
    runtime = StackRuntime(artifacts, Path(tempfile.mkdtemp(prefix="bench-jpeg-")))
    print(
        "| image | options | bytes | encode ms | decode ms "
        "| libjpeg bytes | libjpeg encode ms | libjpeg decode ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    try:
        for name, image, options in CASES:
            # Guest CPU of the setup alone, and of the setup plus `repeat` encodes or
            # decodes: the difference, per encode or decode.
            cpu = {
                action: in_guest(runtime, case_code(image, options, code, args.repeat))[0]
                for action, code in ACTIONS.items()
            }
            size = int(in_guest(runtime, case_code(image, options, "print(len(data))", 1))[1])
            encode = (cpu["encode"] - cpu["setup"]) / args.repeat
            decode = (cpu["decode"] - cpu["setup"]) / args.repeat
            try:
                native = natively(args.native, image, options, args.repeat)
                theirs = f"{native[0]} | {native[1]:.1f} | {native[2]:.1f}"
            except (OSError, subprocess.CalledProcessError):
                theirs = "- | - | -"
            print(
                f"| {name} | {options or 'default'} | {size} | {encode:.1f} | {decode:.1f} "
                f"| {theirs} |"
            )
    finally:
        runtime.close()
    if args.baseline is not None:
        print_one_plus_one(args.baseline, artifacts, args.runs)


if __name__ == "__main__":
    main()
