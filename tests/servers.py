"""Local HTTP servers and a fake DNS resolver for tests that make real outbound calls.

    def handler(request: Recorded) -> Reply:
        return Reply(200, {"Content-Type": "application/json"}, b'{"ok": true}')

    with LocalServer(handler) as server:
        guarded_request("POST", server.url("/hook"), json={...})
        assert server.requests[0].headers["Host"] == ...

The server listens on 127.0.0.1 on a free port, serves each request in its own daemon thread (so a
handler that sleeps does not block the next request or the end of the test), and records every request
it receives in `server.requests`. Outbound code only reaches it with OUTBOUND_ALLOW_LOOPBACK on (the test
default). `StaticResolver` maps made-up names (e.g. `receiver.test`) to addresses for `resolver=`.
`LocalServer(handler, tls=...)` serves https with a context from `tls_contexts()`, which makes a throwaway
CA and a certificate for the names given, and records the SNI each client sent in `server.sni`.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str  # includes the query string
    headers: Message  # case-insensitive lookups: headers["host"]
    body: bytes
    client_address: tuple[str, int]


@dataclass
class Reply:
    """What the handler answers. `body` may be bytes, str (UTF-8) or an iterable of byte chunks, sent
    one by one with `chunk_delay` seconds before each (for slow or dripping servers); `delay` is slept
    before anything is sent. Content-Length is added for bytes/str bodies unless given."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | Iterable[bytes] = b""
    delay: float = 0.0
    chunk_delay: float = 0.0


Handler = Callable[[Recorded], Reply]


def ok(_request: Recorded) -> Reply:
    return Reply(200, {"Content-Type": "text/plain"}, b"ok")


class LocalServer:
    """A threaded http.server on 127.0.0.1:<free port> calling `handler` for every request."""

    def __init__(self, handler: Handler = ok, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        self.handler = handler
        self.requests: list[Recorded] = []
        self.errors: list[BaseException] = []
        self.sni: list[str | None] = []  # server name each TLS client asked for
        self.scheme = "https" if tls else "http"
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._request_handler_class())
        self._server.daemon_threads = True
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
            # Handshake lazily in the request thread, so a stuck client cannot block accept().
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str = "/", host: str | None = None) -> str:
        """URL of `path` on this server; `host` replaces 127.0.0.1 (pair it with a StaticResolver)."""
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def start(self) -> LocalServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"LocalServer:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Recorded(self.command, self.path, self.headers, body, self.client_address)
                server._record(request)
                try:
                    reply = server.handler(request)
                except Exception as exc:  # surface handler bugs to the test, answer 500
                    server.errors.append(exc)
                    reply = Reply(500, {}, b"handler error")
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                headers = dict(reply.headers)
                if isinstance(body, bytes | bytearray):
                    headers.setdefault("Content-Length", str(len(body)))
                    chunks: Iterable[bytes] = [body]
                else:
                    headers.setdefault("Connection", "close")  # no length: the body ends at close
                    chunks = body
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command == "HEAD":
                    return
                for chunk in chunks:
                    if reply.chunk_delay:
                        time.sleep(reply.chunk_delay)
                    self.wfile.write(chunk)
                    self.wfile.flush()
                if headers.get("Connection", "").lower() == "close":
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    # The client gave up (timeouts, size caps) or refused our certificate.
                    self.close_connection = True

            def log_message(self, format: str, *args) -> None:  # keep test output quiet
                pass

        return _Handler


class StaticResolver:
    """A socket.getaddrinfo stand-in mapping names to fixed addresses; records every lookup in `calls`.

    Unknown names raise socket.gaierror, like a real resolver answering NXDOMAIN; a trailing dot is ignored.
    """

    def __init__(self, mapping: Mapping[str, str | list[str]] | None = None):
        self.mapping = {name: [value] if isinstance(value, str) else list(value) for name, value in
                        (mapping or {}).items()}
        self.calls: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - getaddrinfo's names
        self.calls.append(host)
        addresses = self.mapping.get(host[:-1] if host.endswith(".") else host)  # "name." is "name"
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        result = []
        for address in addresses:
            if ":" in address:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return result


def tls_contexts(*hostnames: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context): a throwaway CA, a certificate for `hostnames` signed by it, and
    a client context that trusts only that CA and checks host names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer_name, signing_key, public_key, *, ca: bool, names=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if names:
            sans = []
            for name in names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    sans.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = build("test CA", ca_name, ca_key, ca_key.public_key(), ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(hostnames[0], ca_name, ca_key, key.public_key(), ca=False, names=hostnames)

    pem = serialization.Encoding.PEM
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_bytes(cert.public_bytes(pem))
        key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca_cert.public_bytes(pem).decode())
    return server, client
