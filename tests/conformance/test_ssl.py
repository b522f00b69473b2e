"""``import ssl`` works on every engine; nothing in a guest can speak TLS itself.

The WASI guests have no OpenSSL: ``sandbox/guest/_sandlot_ssl.py`` stands in for ``_ssl``
so that python's own ``ssl.py`` imports on it (Pyodide ships an ``ssl`` stand-in of its own).
Code that builds
and configures contexts, or patches them in tests, runs as under python; a handshake
raises ``ssl.SSLError`` (HTTPS goes through the host's gate, test_http_clients.py).
"""

from __future__ import annotations

import subprocess
import sys

from tests.conformance.conftest import Run, engine_gap

CONTEXTS = """\
import ssl
ctx = ssl.create_default_context()
print(ctx.verify_mode == ssl.CERT_REQUIRED, ctx.check_hostname, ctx.protocol)
print(ctx.minimum_version, ctx.options & ssl.OP_NO_COMPRESSION == ssl.OP_NO_COMPRESSION)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.options |= ssl.OP_NO_TICKET
ctx.set_ciphers('ECDHE+AESGCM')
ctx.set_alpn_protocols(['h2', 'http/1.1'])
print(ctx.minimum_version, bool(ctx.options & ssl.OP_NO_TICKET))
try:
    ctx.verify_mode = ssl.CERT_NONE
except ValueError as exc:
    print('ValueError', exc)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
print(ctx.verify_mode, ctx.check_hostname)
server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
print(server.verify_mode, server.check_hostname, server.protocol)
try:
    ctx.load_verify_locations('/work/missing-ca.pem')
except FileNotFoundError as exc:
    print('FileNotFoundError', exc.errno)
try:
    ssl.SSLContext(99)
except ValueError as exc:
    print('ValueError', exc)
print(ssl.Purpose.SERVER_AUTH.oid, ssl.Purpose.CLIENT_AUTH.shortname, len(ssl.RAND_bytes(8)))
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
incoming.write(b'hello')
print(incoming.pending, incoming.read(2), incoming.read(), incoming.eof)
incoming.write_eof()
print(incoming.eof)
print(issubclass(ssl.SSLCertVerificationError, ValueError), ssl.HAS_SNI)
"""


def test_contexts_are_made_and_configured_as_under_python(run: Run, engine: str) -> None:
    engine_gap(engine, "pyodide", "its ssl is Pyodide's own stub, not ours (errno 44, ...)")
    body = run(CONTEXTS)
    assert body["status"] == "ok", (body["error"], body["stderr"])
    native = subprocess.run(
        [sys.executable, "-c", CONTEXTS], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert body["stdout"] == native


def test_a_handshake_says_where_https_goes_instead(run: Run, engine: str) -> None:
    # (Natively the handshake would wait for the peer's answer: SSLWantReadError.)
    engine_gap(engine, "pyodide", "Pyodide's own ssl stand-in refuses wrap_bio itself")
    code = (
        "import socket, ssl\n"
        "ctx = ssl.create_default_context()\n"
        "tls = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname='example.com')\n"
        "for call in (tls.do_handshake, lambda: tls.write(b'x')):\n"
        "    try:\n"
        "        call()\n"
        "    except ssl.SSLError as exc:\n"
        "        print(type(exc).__name__, exc)\n"
    )
    body = run(code)
    assert body["status"] == "ok", (body["error"], body["stderr"])
    lines = body["stdout"].splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("SSLError TLS is not available in the sandbox"), line
        assert "requests, urllib.request, http.client or sandlot.fetch" in line


def test_code_that_patches_ssl_in_its_tests_runs(run: Run) -> None:
    # The shape of many data tasks' tests: the code under test makes a context and wraps a
    # socket; the test patches both, so nothing connects.
    code = (
        "import socket, ssl, unittest\n"
        "from unittest import mock\n"
        "def fetch_cert(host):\n"
        "    ctx = ssl.create_default_context()\n"
        "    with socket.create_connection((host, 443)) as sock:\n"
        "        with ctx.wrap_socket(sock, server_hostname=host) as tls:\n"
        "            return tls.getpeercert()['subject']\n"
        "class T(unittest.TestCase):\n"
        "    @mock.patch('socket.create_connection')\n"
        "    @mock.patch('ssl.SSLContext.wrap_socket')\n"
        "    def test_subject(self, wrap, connect):\n"
        "        wrap.return_value.__enter__.return_value.getpeercert.return_value = "
        "{'subject': 'CN=example.com'}\n"
        "        self.assertEqual(fetch_cert('example.com'), 'CN=example.com')\n"
        "        connect.assert_called_once_with(('example.com', 443))\n"
        "unittest.main(exit=False, verbosity=0)\n"
    )
    body = run(code)
    assert body["status"] == "ok", (body["error"], body["stderr"])
    assert "OK" in body["stderr"] and "FAILED" not in body["stderr"], body["stderr"]
