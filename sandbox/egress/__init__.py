"""The egress gate: the only way a sandboxed guest reaches the network.

WebAssembly guests have no sockets. Their one route out is the host's ``fetch`` import, which
hands an :class:`EgressRequest` to :meth:`Gate.fetch`. The gate decides, connects, and returns a
:class:`FetchOutcome`; it never raises for anything the guest or the network did.

What the gate guarantees
------------------------
* **Allowlist.** No packet (not even a DNS query) leaves for a URL unless its scheme is http or
  https and its host and effective port match an :class:`AllowEntry` of the policy. A URL is
  judged by where a client would really send it: URLs carrying userinfo (``user@host``),
  whitespace or control characters anywhere, backslashes before the query, and non-canonical
  numeric hosts (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are refused outright
  rather than second-guessed, so the gate and a differently-parsing client cannot disagree.
* **One resolution, pinned.** A host name is resolved once per hop; every answer is checked
  with :func:`check_address`, and the connection goes to one of those exact checked addresses
  (the connection classes never look the name up again), so DNS rebinding between "check" and
  "connect" is impossible.
* **Private networks are the operator's.** Addresses that are not publicly routable
  (loopback, RFC 1918, link-local including the cloud metadata service, CGNAT, unique-local,
  multicast, reserved, and IPv4 addresses embedded in IPv6 forms of those) are never reached
  unless the policy's ``private_networks`` contain the address. That tuple is empty by default,
  so by default no allowlist entry of any kind opens them; whoever builds the policy (in
  Sandlot, the service, from the operator's ``SANDLOT_EGRESS_PRIVATE_NETWORKS``) decides. Even
  inside those networks an address is reachable only through an allowlist entry that is that
  exact IP literal *and* a URL that spells the literal; a name that resolves to it is refused.
  When an answer mixes public and non-public addresses, only the public ones are used (and
  refused only if none remain): the non-public ones never see a packet.
* **TLS.** https certificates are verified against the host name of the URL (SNI and hostname
  check), not against the pinned address.
* **Every redirect hop is a new request.** The gate follows 301/302/303/307/308 itself, up to
  ``max_redirects``, re-running every check above per hop; Authorization/Cookie headers are
  dropped once a redirect leaves the original origin. A request with ``follow_redirects``
  False gets the redirect back instead (its body unread): a client that follows it sends the
  next hop as a new request, checked and counted like any other.
* **Limits.** Response bodies are capped at ``max_response_bytes``, counting both the bytes on
  the wire and the decoded bytes the guest receives; the whole fetch (DNS, connect, TLS, every
  hop) is capped at the smallest of the request's ``timeout_ms``, the policy's ``timeout_ms``
  and the caller's absolute ``deadline``; the caller's ``budget`` callback is consulted before
  every hop.
* **Framing belongs to the gate.** The guest cannot set Host, Content-Length,
  Transfer-Encoding, Connection or other hop-by-hop headers (they are silently dropped and
  re-derived), so it cannot smuggle requests or pick a different virtual host than its URL
  names. ``CONNECT`` is refused. Environment proxy settings are ignored.
* **Decoding belongs to the gate.** The guest's Accept-Encoding is dropped; the gate asks for
  ``gzip, deflate`` (``identity`` when the guest sends Range) and decodes those codings,
  stacked ones too, incrementally under the cap, so no decompression bomb reaches the guest or
  a host-side client that would decode it unmetered (Deno's fetch). The guest gets the decoded
  body without Content-Encoding and with its decoded Content-Length. A body in any other coding
  (``br``, ``zstd``, ``compress``, ...) is refused with ``unsupported_encoding`` before it is
  read; a body that is not valid in its coding is a ``protocol_error``.
* **Records.** One :class:`SubrequestRecord` per hop, with URL, status, size and timing only:
  never headers or bodies. The URL goes through :func:`redact_url` (no userinfo or fragment,
  credential-like query values such as ``api_key=`` or ``X-Amz-Signature=`` replaced), as
  must every log line that carries a URL.

What it does not guarantee
--------------------------
* Nothing about what allowlisted servers do: anything the guest sends to an allowed host
  (including in URLs and bodies) is exfiltrated by design, and an allowed host that fetches
  other URLs server-side, or proxies, extends the guest's reach.
* It trusts the resolver's answers to be what the system would use; it only refuses answers
  that point at non-public addresses. A public address controlled by someone else is public.
* No request-body size limit, rate limiting or subrequest counting (``budget`` is the
  caller's), no cookies, connection reuse, HTTP/2 or proxies.
* A DNS lookup that overruns the deadline is abandoned, not cancelled: its thread finishes
  in the background.
* Internationalised names go through Python's IDNA 2003 codec. Where IDNA 2008 differs (e.g.
  'ß'), an entry may not match what a browser would; since the same form is matched, resolved
  and sent (Host, SNI), the difference can only refuse, never widen access.

Refusal / failure reasons (machine-readable, on records and outcomes): ``scheme``,
``userinfo``, ``malformed_url``, ``bad_host``, ``bad_port``, ``noncanonical_ip``,
``not_allowlisted``, ``private_address``, ``subrequest_limit``, ``too_many_redirects``,
``response_too_large``, ``unsupported_encoding``, ``dns_error``, ``connect_error``,
``tls_error``, ``timeout``, ``protocol_error``.
"""

from __future__ import annotations

from sandbox.egress.addresses import IPAddress, address_category, check_address, in_networks
from sandbox.egress.gate import USER_AGENT, Clock, Gate
from sandbox.egress.messages import EgressRequest, EgressResponse, FetchOutcome, SubrequestRecord
from sandbox.egress.network import Dialer, Resolver, system_resolver, tcp_dial
from sandbox.egress.policy import DEFAULT_PORTS, AllowEntry, EgressPolicy, IPNetwork, parse_networks
from sandbox.egress.redaction import redact_url
from sandbox.egress.urls import UrlDecision, check_url

__all__ = [
    "DEFAULT_PORTS",
    "USER_AGENT",
    "AllowEntry",
    "Clock",
    "Dialer",
    "EgressPolicy",
    "EgressRequest",
    "EgressResponse",
    "FetchOutcome",
    "Gate",
    "IPAddress",
    "IPNetwork",
    "Resolver",
    "SubrequestRecord",
    "UrlDecision",
    "address_category",
    "check_address",
    "check_url",
    "in_networks",
    "parse_networks",
    "redact_url",
    "system_resolver",
    "tcp_dial",
]
