"""Retries, TLS, bearer tokens and round robin, counted at proxies in front of the real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clients import (
    InvalidInputError,
    OverloadedError,
    RetryPolicy,
    TextServeError,
    TlsConfig,
    UnavailableError,
)
from models import contract
from tests.clients.conftest import CLIENT_KINDS, build_client
from tests.clients.proxies import Certificates, GrpcProxy, RestProxy, make_certificates
from tests.support.server_process import ServerProcess

FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)
TOKEN = "s3cret-token"
PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture
def proxies(minilm_server: ServerProcess) -> Iterator[tuple[GrpcProxy, RestProxy]]:
    """Fresh per test: gRPC's retry throttling (retryThrottling in the service config) keeps
    its token bucket per server address across channels, so failures a test provoked on
    purpose would otherwise suppress the retries of the next test."""
    grpc_proxy = GrpcProxy(minilm_server.grpc_target)
    rest_proxy = RestProxy(minilm_server.rest_url)
    yield grpc_proxy, rest_proxy
    grpc_proxy.close()
    rest_proxy.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_proxies(
    minilm_server: ServerProcess, certificates: Certificates
) -> Iterator[tuple[GrpcProxy, RestProxy]]:
    grpc_proxy = GrpcProxy(minilm_server.grpc_target, certificates=certificates, token=TOKEN)
    rest_proxy = RestProxy(minilm_server.rest_url, certificates=certificates, token=TOKEN)
    yield grpc_proxy, rest_proxy
    grpc_proxy.close()
    rest_proxy.close()


def _client(kind: str, proxies: tuple[GrpcProxy, RestProxy], **kwargs: object) -> object:
    grpc_proxy, rest_proxy = proxies
    return build_client(kind, grpc_proxy.target, rest_proxy.url(), **kwargs)


def _calls(kind: str, proxies: tuple[GrpcProxy, RestProxy]) -> int:
    grpc_proxy, rest_proxy = proxies
    if "grpc" in kind:
        return grpc_proxy.calls[PREDICT]
    return sum(n for path, n in rest_proxy.calls.items() if path.endswith(":predict"))


def _reset(proxies: tuple[GrpcProxy, RestProxy]) -> None:
    for proxy in proxies:
        proxy.reset()


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_unavailable_is_retried_with_backoff(
    kind: str, proxies: tuple[GrpcProxy, RestProxy]
) -> None:
    client = _client(kind, proxies, retry=FAST_RETRY)
    try:
        client.embed(["warm"])  # type: ignore[attr-defined]  # REST: caches nothing for embed
        _reset(proxies)
        for proxy in proxies:
            proxy.fail_next(2, "UNAVAILABLE")
        rows = client.embed(["retried"])  # type: ignore[attr-defined]
        assert rows.shape == (1, 384)
        assert _calls(kind, proxies) == 3  # two refusals, then the answer

        _reset(proxies)
        for proxy in proxies:
            proxy.fail_next(10, "UNAVAILABLE")
        with pytest.raises(UnavailableError):
            client.embed(["gives up"])  # type: ignore[attr-defined]
        assert _calls(kind, proxies) == FAST_RETRY.max_attempts
    finally:
        client.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_overload_retry_is_a_policy_choice(kind: str, proxies: tuple[GrpcProxy, RestProxy]) -> None:
    for retry_on_overload, expected_calls in ((True, 2), (False, 1)):
        policy = RetryPolicy(
            max_attempts=3,
            initial_backoff_s=0.01,
            max_backoff_s=0.05,
            retry_on_overload=retry_on_overload,
        )
        client = _client(kind, proxies, retry=policy)
        try:
            _reset(proxies)
            for proxy in proxies:
                proxy.fail_next(1, "RESOURCE_EXHAUSTED")
            if retry_on_overload:
                assert client.embed(["x"]).shape == (1, 384)  # type: ignore[attr-defined]
            else:
                with pytest.raises(OverloadedError):
                    client.embed(["x"])  # type: ignore[attr-defined]
            assert _calls(kind, proxies) == expected_calls
        finally:
            client.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_invalid_argument_and_deadline_are_never_retried(
    kind: str, proxies: tuple[GrpcProxy, RestProxy]
) -> None:
    client = _client(kind, proxies, retry=FAST_RETRY)
    try:
        client.model_metadata()  # type: ignore[attr-defined]  # REST caches the dtypes first
        _reset(proxies)
        with pytest.raises(InvalidInputError):
            client.predict({"no_such_input": ["x"]})  # type: ignore[attr-defined]
        assert _calls(kind, proxies) == 1
        _reset(proxies)
        for proxy in proxies:
            proxy.delay_next(1, 1.0)
        with pytest.raises(TextServeError) as late:
            # The proxy holds the call past its 0.25 s deadline. (A slow request sent to the
            # server directly is refused at admission with RESOURCE_EXHAUSTED instead.)
            client.embed(["slow words"], timeout_s=0.25)  # type: ignore[attr-defined]
        assert late.value.code == "DEADLINE_EXCEEDED"
        assert _calls(kind, proxies) == 1
    finally:
        client.close()  # type: ignore[attr-defined]


def _tls(certificates: Certificates, *, client_cert: bool = True) -> TlsConfig:
    if not client_cert:
        return TlsConfig(ca_file=certificates.ca)
    return TlsConfig(
        ca_file=certificates.ca,
        cert_file=certificates.client_cert,
        key_file=certificates.client_key,
    )


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_tls_with_client_certificate_and_bearer_token(
    kind: str,
    tls_proxies: tuple[GrpcProxy, RestProxy],
    certificates: Certificates,
    reference_embed: object,
) -> None:
    grpc_proxy, rest_proxy = tls_proxies
    grpc_target = f"localhost:{grpc_proxy.port}"  # the certificate names localhost
    rest_url = rest_proxy.url("localhost")

    good = build_client(
        kind, grpc_target, rest_url, tls=_tls(certificates), bearer_token=TOKEN, retry=FAST_RETRY
    )
    try:
        rows = good.embed(["over TLS"])
        np.testing.assert_allclose(rows, reference_embed(["over TLS"]), rtol=0, atol=1e-6)  # type: ignore[operator]
        assert good.model_status()[0].state == "AVAILABLE"
    finally:
        good.close()

    wrong_token = build_client(
        kind, grpc_target, rest_url, tls=_tls(certificates), bearer_token="nope", retry=FAST_RETRY
    )
    try:
        with pytest.raises(TextServeError) as denied:
            wrong_token.embed(["x"])
        assert denied.value.code == "UNAUTHENTICATED"
        assert not isinstance(denied.value, UnavailableError)
    finally:
        wrong_token.close()

    # Without a client certificate the handshake fails: nothing is served.
    no_cert = build_client(
        kind,
        grpc_target,
        rest_url,
        tls=_tls(certificates, client_cert=False),
        bearer_token=TOKEN,
        retry=RetryPolicy(max_attempts=1),
        timeout_s=2.0,
    )
    try:
        with pytest.raises(UnavailableError):
            no_cert.embed(["x"])
    finally:
        no_cert.close()


def test_grpc_round_robin_spreads_over_replicas(minilm_server: ServerProcess) -> None:
    from clients import GrpcClient

    replicas = [GrpcProxy(minilm_server.grpc_target) for _ in range(2)]
    try:
        with GrpcClient(
            [r.target for r in replicas], model_name=contract.BUNDLED_MODEL_NAME
        ) as client:
            for _ in range(10):
                client.embed(["spread me"])
        counts = [r.calls[PREDICT] for r in replicas]
        assert sum(counts) == 10 and min(counts) >= 3, counts
    finally:
        for replica in replicas:
            replica.close()


def test_server_from_another_ca_is_refused(
    tls_proxies: tuple[GrpcProxy, RestProxy], tmp_path: Path
) -> None:
    """A CA we did not configure is refused (the client really verifies the server)."""
    from clients import RestClient

    other = make_certificates(tmp_path)  # a CA the proxy's certificate does not chain to
    _, rest_proxy = tls_proxies
    with RestClient(
        rest_proxy.url("localhost"),
        model_name=contract.BUNDLED_MODEL_NAME,
        tls=TlsConfig(ca_file=other.ca),
        bearer_token=TOKEN,
        retry=RetryPolicy(max_attempts=1),
    ) as client:
        with pytest.raises(UnavailableError) as caught:
            client.model_status()
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
