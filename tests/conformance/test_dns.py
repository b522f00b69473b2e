"""Name lookups as on a machine without DNS (``sandbox/guest/_sandlot_dns.py``).

Before: absent on the data-stack guest (``socket.getfqdn()`` raised ``NameError``),
``gaierror`` for every name (``localhost`` too) on the component guest, and a dead
interpreter on Pyodide.
"""

from __future__ import annotations

from tests.conformance.conftest import Run


def _ok(body: dict[str, object]) -> list[str]:
    assert body["status"] == "ok", (body["error"], body["stderr"])
    return str(body["stdout"]).splitlines()


def test_local_names_and_literals_resolve(run: Run) -> None:
    code = (
        "import socket\n"
        "print(socket.gethostbyname('localhost'), socket.gethostbyname('127.1'))\n"
        "print(socket.gethostbyname(socket.gethostname()), socket.gethostbyname('10.0.0.7'))\n"
        "print(socket.gethostbyname_ex('localhost'), socket.gethostbyaddr('127.0.0.1'))\n"
        "print(socket.getfqdn() != '')\n"
        "for family, kind, proto, name, address in socket.getaddrinfo(\n"
        "        'localhost', 8080, type=socket.SOCK_STREAM):\n"
        "    print(family == socket.AF_INET, kind == socket.SOCK_STREAM, proto, address)\n"
        "print([a[4] for a in socket.getaddrinfo('::1', '443', socket.AF_INET6, "
        "socket.SOCK_DGRAM)])\n"
        "print(len(socket.getaddrinfo('127.0.0.1', None)) >= 2)\n"
    )
    assert _ok(run(code)) == [
        "127.0.0.1 127.0.0.1",
        "127.0.0.1 10.0.0.7",
        "('localhost', [], ['127.0.0.1']) ('localhost', [], ['127.0.0.1'])",
        "True",
        "True True 6 ('127.0.0.1', 8080)",
        "[('::1', 443, 0, 0)]",
        "True",
    ]


def test_other_names_fail_saying_why(run: Run) -> None:
    code = (
        "import asyncio, socket\n"
        "lookups = [\n"
        "    lambda: socket.gethostbyname('example.com'),\n"
        "    lambda: socket.gethostbyname_ex('example.com'),\n"
        "    lambda: socket.getaddrinfo('example.com', 443),\n"
        "    lambda: socket.create_connection(('example.com', 443), timeout=1),\n"
        "    lambda: asyncio.run(asyncio.open_connection('example.com', 443)),\n"
        "]\n"
        "for lookup in lookups:\n"
        "    try:\n"
        "        lookup()\n"
        "    except socket.gaierror as exc:\n"
        "        print(exc.errno == socket.EAI_NONAME, 'the sandbox has no DNS' in str(exc))\n"
        "try:\n"
        "    socket.gethostbyaddr('93.184.215.14')\n"
        "except socket.herror as exc:\n"
        "    print('herror', 'the sandbox has no DNS' in str(exc))\n"
    )
    assert _ok(run(code)) == ["True True"] * 5 + ["herror True"]


def test_lookups_can_be_patched(run: Run) -> None:
    code = (
        "import socket\n"
        "from unittest import mock\n"
        "with mock.patch('socket.gethostbyname', return_value='203.0.113.5'):\n"
        "    print(socket.gethostbyname('example.com'))\n"
        "with mock.patch('socket.getaddrinfo', return_value=[]):\n"
        "    print(socket.getaddrinfo('example.com', 80))\n"
    )
    assert _ok(run(code)) == ["203.0.113.5", "[]"]
