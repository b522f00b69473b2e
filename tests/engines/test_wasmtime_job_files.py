"""sandbox/engines/wasmtime/host.py: a job's files that can't be written end that run with an
error, and the worker goes on (issue 11, finding 11: ``a`` beside ``a/b`` crashed the worker).

Job refuses the combinations it can foresee; these tests hand the runtime such a job anyway
(as if a check were missing) to show the worker itself stays up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from sandbox import Job, Status
from sandbox.egress import SubrequestRecord
from sandbox.engines.wasmtime import Artifacts
from sandbox.engines.wasmtime.host import GuestRuntime
from sandbox.events import Display


class _Sink:
    def __init__(self) -> None:
        self.stdout = ""
        self.displays: list[Display] = []

    def output(self, stream: str, text: str) -> None:
        if stream == "stdout":
            self.stdout += text

    def subrequest(self, record: SubrequestRecord) -> None:
        pass

    def display(self, output: Display) -> None:
        self.displays.append(output)

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def runtime(
    artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuestRuntime]:
    workdir = tmp_path_factory.mktemp("work")
    guest = GuestRuntime(artifacts.precompiled, artifacts.stdlib_mount, Path(workdir))
    yield guest
    guest.close()


def _unchecked(job: Job, files: dict[str, bytes]) -> Job:
    object.__setattr__(job, "files", MappingProxyType(files))
    return job


@pytest.mark.parametrize(
    ("files", "error_type", "named"),
    [
        pytest.param({"a": b"x", "a/b": b"y"}, "FileExistsError", "files.a/b", id="file-then-dir"),
        pytest.param({"a/b": b"y", "a": b"x"}, "IsADirectoryError", "files.a", id="dir-then-file"),
    ],
)
def test_unwritable_files_are_the_runs_error(
    runtime: GuestRuntime, files: dict[str, bytes], error_type: str, named: str
) -> None:
    job = _unchecked(Job(code="print('ran')"), files)
    report = runtime.run(job, _Sink())
    assert report.status is Status.ERROR
    assert report.error is not None
    assert report.error.type == error_type
    assert report.error.message.startswith(f"{named}: could not be written")
    runtime.prepare()

    # The same runtime runs the next job, with a clean working directory.
    sink = _Sink()
    code = "import os\nprint(sorted(os.listdir('.')), open('a/b').read())"
    report = runtime.run(Job(code=code, files={"a/b": b"fine"}), sink)
    assert report.status is Status.OK, report
    assert sink.stdout == "['a'] fine\n"
    runtime.prepare()
