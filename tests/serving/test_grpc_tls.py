"""``--ssl_config_file``: TLS, and mutual TLS, on the gRPC port, as TF Serving's SSLConfig.

A real server with the tiny model; our GrpcClient as the caller. The REST port stays plain, as
TF Serving's does (the harness reads readiness there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from clients import GrpcClient, RetryPolicy, TlsConfig, UnavailableError
from models import contract
from serving.protos import textserve_ssl_pb2
from serving.server_config import ConfigError
from serving.server_flags import parse_args
from tests.clients.proxies import Certificates, make_certificates
from tests.support.server_process import ServerProcess

NO_RETRY = RetryPolicy(max_attempts=1)


def ssl_config_file(path: Path, certs: Certificates, *, client_verify: bool, ca: bool) -> Path:
    config = textserve_ssl_pb2.SSLConfig(
        server_key=certs.server_key.read_text(),
        server_cert=certs.server_cert.read_text(),
        custom_ca=certs.ca.read_text() if ca else "",
        client_verify=client_verify,
    )
    path.write_text(text_format.MessageToString(config))  # PEM text inline, as TF Serving reads
    return path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_version_factory: Callable[[Path, int], Path],
    certificates: Certificates,
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("tls_server")
    tiny_version_factory(root / "tiny" / "1", 1)
    config = ssl_config_file(root / "ssl.config", certificates, client_verify=True, ca=True)
    with ServerProcess(
        model_name="tiny", model_base_path=root / "tiny", args=[f"--ssl_config_file={config}"]
    ) as server:
        yield server


def client(server: ServerProcess, tls: TlsConfig | None) -> GrpcClient:
    # The certificate names localhost, not 127.0.0.1.
    return GrpcClient(
        f"localhost:{server.grpc_port}", model_name="tiny", tls=tls, retry=NO_RETRY, timeout_s=10
    )


def test_mutual_tls_serves_a_client_with_a_certificate(
    tls_server: ServerProcess, certificates: Certificates
) -> None:
    tls = TlsConfig(
        ca_file=certificates.ca,
        cert_file=certificates.client_cert,
        key_file=certificates.client_key,
    )
    with client(tls_server, tls) as c:
        outputs = c.predict({contract.TEXT: ["over TLS", "again"]})
        assert outputs[contract.EMBEDDING].shape == (2, 4)
        assert np.all(outputs[contract.EMBEDDING][:, 2] == 1.0)  # the tiny model's version
        assert c.model_status()[0].state == "AVAILABLE"


@pytest.mark.parametrize("caller", ["no client certificate", "plaintext"])
def test_callers_without_a_client_certificate_are_refused(
    caller: str, tls_server: ServerProcess, certificates: Certificates
) -> None:
    tls = TlsConfig(ca_file=certificates.ca) if caller != "plaintext" else None
    with client(tls_server, tls) as c, pytest.raises(UnavailableError):
        c.predict({contract.TEXT: ["x"]})


def test_unusable_ssl_configs_are_refused_at_startup(
    tmp_path: Path, certificates: Certificates
) -> None:
    base = ["--model_name=m", f"--model_base_path={tmp_path}"]
    no_ca = ssl_config_file(tmp_path / "no_ca", certificates, client_verify=True, ca=False)
    with pytest.raises(ConfigError, match="client_verify needs custom_ca"):
        parse_args([*base, f"--ssl_config_file={no_ca}"])
    paths = tmp_path / "paths"
    paths.write_text(f'server_key: "{certificates.server_key}"\nserver_cert: "x"\n')
    with pytest.raises(ConfigError, match="server_key must hold PEM text"):
        parse_args([*base, f"--ssl_config_file={paths}"])
    one_way = ssl_config_file(tmp_path / "one_way", certificates, client_verify=False, ca=False)
    settings = parse_args([*base, f"--ssl_config_file={one_way}"]).ssl
    assert settings is not None and not settings.client_verify
