"""``_ssl`` for the WASI guests, which have no OpenSSL: so that ``import ssl`` works.

The guests have no sockets: HTTPS leaves through the host's egress gate, which does the
TLS (``_sandlot_http.py``). Yet much code imports ``ssl`` whether or not it will use it:
``geopy``, ``httpx``, ``smtplib.SMTP_SSL``, tests that ``mock.patch("ssl.SSLContext")``, and
code that builds a context (``ssl.create_default_context()``, ``load_verify_locations``,
``minimum_version``) to hand to a client. Without ``_ssl`` all of that fails with
``ModuleNotFoundError``. With this module standing in for it (:func:`install`, only where
the real one is missing), python's own ``ssl.py`` imports on top of it: contexts are made
and configured as with OpenSSL (options, verify mode, versions, ciphers, ALPN; the files
named must exist, as OpenSSL would check), and ``MemoryBIO`` works. What needs TLS itself
(a handshake, reading or writing through a wrapped socket or BIO) raises ``SSLError``
saying where HTTPS goes instead.

The constants are OpenSSL 3.0's, as CPython's ``_ssl`` exports them; the version strings
start with "OpenSSL " (urllib3 warns on anything else) and say that none is here.
"""

from __future__ import annotations

import os
import sys
from typing import Any

NO_TLS = (
    "TLS is not available in the sandbox (there are no sockets); HTTPS requests go through "
    "the host, which does the TLS: use requests, urllib.request, http.client or "
    "sandlot.fetch with an https:// URL"
)

OPENSSL_VERSION = "OpenSSL 3.0.0 (none in the sandbox: the host does TLS)"
OPENSSL_VERSION_INFO = (3, 0, 0, 0, 0)
OPENSSL_VERSION_NUMBER = 0x30000000
_OPENSSL_API_VERSION = (3, 0, 0, 0, 0)
_DEFAULT_CIPHERS = (
    "@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM"
)
HAS_ALPN = True
HAS_ECDH = True
HAS_NPN = False
HAS_PSK = True
HAS_PSK_TLS13 = False
HAS_PHA = True
HAS_SNI = True
HAS_SSLv2 = False
HAS_SSLv3 = False
HAS_TLS_UNIQUE = True
HAS_TLSv1 = True
HAS_TLSv1_1 = True
HAS_TLSv1_2 = True
HAS_TLSv1_3 = True

ALERT_DESCRIPTION_ACCESS_DENIED = 49
ALERT_DESCRIPTION_BAD_CERTIFICATE = 42
ALERT_DESCRIPTION_BAD_CERTIFICATE_HASH_VALUE = 114
ALERT_DESCRIPTION_BAD_CERTIFICATE_STATUS_RESPONSE = 113
ALERT_DESCRIPTION_BAD_RECORD_MAC = 20
ALERT_DESCRIPTION_CERTIFICATE_EXPIRED = 45
ALERT_DESCRIPTION_CERTIFICATE_REVOKED = 44
ALERT_DESCRIPTION_CERTIFICATE_UNKNOWN = 46
ALERT_DESCRIPTION_CERTIFICATE_UNOBTAINABLE = 111
ALERT_DESCRIPTION_CLOSE_NOTIFY = 0
ALERT_DESCRIPTION_DECODE_ERROR = 50
ALERT_DESCRIPTION_DECOMPRESSION_FAILURE = 30
ALERT_DESCRIPTION_DECRYPT_ERROR = 51
ALERT_DESCRIPTION_HANDSHAKE_FAILURE = 40
ALERT_DESCRIPTION_ILLEGAL_PARAMETER = 47
ALERT_DESCRIPTION_INSUFFICIENT_SECURITY = 71
ALERT_DESCRIPTION_INTERNAL_ERROR = 80
ALERT_DESCRIPTION_NO_RENEGOTIATION = 100
ALERT_DESCRIPTION_PROTOCOL_VERSION = 70
ALERT_DESCRIPTION_RECORD_OVERFLOW = 22
ALERT_DESCRIPTION_UNEXPECTED_MESSAGE = 10
ALERT_DESCRIPTION_UNKNOWN_CA = 48
ALERT_DESCRIPTION_UNKNOWN_PSK_IDENTITY = 115
ALERT_DESCRIPTION_UNRECOGNIZED_NAME = 112
ALERT_DESCRIPTION_UNSUPPORTED_CERTIFICATE = 43
ALERT_DESCRIPTION_UNSUPPORTED_EXTENSION = 110
ALERT_DESCRIPTION_USER_CANCELLED = 90
CERT_NONE = 0
CERT_OPTIONAL = 1
CERT_REQUIRED = 2
ENCODING_DER = 2
ENCODING_PEM = 1
HOSTFLAG_ALWAYS_CHECK_SUBJECT = 1
HOSTFLAG_MULTI_LABEL_WILDCARDS = 8
HOSTFLAG_NEVER_CHECK_SUBJECT = 32
HOSTFLAG_NO_PARTIAL_WILDCARDS = 4
HOSTFLAG_NO_WILDCARDS = 2
HOSTFLAG_SINGLE_LABEL_SUBDOMAINS = 16
OP_ALL = 0x80000050
OP_CIPHER_SERVER_PREFERENCE = 0x400000
OP_ENABLE_KTLS = 8
OP_ENABLE_MIDDLEBOX_COMPAT = 0x100000
OP_IGNORE_UNEXPECTED_EOF = 128
OP_LEGACY_SERVER_CONNECT = 4
OP_NO_COMPRESSION = 0x20000
OP_NO_RENEGOTIATION = 0x40000000
OP_NO_SSLv2 = 0
OP_NO_SSLv3 = 0x2000000
OP_NO_TICKET = 0x4000
OP_NO_TLSv1 = 0x4000000
OP_NO_TLSv1_1 = 0x10000000
OP_NO_TLSv1_2 = 0x8000000
OP_NO_TLSv1_3 = 0x20000000
OP_SINGLE_DH_USE = 0
OP_SINGLE_ECDH_USE = 0
PROTOCOL_SSLv23 = 2
PROTOCOL_TLS = 2
PROTOCOL_TLS_CLIENT = 16
PROTOCOL_TLS_SERVER = 17
PROTOCOL_TLSv1 = 3
PROTOCOL_TLSv1_1 = 4
PROTOCOL_TLSv1_2 = 5
PROTO_MAXIMUM_SUPPORTED = -1
PROTO_MINIMUM_SUPPORTED = -2
PROTO_SSLv3 = 768
PROTO_TLSv1 = 769
PROTO_TLSv1_1 = 770
PROTO_TLSv1_2 = 771
PROTO_TLSv1_3 = 772
SSL_ERROR_EOF = 8
SSL_ERROR_INVALID_ERROR_CODE = 10
SSL_ERROR_SSL = 1
SSL_ERROR_SYSCALL = 5
SSL_ERROR_WANT_CONNECT = 7
SSL_ERROR_WANT_READ = 2
SSL_ERROR_WANT_WRITE = 3
SSL_ERROR_WANT_X509_LOOKUP = 4
SSL_ERROR_ZERO_RETURN = 6
VERIFY_ALLOW_PROXY_CERTS = 64
VERIFY_CRL_CHECK_CHAIN = 12
VERIFY_CRL_CHECK_LEAF = 4
VERIFY_DEFAULT = 0
VERIFY_X509_PARTIAL_CHAIN = 0x80000
VERIFY_X509_STRICT = 32
VERIFY_X509_TRUSTED_FIRST = 0x8000


# txt2obj/nid2obj: the two objects ssl.py names (Purpose.SERVER_AUTH, CLIENT_AUTH).
_OBJECTS = (
    (129, "serverAuth", "TLS Web Server Authentication", "1.3.6.1.5.5.7.3.1"),
    (130, "clientAuth", "TLS Web Client Authentication", "1.3.6.1.5.5.7.3.2"),
)


def install() -> None:
    """Stand in for ``_ssl`` if the interpreter has none (imported by ``ssl`` on demand)."""
    try:
        import _ssl  # noqa: F401  # a real one wins
    except ImportError:
        sys.modules["_ssl"] = sys.modules[__name__]


# -- errors ---------------------------------------------------------------------------------


class SSLError(OSError):
    """An error from the TLS layer (here: always that there is none)."""

    library: str | None = None
    reason: str | None = None

    def __str__(self) -> str:
        return str(self.args[1]) if len(self.args) > 1 else super().__str__()


class SSLZeroReturnError(SSLError):
    pass


class SSLWantReadError(SSLError):
    pass


class SSLWantWriteError(SSLError):
    pass


class SSLSyscallError(SSLError):
    pass


class SSLEOFError(SSLError):
    pass


class SSLCertVerificationError(SSLError, ValueError):
    pass


def _no_tls() -> SSLError:
    return SSLError(SSL_ERROR_SSL, NO_TLS)


# -- module functions ---------------------------------------------------------------------


def txt2obj(txt: str, name: bool = False) -> tuple[int, str, str, str]:
    for obj in _OBJECTS:
        if txt == obj[3] or (name and txt in obj[1:3]):
            return obj
    raise ValueError(f"unknown object '{txt}'")


def nid2obj(nid: int) -> tuple[int, str, str, str]:
    for obj in _OBJECTS:
        if nid == obj[0]:
            return obj
    raise ValueError(f"unknown NID {nid}")


def RAND_status() -> bool:  # _ssl's names
    return True


def RAND_add(string: Any, entropy: float) -> None:
    pass


def RAND_bytes(n: int) -> bytes:
    if n < 0:
        raise ValueError("num must be positive")
    return os.urandom(n)


def get_sigalgs() -> list[str]:
    return []


def get_default_verify_paths() -> tuple[str, str, str, str]:
    return ("SSL_CERT_FILE", "/etc/ssl/cert.pem", "SSL_CERT_DIR", "/etc/ssl/certs")


# -- contexts ---------------------------------------------------------------------------------

_CLIENT_DEFAULTS = (CERT_REQUIRED, True)
_PROTOCOLS = frozenset(
    {
        PROTOCOL_TLS,
        PROTOCOL_TLS_CLIENT,
        PROTOCOL_TLS_SERVER,
        PROTOCOL_TLSv1,
        PROTOCOL_TLSv1_1,
        PROTOCOL_TLSv1_2,
    }
)
_VERSIONS = frozenset(
    {
        PROTO_MINIMUM_SUPPORTED,
        PROTO_MAXIMUM_SUPPORTED,
        PROTO_SSLv3,
        PROTO_TLSv1,
        PROTO_TLSv1_1,
        PROTO_TLSv1_2,
        PROTO_TLSv1_3,
    }
)
_DEFAULT_OPTIONS = (
    OP_ALL
    | OP_NO_SSLv3
    | OP_NO_COMPRESSION
    | OP_CIPHER_SERVER_PREFERENCE
    | OP_ENABLE_MIDDLEBOX_COMPAT
)


def _must_exist(path: Any, what: str) -> None:
    if path is None:
        return
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, f"No such file or directory: {what} {path!r}")


class _SSLContext:
    """``_ssl._SSLContext``: settings kept as OpenSSL would keep them; nothing connects."""

    def __new__(cls, protocol: int) -> Any:
        if protocol not in _PROTOCOLS:
            raise ValueError(f"invalid or unsupported protocol version {protocol}")
        self = super().__new__(cls)
        client = protocol == PROTOCOL_TLS_CLIENT
        self._protocol = protocol
        self._options = _DEFAULT_OPTIONS
        self._verify_mode, self._check_hostname = _CLIENT_DEFAULTS if client else (CERT_NONE, False)
        self._minimum_version = PROTO_TLSv1_2
        self._maximum_version = PROTO_MAXIMUM_SUPPORTED
        self._verify_flags = VERIFY_X509_TRUSTED_FIRST
        self._host_flags = HOSTFLAG_NO_PARTIAL_WILDCARDS
        self._post_handshake_auth = False
        self._num_tickets = 2
        self._ciphers = _DEFAULT_CIPHERS
        self._alpn = b""
        self._message_callback = None
        self.sni_callback = None
        self.keylog_filename = None
        self.security_level = 2
        return self

    @property
    def protocol(self) -> int:
        return self._protocol

    @property
    def options(self) -> int:
        return self._options

    @options.setter
    def options(self, value: int) -> None:
        self._options = int(value)

    @property
    def verify_mode(self) -> int:
        return self._verify_mode

    @verify_mode.setter
    def verify_mode(self, value: int) -> None:
        if value not in (CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED):
            raise ValueError("invalid value for verify_mode")
        if value == CERT_NONE and self._check_hostname:
            raise ValueError("Cannot set verify_mode to CERT_NONE when check_hostname is enabled.")
        self._verify_mode = int(value)

    @property
    def check_hostname(self) -> bool:
        return self._check_hostname

    @check_hostname.setter
    def check_hostname(self, value: bool) -> None:
        if value and self._verify_mode == CERT_NONE:
            self._verify_mode = CERT_REQUIRED
        self._check_hostname = bool(value)

    @property
    def minimum_version(self) -> int:
        return self._minimum_version

    @minimum_version.setter
    def minimum_version(self, value: int) -> None:
        self._minimum_version = self._version(value)

    @property
    def maximum_version(self) -> int:
        return self._maximum_version

    @maximum_version.setter
    def maximum_version(self, value: int) -> None:
        self._maximum_version = self._version(value)

    def _version(self, value: int) -> int:
        if self._protocol not in (PROTOCOL_TLS, PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER):
            raise ValueError(
                "The context's protocol doesn't support modification of highest and lowest version."
            )
        if int(value) not in _VERSIONS:
            raise ValueError(f"Unsupported TLS/SSL version 0x{int(value):x}")
        return int(value)

    @property
    def _msg_callback(self) -> Any:
        return self._message_callback

    @_msg_callback.setter
    def _msg_callback(self, value: Any) -> None:
        self._message_callback = value

    @property
    def verify_flags(self) -> int:
        return self._verify_flags

    @verify_flags.setter
    def verify_flags(self, value: int) -> None:
        self._verify_flags = int(value)

    @property
    def post_handshake_auth(self) -> bool:
        return self._post_handshake_auth

    @post_handshake_auth.setter
    def post_handshake_auth(self, value: bool) -> None:
        self._post_handshake_auth = bool(value)

    @property
    def num_tickets(self) -> int:
        return self._num_tickets

    @num_tickets.setter
    def num_tickets(self, value: int) -> None:
        if value < 0:
            raise ValueError("value must be non-negative")
        if self._protocol != PROTOCOL_TLS_SERVER:
            raise ValueError("SSLContext is not a server context.")
        self._num_tickets = int(value)

    def set_ciphers(self, cipherlist: str) -> None:
        if not isinstance(cipherlist, str) or not cipherlist:
            raise SSLError(SSL_ERROR_SSL, "No cipher can be selected.")
        self._ciphers = cipherlist

    def get_ciphers(self) -> list[dict[str, Any]]:
        return []

    def set_groups(self, groups: str) -> None:
        pass

    def get_groups(self, *, include_aliases: bool = False) -> list[str]:
        return []

    def set_client_sigalgs(self, sigalgs: str) -> None:
        pass

    def set_server_sigalgs(self, sigalgs: str) -> None:
        pass

    def _set_alpn_protocols(self, protos: bytes) -> None:
        self._alpn = bytes(protos)

    def set_ecdh_curve(self, name: Any) -> None:
        pass

    def load_dh_params(self, path: Any) -> None:
        _must_exist(path, "DH parameters")

    def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        _must_exist(certfile, "certificate")
        _must_exist(keyfile, "key")

    def load_verify_locations(
        self, cafile: Any = None, capath: Any = None, cadata: Any = None
    ) -> None:
        if cafile is None and capath is None and cadata is None:
            raise TypeError("cafile, capath and cadata cannot be all omitted")
        _must_exist(cafile, "CA file")
        _must_exist(capath, "CA directory")

    def set_default_verify_paths(self) -> None:
        pass

    def set_psk_client_callback(self, callback: Any) -> None:
        pass

    def set_psk_server_callback(self, callback: Any, identity_hint: Any = None) -> None:
        pass

    def cert_store_stats(self) -> dict[str, int]:
        return {"x509": 0, "crl": 0, "x509_ca": 0}

    def get_ca_certs(self, binary_form: bool = False) -> list[Any]:
        return []

    def session_stats(self) -> dict[str, int]:
        names = ("number", "connect", "connect_good", "connect_renegotiate", "accept")
        names += ("accept_good", "accept_renegotiate", "hits", "misses", "timeouts")
        return dict.fromkeys((*names, "cache_full"), 0)

    def _wrap_socket(
        self,
        sock: Any,
        server_side: bool,
        server_hostname: Any = None,
        *,
        owner: Any = None,
        session: Any = None,
    ) -> Any:
        raise _no_tls()

    def _wrap_bio(
        self,
        incoming: Any,
        outgoing: Any,
        server_side: bool,
        server_hostname: Any = None,
        *,
        owner: Any = None,
        session: Any = None,
    ) -> _SSLSocket:
        return _SSLSocket(self, server_side, server_hostname, owner, session)


class _SSLSocket:
    """What ``_wrap_bio`` gives ``SSLObject``: everything that would need TLS raises."""

    def __init__(
        self,
        context: _SSLContext,
        server_side: bool,
        server_hostname: Any,
        owner: Any,
        session: Any,
    ) -> None:
        self.context = context
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.owner = owner
        self.session = session
        self.session_reused = False

    def do_handshake(self) -> None:
        raise _no_tls()

    def read(self, *args: Any) -> Any:
        raise _no_tls()

    def write(self, data: Any) -> int:
        raise _no_tls()

    def shutdown(self) -> Any:
        raise _no_tls()

    def pending(self) -> int:
        return 0

    def getpeercert(self, binary_form: bool = False) -> Any:
        raise ValueError("handshake not done yet")

    def get_verified_chain(self) -> Any:
        return None

    def get_unverified_chain(self) -> Any:
        return None

    def selected_alpn_protocol(self) -> None:
        return None

    def cipher(self) -> None:
        return None

    def shared_ciphers(self) -> None:
        return None

    def version(self) -> None:
        return None

    def group(self) -> None:
        return None

    def client_sigalg(self) -> None:
        return None

    def server_sigalg(self) -> None:
        return None

    def compression(self) -> None:
        return None

    def get_channel_binding(self, cb_type: str = "tls-unique") -> None:
        return None

    def verify_client_post_handshake(self) -> None:
        raise _no_tls()


class MemoryBIO:
    """``_ssl.MemoryBIO``: a byte buffer (no TLS needed)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof_written = False

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def eof(self) -> bool:
        return self._eof_written and not self._buffer

    def read(self, size: int = -1) -> bytes:
        size = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def write(self, data: Any) -> int:
        if self._eof_written:
            raise SSLError(SSL_ERROR_SSL, "cannot write() after write_eof()")
        view = memoryview(data).cast("B")
        self._buffer += view
        return len(view)

    def write_eof(self) -> None:
        self._eof_written = True


class SSLSession:
    """``_ssl.SSLSession``: there are never any (no handshake ever ends)."""

    def __init__(self) -> None:
        raise TypeError("cannot create '_ssl.SSLSession' instances")
