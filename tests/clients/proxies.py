"""Real network components the client tests control: forwarding gRPC and HTTP proxies in front
of the real server, optionally terminating TLS (with client certificates) and checking a bearer
token, counting every call they receive and able to answer the first N calls with an error.

textserve-server has no TLS or token flags of its own, so TLS and auth are proven end to end
through these proxies (the usual deployment shape: a TLS-terminating sidecar or gateway).
Retries are counted here: the client cannot hide an attempt from the component it calls.
"""

from __future__ import annotations

import collections
import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for localhost / 127.0.0.1, and a client certificate."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "textserve test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, *, server: bool) -> tuple[x509.Certificate, Any]:
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        x509.ExtendedKeyUsageOID.SERVER_AUTH
                        if server
                        else x509.ExtendedKeyUsageOID.CLIENT_AUTH
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf("localhost", server=True)
    client_cert, client_key = leaf("textserve test client", server=False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server_cert.public_bytes(pem))
    (directory / "client.pem").write_bytes(client_cert.public_bytes(pem))
    return Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=_write_key(server_key, directory / "server.key"),
        client_cert=directory / "client.pem",
        client_key=_write_key(client_key, directory / "client.key"),
    )


class _Faults:
    """Shared by both proxies: call counts, token check and injected failures."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.calls: collections.Counter[str] = collections.Counter()
        self._fail_remaining = 0
        self._fail_code = "UNAVAILABLE"
        self._delay_remaining = 0
        self._delay_s = 0.0
        self._lock = threading.Lock()

    def fail_next(self, count: int, code: str = "UNAVAILABLE") -> None:
        with self._lock:
            self._fail_remaining, self._fail_code = count, code

    def delay_next(self, count: int, seconds: float) -> None:
        """Hold the next ``count`` calls for ``seconds`` before forwarding: a slow server whose
        lateness the server itself cannot foresee (it would refuse at admission instead)."""
        with self._lock:
            self._delay_remaining, self._delay_s = count, seconds

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._fail_remaining = 0
            self._delay_remaining = 0

    def admit(self, method: str, authorization: str | None) -> str | None:
        """Count the call; return the status name to answer with instead of forwarding."""
        with self._lock:
            self.calls[method] += 1
            if self.token is not None and authorization != f"Bearer {self.token}":
                return "UNAUTHENTICATED"
            if self._fail_remaining > 0:
                self._fail_remaining -= 1
                return self._fail_code
            delay = self._delay_s if self._delay_remaining > 0 else 0.0
            self._delay_remaining = max(0, self._delay_remaining - 1)
        time.sleep(delay)
        return None


class GrpcProxy(_Faults):
    """Forwards every unary gRPC method, as raw bytes, to ``upstream`` (an insecure target)."""

    def __init__(
        self,
        upstream: str,
        *,
        certificates: Certificates | None = None,
        token: str | None = None,
        rewrite: Callable[[str, bytes], bytes] | None = None,
    ) -> None:
        super().__init__(token)
        self._rewrite = rewrite  # (method, response bytes) -> response bytes: a faulty server
        self._upstream = grpc.insecure_channel(upstream)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self._server.add_generic_rpc_handlers([_GrpcForwarder(self)])
        if certificates is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            credentials = grpc.ssl_server_credentials(
                [(certificates.server_key.read_bytes(), certificates.server_cert.read_bytes())],
                root_certificates=certificates.ca.read_bytes(),
                require_client_auth=True,
            )
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        self._server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata())
        verdict = self.admit(method, metadata.get("authorization"))
        if verdict is not None:
            context.abort(getattr(grpc.StatusCode, verdict), f"{verdict} from the test proxy")
        call = self._upstream.unary_unary(method)  # no (de)serializers: bytes in, bytes out
        try:
            response: bytes = call(request, timeout=context.time_remaining())
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details())
        return response if self._rewrite is None else self._rewrite(method, response)

    def close(self) -> None:
        self._server.stop(grace=None)
        self._upstream.close()


class _GrpcForwarder(grpc.GenericRpcHandler):
    def __init__(self, proxy: GrpcProxy) -> None:
        self._proxy = proxy

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self._proxy.forward(method, request, context)
        )


_HTTP_STATUS = {"UNAVAILABLE": 503, "RESOURCE_EXHAUSTED": 429, "UNAUTHENTICATED": 401}


class RestProxy(_Faults):
    """Forwards HTTP/1.1 requests to ``upstream`` (a base URL), optionally behind mutual TLS."""

    def __init__(
        self, upstream: str, *, certificates: Certificates | None = None, token: str | None = None
    ) -> None:
        super().__init__(token)
        self._client = httpx.Client(base_url=upstream, timeout=60.0)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the clients use it

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # quiet

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                verdict = proxy.admit(self.path, self.headers.get("Authorization"))
                if verdict is not None:
                    message = f'{{"error": "{verdict} from the test proxy"}}'.encode()
                    self._reply(_HTTP_STATUS[verdict], message, "application/json")
                    return
                headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                upstream = proxy._client.request(
                    self.command, self.path, content=body, headers=headers
                )
                self._reply(
                    upstream.status_code,
                    upstream.content,
                    upstream.headers.get("Content-Type", "application/json"),
                )

            do_GET = _forward  # noqa: N815
            do_POST = _forward  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if certificates is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certificates.server_cert, certificates.server_key)
            context.load_verify_locations(certificates.ca)
            context.verify_mode = ssl.CERT_REQUIRED
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
