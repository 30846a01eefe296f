"""HTTP(S) requests for `sitectl verify`: one request at a time, redirects never followed.

Verify looks at every answer itself (a redirect's target, a cookie's flags), so nothing
here follows a redirect. A request can be sent to an address other than the one its host
name resolves to (`--resolve HOST:ADDRESS`, as curl has, for a site whose DNS does not
point at it yet; or a node's NodePort with the hub host as `Host`), while TLS still checks
the certificate against the host name. Every call is bounded by its timeout.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message

USER_AGENT = "jupyterhub-platform-verify"
SECRET_MARK = "[secret]"


class ProbeError(Exception):
    """A request that got no HTTP answer; the message says why, in one line."""


@dataclass
class Response:
    url: str
    status: int
    headers: Message
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class Client:
    """Where to connect and what to trust, for every request of one verify run."""

    resolve: Mapping[str, str] = field(default_factory=dict)
    """Host name -> address to connect to instead of its DNS answer."""
    ca_file: str | None = None
    """A CA trusted besides the system's (a site's own, or a test PKI)."""

    def __post_init__(self) -> None:
        self.context = ssl.create_default_context()
        if self.ca_file:
            self.context.load_verify_locations(cafile=self.ca_file)

    def address_of(self, host: str) -> str:
        return self.resolve.get(host.lower(), host)

    def _connection(
        self, url: str, timeout: float, connect_to: str | None
    ) -> tuple[http.client.HTTPConnection, str]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeError(f"not an http(s) URL: {url}")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = connect_to or self.address_of(host)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = _PinnedHTTPS(host, port, address, timeout=timeout, context=self.context)
        else:
            conn = _PinnedHTTP(host, port, address, timeout=timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return conn, path

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        connect_to: str | None = None,
        max_body: int = 1 << 20,
    ) -> Response:
        conn, path = self._connection(url, timeout, connect_to)
        try:
            conn.request(method, path, body=body, headers=_headers(headers))
            answer = conn.getresponse()
            data = answer.read(max_body)
            return Response(url, answer.status, answer.msg, data)
        except (OSError, http.client.HTTPException) as err:
            raise ProbeError(describe(err, url, conn)) from None
        finally:
            conn.close()

    def stream_lines(
        self,
        url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        """The lines of a streamed GET answer (an event stream), until the server ends it
        or `timeout` passes without a line; a non-200 answer is a ProbeError."""
        end = time.monotonic() + timeout
        conn, path = self._connection(url, min(timeout, 10.0), None)
        try:
            conn.request("GET", path, headers=_headers(headers))
            answer = conn.getresponse()
            if answer.status != 200:
                text = answer.read(2000).decode(errors="replace")
                text = redact(text, credentials(headers)).strip()
                raise ProbeError(f"{url} answered {answer.status}: {text[:200]}")
            while True:
                left = end - time.monotonic()
                if left <= 0 or conn.sock is None:
                    return
                # The whole stream is bounded, not only each read: a server that sends
                # keep-alive comments forever still ends here.
                conn.sock.settimeout(left)
                try:
                    line = answer.readline()
                except TimeoutError:
                    return
                if not line:
                    return
                yield line.decode("utf-8", errors="replace").rstrip("\r\n")
        except (OSError, http.client.HTTPException) as err:
            raise ProbeError(describe(err, url, conn)) from None
        finally:
            conn.close()


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced. Quoted answers are redacted before they are cut
    short: a cut through a secret leaves a part of it that no later replacement knows."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, SECRET_MARK)
    return text


def credentials(headers: Mapping[str, str] | None) -> list[str]:
    """What a request's own Authorization header carries (the whole value and the token
    after its scheme), which a server may echo in its answer."""
    found: list[str] = []
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and value:
            found += [value, value.split(None, 1)[-1]]
    return found


def _headers(extra: Mapping[str, str] | None) -> dict[str, str]:
    return {"User-Agent": USER_AGENT, "Accept": "*/*", **(extra or {})}


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to `address`, with the URL's host in the Host header."""

    def __init__(self, host: str, port: int, address: str, *, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to `address`; the certificate is checked against the URL's host name."""

    def __init__(
        self, host: str, port: int, address: str, *, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address
        self.tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        try:
            self.sock = self.tls_context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


def describe(err: BaseException, url: str, conn: http.client.HTTPConnection | None) -> str:
    """One line for a failed request: what failed, where."""
    where = url
    if conn is not None:
        address = getattr(conn, "address", conn.host)
        where = f"{url} (at {address}:{conn.port})" if address != conn.host else url
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected for {where}: {err.verify_message}"
    if isinstance(err, ssl.SSLError):
        return f"TLS handshake failed with {where}: {err.reason or err}"
    if isinstance(err, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(err, TimeoutError | socket.timeout):
        return f"no answer from {where} in time"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve the host of {url}: {err.strerror}"
    if isinstance(err, OSError):
        return f"cannot reach {where}: {err.strerror or err}"
    return f"bad HTTP answer from {where}: {type(err).__name__} {err}"


def certificate_summary(client: Client, host: str, port: int, timeout: float) -> str:
    """A TLS handshake with host:port (via --resolve): the certificate's subject and expiry,
    or ProbeError with why it is not valid for `host`."""
    address = client.address_of(host)
    try:
        with (
            socket.create_connection((address, port), timeout) as raw,
            client.context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert() or {}
    except (OSError, ssl.SSLError) as err:
        raise ProbeError(describe(err, f"https://{host}:{port}/", None)) from None
    issuer = "?"
    for rdn in cert.get("issuer", ()):
        for pair in rdn:
            if pair[0] == "commonName":
                issuer = str(pair[1])
    return f"issued by {issuer}, valid until {cert.get('notAfter', '?')}"
