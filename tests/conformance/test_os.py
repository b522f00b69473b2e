"""The process as a locked-down Linux machine without a shell shows it, alike on every
engine (``sandbox/guest/_sandlot_os.py``, ``pwd.py``, ``grp.py``, the run's default
environment in ``_sandlot_exec.py``).

A probe of agent data code found these absent on the WASI guests (``AttributeError``,
so ``mock.patch`` of them failed too) and fatal on Pyodide (Deno refused ``getuid``,
and the refusal killed the interpreter).
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Run

NO_SHELL = (
    "sh: can't run 'ls -l': the sandbox has no shell and cannot start processes (exit status 127)"
)


def _ok(body: dict[str, object]) -> list[str]:
    assert body["status"] == "ok", (body["error"], body["stderr"])
    return str(body["stdout"]).splitlines()


def test_ids_are_root_like_the_owner_of_every_file(run: Run) -> None:
    # Every guest reports uid 0 and gid 0 as the owner of its files: the run owns them.
    code = (
        "import os, pwd, grp, getpass, pathlib\n"
        "print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups())\n"
        "open('f.txt', 'w').close()\n"
        "st = os.stat('f.txt')\n"
        "print(st.st_uid == os.geteuid(), st.st_gid == os.getegid(), os.getppid())\n"
        "print(pwd.getpwuid(os.getuid()).pw_name, pwd.getpwuid(0).pw_dir, getpass.getuser())\n"
        "print(pathlib.Path('f.txt').owner(), pathlib.Path('f.txt').group())\n"
        "print(grp.getgrgid(os.getgid()).gr_name, pwd.getpwnam('nobody').pw_uid)\n"
        "try:\n"
        "    pwd.getpwuid(1000)\n"
        "except KeyError as exc:\n"
        "    print(exc)\n"
    )
    assert _ok(run(code)) == [
        "0 0 0 0 []",
        "True True 1",
        "root /work root",
        "root root",
        "root 65534",
        "'getpwuid(): uid not found: 1000'",
    ]


def test_home_and_path_have_defaults_the_job_can_override(run: Run) -> None:
    code = (
        "import os, pathlib, shutil\n"
        "print(os.environ['HOME'], os.environ['PATH'])\n"
        "print(os.path.expanduser('~/data'), pathlib.Path.home())\n"
        "print(shutil.which('python'), shutil.which('sh'))\n"
    )
    assert _ok(run(code)) == [
        "/work /usr/local/bin:/usr/bin:/bin",
        "/work/data /work",
        "None None",
    ]
    body = run("import os\nprint(os.path.expanduser('~'), os.environ['PATH'])", env={"HOME": "/x"})
    assert _ok(body) == ["/x /usr/local/bin:/usr/bin:/bin"]


def test_os_system_fails_like_a_machine_without_a_shell(run: Run) -> None:
    code = (
        "import os\n"
        "status = os.system('ls -l')\n"
        "print(status, os.waitstatus_to_exitcode(status))\n"
        "print(os.path.exists('listing.txt'))\n"
        "os.system('ls > listing.txt')\n"
        "print(os.path.exists('listing.txt'))\n"
    )
    body = run(code)
    assert _ok(body) == ["32512 127", "False", "False"]
    assert body["stderr"].splitlines()[0] == NO_SHELL


def test_processes_still_refuse_to_start(run: Run) -> None:
    code = (
        "import os, subprocess\n"
        "for start in (lambda: subprocess.run(['ls']), lambda: os.popen('ls')):\n"
        "    try:\n"
        "        start()\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__, 'does not support processes' in str(exc))\n"
    )
    assert _ok(run(code)) == ["OSError True", "OSError True"]


def test_kill_reaches_only_this_process(run: Run) -> None:
    code = (
        "import os, signal\n"
        "print(os.kill(os.getpid(), 0), os.kill(os.getpid(), signal.SIGCHLD))\n"
        "for pid in (99999, 1):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGTERM)\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
        "signal.signal(signal.SIGUSR1, lambda n, frame: print('handled', n == signal.SIGUSR1))\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "os.kill(0, signal.SIGTERM)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt')\n"
        "try:\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt')\n"
        "print('still here')\n"
    )
    assert _ok(run(code)) == [
        "None None",
        "ProcessLookupError",
        "PermissionError",
        "handled True",
        "KeyboardInterrupt",
        "KeyboardInterrupt",
        "still here",
    ]


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        ("os.kill(os.getpid(), signal.SIGKILL)", 137),
        ("os.kill(os.getpid(), signal.SIGTERM)", 143),
        ("signal.raise_signal(signal.SIGALRM)", 142),
        ("os._exit(200)", 200),
    ],
    ids=["SIGKILL", "SIGTERM", "raise_signal", "os._exit-200"],
)
def test_a_fatal_signal_ends_the_run_as_a_shell_reports_it(
    run: Run, code: str, exit_code: int
) -> None:
    # Pyodide's interpreter died of these, and the data-stack guest's WASI exit carried
    # no code from 126 up: each was internal_error.
    body = run(f"import os, signal\nprint('before')\n{code}\nprint('after')")
    assert body["status"] == "error", body
    assert body["exit_code"] == exit_code
    assert body["stdout"] == "before\n"


ALARM_TIMEOUT = """
import signal

class Timeout(Exception):
    pass

def on_alarm(signum, frame):
    raise Timeout()

def slow_sum(n):
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(5)
    try:
        return sum(range(n))
    except Timeout:
        return None
    finally:
        signal.alarm(0)

print(slow_sum(10_000))
print(signal.getsignal(signal.SIGALRM) is on_alarm)
"""


def test_an_alarm_timeout_around_work_that_finishes_behaves_as_on_linux(run: Run) -> None:
    assert _ok(run(ALARM_TIMEOUT)) == [str(sum(range(10_000))), "True"]


def test_timers_count_down_but_never_fire(run: Run) -> None:
    code = (
        "import signal, time\n"
        "fired = []\n"
        "signal.signal(signal.SIGALRM, lambda *a: fired.append(1))\n"
        "print(signal.alarm(10), signal.alarm(3))\n"
        "left, interval = signal.getitimer(signal.ITIMER_REAL)\n"
        "print(2.5 < left <= 3, interval)\n"
        "print(signal.setitimer(signal.ITIMER_REAL, 0.05, 0.2)[0] > 2.5)\n"
        "time.sleep(0.1)\n"
        "left, interval = signal.getitimer(signal.ITIMER_REAL)\n"
        "print(0 < left < 0.2, interval, fired)\n"
        "print(signal.alarm(0) >= 0, signal.getitimer(signal.ITIMER_REAL))\n"
        "try:\n"
        "    signal.setitimer(signal.ITIMER_REAL, -1)\n"
        "except signal.ItimerError as exc:\n"
        "    print(isinstance(exc, OSError))\n"
    )
    assert _ok(run(code)) == [
        "0 10",
        "True 0.0",
        "True",
        "True 0.2 []",
        "True (0.0, 0.0)",
        "True",
    ]


PATCHED_NAMES = [
    "os.system",
    "os.getuid",
    "os.geteuid",
    "os.getgid",
    "os.getegid",
    "os.kill",
    "signal.alarm",
    "signal.setitimer",
    "socket.gethostbyname",
    "shutil.disk_usage",
]


@pytest.mark.parametrize("name", PATCHED_NAMES)
def test_mock_patch_of_each_name_works(run: Run, name: str) -> None:
    code = (
        f"import {name.split('.')[0]}\n"
        "from unittest import mock\n"
        f"original = {name}\n"
        f"with mock.patch({name!r}, return_value='mocked') as fake:\n"
        f"    print({name}(1, 2))\n"
        f"print(fake.call_count, {name} is original)\n"
    )
    assert _ok(run(code)) == ["mocked", "1 True"]
