"""All four clients against the real textserve-server serving the exported MiniLM."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from clients import (
    DeadlineExceededError,
    GrpcClient,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    RestClient,
    RetryPolicy,
    TextServeError,
    UnavailableError,
)
from models import contract
from tests.clients.conftest import CLIENT_KINDS, MODEL, QUEUE_LIMIT, ClientFactory, build_client
from tests.support.server_process import ServerProcess, free_port

TRICKY = ["Grüße aus Köln, ß bleibt", "中文句子。", "naïve café — “quotes”", "x" * 2000, "emoji 🤖"]


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_embeddings_equal_in_process_model_in_order(
    kind: str,
    make_client: ClientFactory,
    reference_embed: Callable[[list[str]], np.ndarray],
    stsb_sentences: list[str],
) -> None:
    # 45 texts in chunks of 7, 3 in flight: reassembly order is what is tested too.
    texts = stsb_sentences[:40] + TRICKY
    client = make_client(kind, chunk_size=7, max_concurrency=3)
    got = client.embed(texts)
    expected = reference_embed(texts)
    assert got.dtype == np.float32 and got.shape == (len(texts), 384)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # One text's row does not depend on which chunk it travelled in.
    np.testing.assert_allclose(client.embed(texts[20:21])[0], got[20], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_preprocess_signature_returns_int32_ids(
    kind: str, make_client: ClientFactory, reference_signatures: Any
) -> None:
    import tensorflow as tf

    texts = ["hello world", "Grüße"]
    outputs = make_client(kind).predict({contract.TEXT: texts}, signature_name=contract.PREPROCESS)
    expected = reference_signatures[contract.PREPROCESS](**{contract.TEXT: tf.constant(texts)})
    for name in (contract.INPUT_WORD_IDS, contract.INPUT_MASK, contract.INPUT_TYPE_IDS):
        assert outputs[name].dtype == np.int32
        np.testing.assert_array_equal(outputs[name], expected[name].numpy())


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_predict_version_and_output_filter(kind: str, make_client: ClientFactory) -> None:
    client = make_client(kind)
    outputs = client.predict(
        {contract.TEXT: ["a", "b"]},
        signature_name=contract.PREPROCESS,
        version=1,
        output_filter=[contract.INPUT_MASK],
    )
    assert list(outputs) == [contract.INPUT_MASK]
    with pytest.raises(NotFoundError) as caught:
        client.predict({contract.TEXT: ["a"]}, version=99)
    assert caught.value.code == "NOT_FOUND" and "99" in caught.value.message


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_status_and_metadata(kind: str, make_client: ClientFactory) -> None:
    client = make_client(kind)
    client.wait_until_ready(10)
    statuses = client.model_status()
    assert [(s.version, s.state, s.error_code) for s in statuses] == [(1, "AVAILABLE", "OK")]
    metadata = client.model_metadata()
    assert (metadata.model_name, metadata.version) == (MODEL, 1)
    default = metadata.signatures[contract.SERVING_DEFAULT]
    assert default.inputs[contract.TEXT].dtype == "DT_STRING"
    assert default.outputs[contract.EMBEDDING].dtype == "DT_FLOAT"
    assert default.outputs[contract.EMBEDDING].shape == (-1, 384)
    assert contract.PREPROCESS in metadata.signatures


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_errors_from_real_server_answers(kind: str, make_client: ClientFactory) -> None:
    with pytest.raises(NotFoundError) as caught:
        make_client(kind, model_name="no_such_model").embed(["x"])
    assert "no_such_model" in caught.value.message
    client = make_client(kind)
    with pytest.raises(InvalidInputError) as bad:
        client.predict({"no_such_input": ["x"]})
    assert bad.value.code == "INVALID_ARGUMENT" and "no_such_input" in bad.value.message
    with pytest.raises(InvalidInputError):
        client.predict({contract.TEXT: np.array([1.5, 2.5], dtype=np.float32)})
    # 64 texts take far longer than 5 ms to encode; small enough that the work the server
    # still does after the client gave up does not delay the next tests. Two correct answers:
    # the client's deadline passes first (DEADLINE_EXCEEDED), or - once the server has measured
    # what a batch costs and the deadline reached it (gRPC propagates it) - the server refuses at
    # once, non-retryably, saying the request alone cannot fit its deadline.
    with pytest.raises((DeadlineExceededError, InvalidInputError)) as late:
        client.embed(["a sentence of a dozen words or so, " * 2] * 64, timeout_s=0.005)
    if isinstance(late.value, InvalidInputError):
        assert kind in ("grpc", "async_grpc"), late.value
        assert "more than its deadline allows" in late.value.message
    else:
        assert late.value.code == "DEADLINE_EXCEEDED"


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_nothing_listening_is_unavailable_after_retries(kind: str) -> None:
    port = free_port()
    client = build_client(
        kind,
        f"127.0.0.1:{port}",
        f"http://127.0.0.1:{port}",
        timeout_s=5.0,
        retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05),
    )
    try:
        with pytest.raises(UnavailableError) as caught:
            client.embed(["x"])
        assert caught.value.code == "UNAVAILABLE"
        assert not isinstance(caught.value.__cause__, TextServeError)
    finally:
        client.close()


BURST = 4 * QUEUE_LIMIT  # requests sent at once, far more than the server queues


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_overload_is_overloaded_error(kind: str, minilm_server: ServerProcess) -> None:
    client = build_client(
        kind,
        minilm_server.grpc_target,
        minilm_server.rest_url,
        retry=RetryPolicy(max_attempts=1),
        max_concurrency=1,
    )

    def one(i: int) -> BaseException | None:
        try:
            client.embed([f"burst request {i} with a few words"] * 4)
        except TextServeError as exc:
            return exc
        return None

    try:
        with concurrent.futures.ThreadPoolExecutor(BURST) as pool:
            results = list(pool.map(one, range(BURST)))
    finally:
        client.close()
    overloaded = [r for r in results if isinstance(r, OverloadedError)]
    assert overloaded, results
    assert {r.code for r in overloaded} == {"RESOURCE_EXHAUSTED"}
    assert "max_queued_requests" in overloaded[0].message
    # Every other request was answered.
    assert all(r is None or isinstance(r, OverloadedError) for r in results), results
    assert results.count(None) > 0


def test_async_overload_is_overloaded_error(minilm_server: ServerProcess) -> None:
    from clients import AsyncGrpcClient, AsyncRestClient

    async def run() -> list[object]:
        kwargs: dict[str, Any] = {"model_name": MODEL, "retry": RetryPolicy(max_attempts=1)}
        async with (
            AsyncGrpcClient(minilm_server.grpc_target, **kwargs) as grpc_client,
            AsyncRestClient(minilm_server.rest_url, max_connections=BURST, **kwargs) as rest_client,
        ):
            calls = [
                client.embed([f"burst {i}"] * 4)
                for i in range(BURST // 2)
                for client in (grpc_client, rest_client)
            ]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(run())
    assert any(isinstance(r, OverloadedError) for r in results)
    assert all(isinstance(r, OverloadedError | np.ndarray) for r in results), results


def test_clients_are_context_managers(minilm_server: ServerProcess) -> None:
    with GrpcClient(minilm_server.grpc_target, model_name=MODEL) as grpc_client:
        assert grpc_client.embed(["x"]).shape == (1, 384)
    with RestClient(minilm_server.rest_url, model_name=MODEL) as rest_client:
        assert rest_client.embed([]).shape == (0, 0)


def test_openai_embeddings_match_predict(minilm_server: ServerProcess) -> None:
    with RestClient(minilm_server.rest_url, model_name=MODEL) as client:
        texts = ["first", "second text", "third"]
        np.testing.assert_allclose(
            client.embed_openai(texts), client.embed(texts), rtol=0, atol=1e-6
        )
