"""Python as users expect it: a run behaves like ``python main.py``, on every engine.

Issue 12, item 6. Also run on the data-stack guest with
``SANDLOT_WASMTIME_GUEST=stack`` in the environment (the test service inherits it).
"""

from __future__ import annotations

import re

import pytest

from tests.conformance.conftest import Run


def _frames(traceback: str) -> list[str]:
    return re.findall(r'File "([^"]+)"', traceback)


def test_code_is_the_main_module_pickle_round_trips_its_classes(run: Run) -> None:
    code = (
        "import pickle, sys\n"
        "class Point:\n"
        "    def __init__(self, x): self.x = x\n"
        "p = pickle.loads(pickle.dumps(Point(3)))\n"
        "print(type(p).__name__, p.x, sys.modules['__main__'].Point is Point)\n"
    )
    body = run(code)
    assert body["status"] == "ok", body["error"]
    assert body["stdout"] == "Point 3 True\n"


def test_name_main_block_runs_with_python_argv(run: Run) -> None:
    code = (
        "import sys, os\n"
        "if __name__ == '__main__':\n"
        "    print(sys.argv, os.path.basename(__file__))\n"
    )
    body = run(code)
    assert body["status"] == "ok", body["error"]
    assert body["stdout"] == "['main.py'] main.py\n"


_TESTS = (
    "import unittest\n"
    "class T(unittest.TestCase):\n"
    "    def test_add(self):\n"
    "        self.assertEqual(1 + 1, {expected})\n"
    "if __name__ == '__main__':\n"
    "    unittest.main()\n"
)


def test_unittest_main_passing_ends_ok(run: Run) -> None:
    body = run(_TESTS.format(expected=2))
    assert (body["status"], body["exit_code"]) == ("ok", 0), body["error"]
    assert "Ran 1 test" in body["stderr"]
    assert body["stderr"].rstrip().endswith("OK")


def test_unittest_main_failing_ends_with_exit_code_1(run: Run) -> None:
    body = run(_TESTS.format(expected=3))
    assert (body["status"], body["exit_code"]) == ("error", 1)
    assert "FAILED (failures=1)" in body["stderr"]
    assert "AssertionError: 2 != 3" in body["stderr"]


def test_uncaught_exception_traceback_goes_to_stderr_as_python_prints_it(run: Run) -> None:
    body = run("print('before')\ndef f():\n    return 1 / 0\nf()\n")
    assert body["status"] == "error"
    assert body["stdout"] == "before\n"
    assert body["stderr"] == body["error"]["traceback"]
    assert body["stderr"].startswith("Traceback (most recent call last):\n")
    assert body["stderr"].endswith("ZeroDivisionError: division by zero\n")
    assert _frames(body["stderr"]) == ["main.py", "main.py"]


def test_an_excepthook_the_code_sets_is_called(run: Run) -> None:
    code = (
        "import sys\n"
        "sys.excepthook = lambda t, v, tb: print('hook:', t.__name__, v, file=sys.stderr)\n"
        "raise KeyError('k')\n"
    )
    body = run(code)
    assert body["status"] == "error"
    assert body["stderr"] == "hook: KeyError 'k'\n"
    assert body["error"]["type"] == "KeyError"


@pytest.mark.parametrize(
    ("code", "stdout", "result"),
    [
        ("print(6 * 7)", "42\n", None),
        ("6 * 7  # a comment\n\n", "", "42"),
        ('"\\d"', "", "'\\\\d'"),
        ('"\\d" + "e"\nx = 1\nx + 1', "", "2"),
    ],
    ids=["call", "value", "warns", "warns-then-more"],
)
def test_a_cell_warns_once_and_gives_its_last_value(
    run: Run, code: str, stdout: str, result: str | None
) -> None:
    # One expression is compiled as it is; anything else is parsed to split off its tail
    # (a failed first try must not warn a second time).
    body = run(code)
    assert body["status"] == "ok", body["error"]
    assert body["stdout"] == stdout
    assert (body["result"] or {}).get("repr") == result
    warned = "\\d" in code
    assert body["stderr"].count("SyntaxWarning") == int(warned), body["stderr"]


@pytest.mark.parametrize(
    ("source", "line"),
    [("x = 1\ny = (\n", "line 2"), ("def f():\n    pass\nreturn 1\n", "line 3")],
    ids=["parser", "compiler"],
)
def test_syntax_error_shows_only_the_users_line(run: Run, source: str, line: str) -> None:
    body = run(source)
    assert body["status"] == "error"
    error = body["error"]
    assert error["type"] == "SyntaxError"
    assert _frames(error["traceback"]) == ["main.py"]
    assert f'File "main.py", {line}' in error["traceback"]
    assert "Traceback (most recent call last)" not in error["traceback"]
    assert body["stderr"] == error["traceback"]


@pytest.mark.parametrize(
    ("code", "status", "exit_code"),
    [("0", "ok", 0), ("3", "error", 3), ("True", "error", 1)],
    ids=["zero", "three", "bool"],
)
def test_os_exit_ends_the_run_with_its_code(
    run: Run, code: str, status: str, exit_code: int
) -> None:
    body = run(
        "import os, sys\n"
        "print('out')\n"
        "print('err', file=sys.stderr)\n"
        "try:\n"
        f"    os._exit({code})\n"
        "finally:\n"
        "    print('finally must not run')\n"
    )
    assert (body["status"], body["exit_code"]) == (status, exit_code), body["error"]
    assert body["stdout"] == "out\n"
    assert body["stderr"] == "err\n"


def test_os_exit_inside_a_function_the_code_calls_late(run: Run) -> None:
    code = "import atexit, os\natexit.register(lambda: os._exit(4))\nprint('done')\n"
    body = run(code)
    assert (body["status"], body["exit_code"]) == ("error", 4)
    assert body["stdout"] == "done\n"


def test_atexit_callbacks_run_at_the_end(run: Run) -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(print, 'bye')\n"
        "atexit.register(sys.exit, 5)\n"
        "print('main')\n"
    )
    body = run(code)
    # python runs callbacks last-registered first; a SystemExit there is ignored.
    assert body["status"] == "ok", body["error"]
    assert body["stdout"] == "main\nbye\n"


def test_unittest_main_bool_exit_is_an_integer(run: Run) -> None:
    body = run("raise SystemExit(True)")
    assert body["exit_code"] == 1
    assert isinstance(body["exit_code"], int) and body["exit_code"] is not True


def test_asyncio_run_sleep_gather_timeout_and_executor(run: Run) -> None:
    code = (
        "import asyncio\n"
        "async def item(i):\n"
        "    await asyncio.sleep(0.01)\n"
        "    return i * 2\n"
        "async def main():\n"
        "    results = await asyncio.gather(*(item(i) for i in range(3)))\n"
        "    try:\n"
        "        async with asyncio.timeout(0.02):\n"
        "            await asyncio.sleep(5)\n"
        "    except TimeoutError:\n"
        "        results.append('timeout')\n"
        "    results.append(await asyncio.wait_for(item(5), 1))\n"
        "    results.append(await asyncio.to_thread(sum, [1, 2]))\n"
        "    loop = asyncio.get_running_loop()\n"
        "    results.append(await loop.run_in_executor(None, max, 4, 9))\n"
        "    return results\n"
        "print(asyncio.run(main()))\n"
        "print(asyncio.run(item(7)))\n"
    )
    body = run(code)
    assert body["status"] == "ok", body["error"]
    assert body["stdout"] == "[0, 2, 4, 'timeout', 10, 3, 9]\n14\n"
    assert body["stderr"] == ""


def test_zoneinfo_finds_time_zones(run: Run, engine: str) -> None:
    code = (
        "from datetime import datetime\n"
        "from zoneinfo import ZoneInfo\n"
        "winter = datetime(2024, 1, 15, 12, tzinfo=ZoneInfo('Europe/Paris'))\n"
        "summer = datetime(2024, 7, 15, 12, tzinfo=ZoneInfo('America/New_York'))\n"
        "print(winter.utcoffset(), winter.tzname(), summer.utcoffset(), summer.tzname())\n"
    )
    body = run(code)
    assert body["status"] == "ok", body["error"]
    assert body["stdout"] == "1:00:00 CET -1 day, 20:00:00 EDT\n"


def _stack_guest(engine: str) -> bool:
    return engine == "wasmtime"


def test_missing_module_says_what_is_installed_and_how_to_add_one(run: Run) -> None:
    body = run("import surely_not_a_package")
    assert body["status"] == "error"
    message = body["error"]["message"]
    assert message.startswith("No module named 'surely_not_a_package'. ")
    assert '"requirements"' in message and "make packages" in message
    # The note is part of the traceback python prints, too.
    assert "make packages" in body["stderr"]


def test_missing_numpy_names_the_guest_that_has_it(run: Run, engine: str) -> None:
    if _stack_guest(engine):
        pytest.skip("the data-stack guest has numpy")
    body = run("import numpy")
    assert body["error"]["type"] == "ModuleNotFoundError"
    assert 'in the data-stack guest of runtime "wasmtime"' in body["error"]["message"]


def test_missing_submodule_of_an_installed_package_gets_no_hint(run: Run) -> None:
    body = run("import json.nothing_here")
    assert body["error"]["message"] == "No module named 'json.nothing_here'"
