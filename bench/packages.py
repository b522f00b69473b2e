"""What an installed pure-Python package costs a run on the data-stack guest.

Runs each import in a fresh instance of the real snapshot (StackRuntime, as a worker
process does, no HTTP) and times it inside the guest; prints a Markdown table of p50 and
p90 per import. Needs `make build` (the stack and its packages).

    .venv/bin/python bench/packages.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.engines.stack import build  # noqa: E402
from sandbox.engines.stack.host import StackRuntime  # noqa: E402
from sandbox.jobs import Job  # noqa: E402
from sandbox.limits import Limits  # noqa: E402

IMPORTS = [
    "json",
    "requests",
    "faker",
    "holidays",
    "pytz",
    "folium",
    "natsort",
    "chardet",
    "xlwt",
    "docx",
    "rsa",
    "prettytable",
    "texttable",
    "pyquery",
    "flask",
    "nltk",
    "textblob",
    "ssl",
    "geopy.distance",
    "flask_mail",
    "flask_login",
    "flask_restful",
    "flask_wtf",
    "django.http",
    "mechanize",
]


class _Sink:
    def __init__(self) -> None:
        self.stdout: list[str] = []

    def output(self, stream: str, text: str) -> None:
        if stream == "stdout":
            self.stdout.append(text)

    def subrequest(self, record: object) -> None:
        pass

    def display(self, output: object) -> None:
        pass

    def flush(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=None, help="these imports only")
    parser.add_argument("--artifacts", type=Path, default=ROOT / ".artifacts")
    args = parser.parse_args()
    artifacts = build(args.artifacts)
    with tempfile.TemporaryDirectory() as work:
        runtime = StackRuntime(artifacts, Path(work))
        try:
            print("| import (fresh instance each) | p50 ms | p90 ms |")
            print("|---|---:|---:|")
            for module in args.only or IMPORTS:
                code = (
                    "import time\n"
                    "t = time.perf_counter()\n"
                    f"import {module}\n"
                    "print((time.perf_counter() - t) * 1000)\n"
                )
                times = []
                for _ in range(args.runs):
                    sink = _Sink()
                    runtime.run(Job(code=code, limits=Limits(cpu_ms=30_000)), sink)
                    runtime.prepare()
                    times.append(float("".join(sink.stdout)))
                times.sort()
                p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
                print(f"| `import {module}` | {statistics.median(times):.1f} | {p90:.1f} |")
        finally:
            runtime.close()


if __name__ == "__main__":
    main()
