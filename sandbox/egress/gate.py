"""The :class:`Gate`: performs guest requests under a policy, one checked hop at a time.

It follows redirects itself, re-checking every hop, and owns the framing of what it sends.
"""

from __future__ import annotations

import http.client
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urljoin

from sandbox.egress._codings import (
    ACCEPT_ENCODING,
    BodyDecoder,
    _CodingError,
    content_codings,
    unsupported_coding,
)
from sandbox.egress._hops import _decode_location, _describe, _HopFailure, _Reply, _timed_out
from sandbox.egress.addresses import IPAddress, address_category, check_address
from sandbox.egress.messages import EgressRequest, EgressResponse, FetchOutcome, SubrequestRecord
from sandbox.egress.network import (
    Dialer,
    Resolver,
    _default_ssl_context,
    _PinnedHTTPConnection,
    _PinnedHTTPSConnection,
    _Watchdog,
    system_resolver,
    tcp_dial,
)
from sandbox.egress.policy import EgressPolicy
from sandbox.egress.redaction import redact_url
from sandbox.egress.urls import UrlDecision, check_url

# Monotonic time in seconds.
Clock = Callable[[], float]

USER_AGENT = "sandlot-egress/1"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024

# The gate owns message framing and routing; letting the guest set these would allow request
# smuggling (Content-Length vs Transfer-Encoding) or virtual-host confusion (Host).
_GATE_OWNED_HEADERS = frozenset(
    {
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        # The gate decodes what it asked for, so it must choose what it can decode and meter.
        "accept-encoding",
    }
)
# How an unread body is framed; dropped from a redirect handed back unfollowed.
_FRAMING_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding"})
# Credentials that must not follow a redirect to another origin.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
# Headers describing a request body, dropped when a redirect turns the request into a GET.
_BODY_HEADERS = frozenset(
    {"content-type", "content-encoding", "content-language", "content-location"}
)
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Statuses whose responses never have a body (RFC 9110 6.4.1).
_BODYLESS_STATUSES = frozenset({204, 304})
# Response headers that describe the body as sent, not as decoded for the guest.
_CODING_HEADERS = frozenset({"content-encoding", "content-length"})

# Reasons that are policy decisions ("denied") rather than network failures ("failed").
_DENIAL_REASONS = frozenset(
    {
        "scheme",
        "userinfo",
        "malformed_url",
        "bad_host",
        "bad_port",
        "noncanonical_ip",
        "not_allowlisted",
        "private_address",
        "subrequest_limit",
        "too_many_redirects",
        "response_too_large",
        "unsupported_encoding",
    }
)


class Gate:
    """Performs guest HTTP requests under an :class:`EgressPolicy`.

    ``resolver`` maps (host, port) to addresses (default: getaddrinfo); ``dialer`` opens a TCP
    connection to one address (default: :func:`tcp_dial`; injectable so tests can observe
    which addresses would be contacted); ``clock`` returns monotonic seconds; ``ssl_context``
    (default: one shared ``ssl.create_default_context()``) must verify certificates and host
    names, or ValueError is raised. A Gate holds no per-request state and may be shared across
    threads.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver | None = None,
        clock: Clock = time.monotonic,
        dialer: Dialer | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not isinstance(policy, EgressPolicy):
            raise ValueError(f"policy must be an EgressPolicy, got {type(policy).__name__}")
        context = ssl_context if ssl_context is not None else _default_ssl_context()
        if not context.check_hostname or context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("ssl_context must verify certificates and host names")
        self._policy = policy
        self._resolver: Resolver = resolver if resolver is not None else system_resolver
        self._clock = clock
        self._dialer: Dialer = dialer if dialer is not None else tcp_dial
        self._ssl_context = context

    @property
    def policy(self) -> EgressPolicy:
        return self._policy

    @property
    def ssl_context(self) -> ssl.SSLContext:
        return self._ssl_context

    def fetch(
        self,
        request: EgressRequest,
        *,
        budget: Callable[[], bool] | None = None,
        deadline: float | None = None,
    ) -> FetchOutcome:
        """Perform the request, following redirects; never raises for guest or network faults.

        ``budget`` is called before every hop (including the first) and must return False to
        stop with ``subrequest_limit``; each call is one subrequest. ``deadline`` is an
        absolute time on the gate's clock (seconds) that the whole fetch must finish by.
        """
        policy = self._policy
        started = self._clock()
        limit_ms = policy.timeout_ms
        if request.timeout_ms is not None:
            limit_ms = min(limit_ms, request.timeout_ms)
        end = started + limit_ms / 1000
        if deadline is not None:
            end = min(end, deadline)
        total_ms = max(0, round((end - started) * 1000))

        method = request.method
        url = request.url
        body = request.body
        headers = [(n, v) for n, v in request.headers if n.lower() not in _GATE_OWNED_HEADERS]
        records: list[SubrequestRecord] = []
        previous_origin: tuple[str, str, int] | None = None
        redirects = 0

        def outcome_error(reason: str, message: str) -> FetchOutcome:
            verb = "denied" if reason in _DENIAL_REASONS else "failed"
            return FetchOutcome(
                response=None,
                error=f"egress {verb}: {message}",
                records=tuple(records),
                reason=reason,
            )

        def record(
            hop_url: str,
            hop_started: float,
            *,
            allowed: bool,
            reason: str | None,
            status: int | None = None,
            nbytes: int = 0,
            sent: int = 0,
        ) -> None:
            ms = round((self._clock() - hop_started) * 1000, 3)
            # Records are logged and shown in tails: no userinfo, no credential-like query.
            shown = redact_url(hop_url)
            records.append(
                SubrequestRecord(method, shown, status, nbytes, ms, allowed, reason, sent)
            )

        while True:
            hop_started = self._clock()
            if budget is not None and not budget():
                record(url, hop_started, allowed=False, reason="subrequest_limit")
                return outcome_error(
                    "subrequest_limit", "the run's subrequest limit has been reached"
                )
            decision = check_url(url, policy)
            if decision.reason is not None:
                record(decision.url, hop_started, allowed=False, reason=decision.reason)
                return outcome_error(decision.reason, decision.message)
            if previous_origin is not None and decision.origin != previous_origin:
                # Credentials were meant for the origin the guest named, not wherever it
                # redirects to; once dropped they stay dropped.
                headers = [(n, v) for n, v in headers if n.lower() not in _CREDENTIAL_HEADERS]
            previous_origin = decision.origin

            try:
                reply = self._hop(decision, method, headers, body, end, total_ms)
            except _HopFailure as failure:
                record(
                    decision.url,
                    hop_started,
                    allowed=failure.allowed,
                    reason=failure.reason,
                    status=failure.status,
                    nbytes=failure.nbytes,
                    sent=failure.sent,
                )
                return outcome_error(failure.reason, failure.message)

            if reply.location is None or not request.follow_redirects:
                record(
                    decision.url,
                    hop_started,
                    allowed=True,
                    reason=None,
                    status=reply.status,
                    nbytes=len(reply.body),
                    sent=reply.sent,
                )
                reply_headers = reply.headers
                if reply.location is not None:
                    # The redirect's own body was never read: say so in its framing.
                    reply_headers = (
                        *((n, v) for n, v in reply_headers if n.lower() not in _FRAMING_HEADERS),
                        ("Content-Length", "0"),
                    )
                response = EgressResponse(reply.status, decision.url, reply_headers, reply.body)
                return FetchOutcome(response=response, error=None, records=tuple(records))

            if redirects >= policy.max_redirects:
                record(
                    decision.url,
                    hop_started,
                    allowed=True,
                    reason="too_many_redirects",
                    status=reply.status,
                    sent=reply.sent,
                )
                return outcome_error(
                    "too_many_redirects",
                    f"more than {policy.max_redirects} redirects (max_redirects)",
                )
            record(
                decision.url,
                hop_started,
                allowed=True,
                reason=None,
                status=reply.status,
                sent=reply.sent,
            )
            redirects += 1
            if (reply.status == 303 and method != "HEAD") or (
                reply.status in (301, 302) and method == "POST"
            ):
                # What browsers do: the redirected request is a GET without the body.
                method = "GET"
                body = b""
                headers = [(n, v) for n, v in headers if n.lower() not in _BODY_HEADERS]
            try:
                url = urljoin(decision.url, reply.location)
            except ValueError:
                url = reply.location  # check_url will refuse it as malformed

    def _hop(
        self,
        decision: UrlDecision,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes,
        end: float,
        total_ms: int,
    ) -> _Reply:
        """Resolve, check addresses and exchange one request; raises _HopFailure."""
        if end - self._clock() <= 0:
            raise _timed_out(total_ms)
        if decision.ip is not None:
            addresses: list[IPAddress] = [decision.ip]
        else:
            addresses = self._resolve(decision.host, decision.port, end, total_ms)
        # Every answer is checked, but only the acceptable ones are used: a name that also
        # resolves to a private address still works through its public ones, and the private
        # ones never see a packet. (Refusing the whole answer would be no safer, since the
        # connection is pinned to a checked address, only less available.)
        verdicts = [
            (
                address,
                check_address(
                    address, decision.host, decision.port, self._policy, scheme=decision.scheme
                ),
            )
            for address in addresses
        ]
        permitted = [address for address, reason in verdicts if reason is None]
        refused = [address for address, reason in verdicts if reason is not None]
        if not permitted:
            first = refused[0]
            raise _HopFailure(
                "private_address",
                f"{decision.host!r} resolves to {first}, a {address_category(first)} address; "
                "only public addresses may be reached by name (a private address needs its "
                "exact IP literal in allowed_hosts, inside a network the operator opened)",
                allowed=False,
            )
        for address in permitted[:-1]:
            try:
                return self._exchange(decision, address, method, headers, body, end, total_ms)
            except _HopFailure as exc:
                # A failed dial sent nothing, so the next checked address may be tried.
                if not exc.retriable:
                    raise
        return self._exchange(decision, permitted[-1], method, headers, body, end, total_ms)

    def _resolve(self, host: str, port: int, end: float, total_ms: int) -> list[IPAddress]:
        """Resolve once, bounded by the deadline; raises _HopFailure."""
        remaining = end - self._clock()
        if remaining <= 0:
            raise _timed_out(total_ms)
        results: list[list[IPAddress]] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                results.append(self._resolver(host, port))
            except BaseException as exc:  # handed to the calling thread below
                errors.append(exc)

        # getaddrinfo has no timeout of its own; a thread lets the deadline win.
        worker = threading.Thread(target=run, name="egress-dns", daemon=True)
        worker.start()
        worker.join(remaining)
        if worker.is_alive():
            raise _timed_out(total_ms)
        if errors:
            error = errors[0]
            if isinstance(error, TimeoutError):
                raise _timed_out(total_ms)
            if isinstance(error, OSError | UnicodeError):
                raise _HopFailure(
                    "dns_error", f"could not resolve {host!r} ({_describe(error)})"
                ) from None
            raise error  # a bug in the resolver, not a network condition
        addresses = results[0]
        for address in addresses:
            if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise TypeError(f"resolver returned {address!r}, not an ipaddress address")
        if not addresses:
            raise _HopFailure("dns_error", f"could not resolve {host!r} (no addresses)")
        return addresses

    def _exchange(
        self,
        decision: UrlDecision,
        address: IPAddress,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes,
        end: float,
        total_ms: int,
    ) -> _Reply:
        """One request/response over a new connection to ``address``; raises _HopFailure."""
        remaining = end - self._clock()
        if remaining <= 0:
            raise _timed_out(total_ms)
        cap = self._policy.max_response_bytes
        watchdog = _Watchdog(remaining)
        conn: _PinnedHTTPConnection | _PinnedHTTPSConnection
        if decision.scheme == "https":
            conn = _PinnedHTTPSConnection(
                decision.host,
                decision.port,
                address=address,
                dialer=self._dialer,
                watchdog=watchdog,
                timeout=remaining,
                context=self._ssl_context,
                server_hostname=decision.host,
            )
        else:
            conn = _PinnedHTTPConnection(
                decision.host,
                decision.port,
                address=address,
                dialer=self._dialer,
                watchdog=watchdog,
                timeout=remaining,
            )
        status: int | None = None
        received = 0
        response: http.client.HTTPResponse | None = None
        try:
            conn.connect()
            conn.putrequest(method, decision.target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", decision.authority)
            for name, value in headers:
                conn.putheader(name, value)
            if body or method in _METHODS_WITH_BODY:
                conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Connection", "close")
            if not any(name.lower() == "user-agent" for name, _ in headers):
                conn.putheader("User-Agent", USER_AGENT)
            # A range of a compressed representation can't be decoded on its own.
            ranged = any(name.lower() == "range" for name, _ in headers)
            conn.putheader("Accept-Encoding", "identity" if ranged else ACCEPT_ENCODING)
            conn.endheaders(body or None)
            response = conn.getresponse()
            status = response.status
            reply_headers = tuple(response.getheaders())
            location = response.getheader("Location")
            if status in _REDIRECT_STATUSES and location is not None:
                if watchdog.fired:
                    raise TimeoutError
                return _Reply(
                    status, reply_headers, b"", _decode_location(location), conn.sent_bytes
                )
            codings = content_codings(response.msg.get_all("Content-Encoding") or ())
            has_body = method != "HEAD" and status >= 200 and status not in _BODYLESS_STATUSES
            unsupported = unsupported_coding(codings) if has_body else None
            if unsupported is not None:
                raise _HopFailure(
                    "unsupported_encoding",
                    f"the response from {decision.authority} is encoded with {unsupported!r}, "
                    "which the gate cannot decode and so cannot hold to max_response_bytes "
                    f"(it asks for {ACCEPT_ENCODING!r} only)",
                    status=status,
                )
            too_large = _HopFailure(
                "response_too_large",
                f"the response body exceeds {cap} bytes (max_response_bytes)"
                + (f" once decoded from {', '.join(codings)}" if codings else ""),
                status=status,
            )
            if response.length is not None and response.length > cap:
                raise too_large  # declared up front; don't download any of it
            # The cap holds both for the bytes on the wire and, when the body is encoded,
            # for the decoded bytes the guest would receive.
            decoder = BodyDecoder(codings) if codings and has_body else None
            decoded = 0
            chunks: list[bytes] = []

            def keep(pieces: Iterator[bytes]) -> None:
                nonlocal decoded
                for piece in pieces:
                    decoded += len(piece)
                    if decoded > cap:
                        too_large.nbytes = decoded
                        raise too_large
                    chunks.append(piece)

            while True:
                chunk = response.read(min(_READ_CHUNK, cap - received + 1))
                if not chunk:
                    break
                received += len(chunk)
                if received > cap:
                    too_large.nbytes = received
                    raise too_large
                keep(iter((chunk,)) if decoder is None else decoder.feed(chunk))
            # A watchdog shutdown looks like a clean EOF to a close-delimited body, so the
            # body is only trusted if the watchdog did not fire.
            if watchdog.fired:
                raise TimeoutError
            if decoder is not None:
                keep(decoder.finish())
            if codings or any(name.lower() == "content-encoding" for name, _ in reply_headers):
                # The guest gets the decoded body: no Content-Encoding, and its real length.
                reply_headers = tuple(
                    (name, value)
                    for name, value in reply_headers
                    if name.lower() not in _CODING_HEADERS
                )
                if has_body:
                    reply_headers += (("Content-Length", str(decoded)),)
            return _Reply(status, reply_headers, b"".join(chunks), None, conn.sent_bytes)
        except _CodingError as exc:
            invalid = _HopFailure(
                "protocol_error",
                f"invalid HTTP response from {decision.authority} ({exc})",
                status=status,
                nbytes=received,
            )
            invalid.sent = conn.sent_bytes
            raise invalid from None
        except _HopFailure as refused:
            refused.sent = conn.sent_bytes
            raise
        except (OSError, http.client.HTTPException) as exc:
            where = decision.authority
            if watchdog.fired or isinstance(exc, TimeoutError):
                reason, message = "timeout", _timed_out(total_ms).message
            elif conn.phase == "tls" or isinstance(exc, ssl.SSLError):
                reason, message = "tls_error", f"TLS with {where} failed ({_describe(exc)})"
            elif isinstance(exc, http.client.HTTPException):
                reason = "protocol_error"
                message = f"invalid HTTP response from {where} ({_describe(exc)})"
            elif conn.phase == "dial":
                reason = "connect_error"
                message = f"could not connect to {where} ({_describe(exc)})"
            else:
                reason = "connect_error"
                message = f"connection to {where} failed ({_describe(exc)})"
            broken = _HopFailure(
                reason,
                message,
                status=status,
                nbytes=received,
                retriable=conn.phase == "dial" and reason == "connect_error",
            )
            broken.sent = conn.sent_bytes
            raise broken from None
        finally:
            # Stop the watchdog before closing so it can never touch a closed descriptor.
            watchdog.stop()
            if response is not None:
                response.close()
            conn.close()
