"""A run's /tmp on both wasmtime guests (the data stack and the component): a host directory
beside the run's working directory (``<workdir>-tmp``), emptied before every run, never
followed through the links the guest leaves in it, and nothing else left behind.

Sessions' /tmp: tests/engines/test_stack_sessions.py; over HTTP on every engine:
tests/conformance/test_tmp.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Job, Status, Workspace, collect
from sandbox.engines import stack as stack_engine
from sandbox.engines.stack import StackArtifacts
from sandbox.engines.stack import build as build_stack
from sandbox.engines.stack.host import StackRuntime
from sandbox.engines.wasmtime import Artifacts
from sandbox.engines.wasmtime.host import GuestRuntime
from tests.conftest import ARTIFACT_DIR
from tests.engines.test_stack_runtime import Sink

pytestmark = pytest.mark.slow

# What agent code leaves in /tmp: files, a directory tree, a database, links.
LEAVE_THINGS = (
    "import os, sqlite3\n"
    "open('/tmp/data.csv', 'w').write('a,b\\n1,2\\n')\n"
    "os.makedirs('/tmp/out/deep', exist_ok=True)\n"
    "open('/tmp/out/deep/plot.png', 'wb').write(b'x' * 1000)\n"
    "sqlite3.connect('/tmp/x.db').execute('create table t (a)').connection.commit()\n"
    "os.symlink('out', '/tmp/link')\n"
)


@pytest.fixture(scope="module")
def stack_artifacts() -> StackArtifacts:
    return build_stack(ARTIFACT_DIR)


@pytest.fixture(params=["stack", "component"])
def runtime(
    request: pytest.FixtureRequest, artifacts: Artifacts, tmp_path: Path
) -> Iterator[GuestRuntime]:
    workdir = tmp_path / "scratch" / "work"
    if request.param == "stack":
        made: GuestRuntime = StackRuntime(request.getfixturevalue("stack_artifacts"), workdir)
    else:
        made = GuestRuntime(artifacts.precompiled, artifacts.stdlib_mount, workdir)
    yield made
    made.close()


def _value(runtime: GuestRuntime, code: str, **job: object) -> object:
    report = runtime.run(Job(code=code, **job), Sink())  # type: ignore[arg-type]
    runtime.prepare()
    assert report.status is Status.OK, report
    assert report.result is not None
    return report.result.json


def test_each_run_finds_tmp_empty_and_leaves_nothing_behind(
    runtime: GuestRuntime, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    for _ in range(20):
        seen = _value(
            runtime,
            "import os\nseen = [os.listdir('/tmp'), os.listdir('.')]\n" + LEAVE_THINGS + "seen",
        )
        assert seen == [[], []]
        # prepare() has run: the next run's directories are empty on the host too.
        assert [p.name for p in (scratch / "work-tmp").iterdir()] == []
    assert sorted(p.name for p in scratch.iterdir()) == ["work", "work-tmp"]


def test_tmp_is_not_inside_work(runtime: GuestRuntime) -> None:
    seen = _value(
        runtime,
        "import os\nopen('/tmp/t.txt', 'w').write('t')\n"
        "[os.listdir('.'), os.path.exists('tmp'), os.path.samefile('/tmp', '/work')]",
    )
    assert seen == [[], False, False]


def test_links_the_guest_leaves_in_tmp_are_neither_followed_nor_a_way_out(
    runtime: GuestRuntime, tmp_path: Path
) -> None:
    # Beside the run's directories, where a relative link from /tmp would land on the host.
    outside = tmp_path / "scratch" / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret")
    # The guest is told where the host's directories are: knowing is not reaching.
    code = (
        "import os\n"
        "answers = []\n"
        "for target, link in ((os.environ['OUTSIDE'], 'abs'), ('../outside', 'rel'),"
        " ('..', 'up')):\n"
        "    try:\n"
        "        os.symlink(target, '/tmp/' + link)\n"
        "        answers.append('made')\n"
        "    except OSError as exc:\n"
        "        answers.append(type(exc).__name__)\n"
        "for path in ('/tmp/abs/secret.txt', '/tmp/rel/secret.txt', '/tmp/up/outside/secret.txt',"
        " '/tmp/up/work/x', '/tmp/../outside/secret.txt'):\n"
        "    try:\n"
        "        answers.append(open(path).read())\n"
        "    except OSError as exc:\n"
        "        answers.append(type(exc).__name__)\n"
        "answers"
    )
    answers = _value(runtime, code, env={"OUTSIDE": str(outside)})
    assert isinstance(answers, list)
    # WASI refuses a link to an absolute path; relative ones are made, and a lookup
    # through one that leaves /tmp is refused.
    assert answers[:3] == ["PermissionError", "made", "made"], answers
    assert set(answers[3:]) <= {"PermissionError", "FileNotFoundError"}, answers
    # Emptying /tmp removed the links, not what they point to.
    assert (outside / "secret.txt").read_text() == "host secret"
    assert [p.name for p in (tmp_path / "scratch" / "work-tmp").iterdir()] == []


def test_closing_the_pool_leaves_no_directory_behind(
    stack_artifacts: StackArtifacts, tmp_path: Path
) -> None:
    scratch, sessions = tmp_path / "scratch", tmp_path / "sessions"
    sessions.mkdir()

    async def main() -> None:
        pool = stack_engine.create_runner(
            stack_artifacts, size=1, scratch_dir=scratch, queue_timeout_ms=30_000, runs_per_worker=2
        )
        await pool.start()
        try:
            for _ in range(3):
                ran = await collect(pool.run(Job(code=LEAVE_THINGS + "'ok'")))
                assert ran.status is Status.OK, ran
            session = await pool.open_session("s", sessions / "s", 256)
            turned = await collect(pool.turn(session, Job(code=LEAVE_THINGS + "'ok'")))
            assert turned.status is Status.OK, turned
            # The session's /tmp beside its directory; the worker's own (its runtimes', the
            # spare's) in its scratch directory, the pool's to remove.
            assert (sessions / "s-tmp" / "data.csv").is_file()
            assert {p.name.split("-", 2)[-1] for p in scratch.iterdir()} >= {"tmp", "spare-tmp"}
            await pool.close_session(session)
        finally:
            await pool.close()

    asyncio.run(main())
    assert list(scratch.iterdir()) == []
    # The session's directories are its owner's (the service's Workspace) to remove.
    Workspace.with_tmp(sessions / "s", 1).remove()
    assert list(sessions.iterdir()) == []
