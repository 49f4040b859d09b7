"""The pure client modules: TF Serving JSON both ways, error mapping, retry delay, chunking,
targets, TensorProto."""

from __future__ import annotations

import base64
import json
import random

import numpy as np
import pytest

from clients._chunking import EmbedPlan, plan_chunks
from clients._error_mapping import error_from_grpc, error_from_http
from clients._grpc_channel import grpc_service_config, grpc_target
from clients._metadata import ModelVersionStatus
from clients._openai import parse_openai_embeddings_body
from clients._rest_json import (
    build_rest_predict_body,
    parse_rest_metadata_body,
    parse_rest_predict_body,
    parse_rest_status_body,
)
from clients._settings import ClientSettings
from clients._tensor_proto import encode_texts
from clients.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    TextServeError,
    UnavailableError,
)
from clients.retry_policy import RetryPolicy, retry_delay
from models import contract


def test_rest_body_columnar_and_row_with_b64_for_binary() -> None:
    texts = ["héllo", b"\xff\x00raw"]
    columnar = build_rest_predict_body(
        {contract.TEXT: texts}, signature_name=contract.SERVING_DEFAULT
    )
    assert columnar == {
        "signature_name": contract.SERVING_DEFAULT,
        "inputs": {contract.TEXT: ["héllo", {"b64": base64.b64encode(b"\xff\x00raw").decode()}]},
    }
    json.dumps(columnar)  # serialisable as is
    row = build_rest_predict_body(
        {contract.TEXT: ["a", "b"], contract.TEXT_PAIR: ["c", "d"]},
        signature_name=contract.SERVING_PAIR,
        row_format=True,
    )
    assert row["instances"] == [
        {contract.TEXT: "a", contract.TEXT_PAIR: "c"},
        {contract.TEXT: "b", contract.TEXT_PAIR: "d"},
    ]
    single_row = build_rest_predict_body(
        {contract.TEXT: ["a"]}, signature_name="s", row_format=True
    )
    assert single_row["instances"] == ["a"]


def test_rest_response_single_unnamed_output_and_dtypes() -> None:
    parsed = parse_rest_predict_body(
        {"outputs": [[0.5, 1.0], [2.0, 3.0]]},
        output_dtypes={contract.EMBEDDING: np.dtype(np.float32)},
        single_output_name=contract.EMBEDDING,
    )
    assert parsed[contract.EMBEDDING].dtype == np.float32
    assert parsed[contract.EMBEDDING].tolist() == [[0.5, 1.0], [2.0, 3.0]]
    with pytest.raises(TextServeError, match="unnamed"):
        parse_rest_predict_body({"outputs": [1]})


def test_rest_response_row_format_multi_output_and_strings() -> None:
    body = {
        "predictions": [
            {contract.LABELS: "pos", contract.LOGITS: [1.0, 2.0], "raw": {"b64": "/w=="}},
            {contract.LABELS: "neg", contract.LOGITS: [3.0, 4.0], "raw": {"b64": "AA=="}},
        ]
    }
    parsed = parse_rest_predict_body(
        body,
        output_dtypes={contract.LABELS: np.dtype(object), contract.LOGITS: np.dtype(np.float32)},
    )
    assert parsed[contract.LABELS].tolist() == [b"pos", b"neg"]
    assert parsed[contract.LOGITS].shape == (2, 2)
    assert parsed["raw"].tolist() == [b"\xff", b"\x00"]
    with pytest.raises(TextServeError, match="base64"):
        parse_rest_predict_body({"outputs": {"x": [{"b64": "@@@"}]}})


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (400, InvalidInputError, "INVALID_ARGUMENT"),
        (404, NotFoundError, "NOT_FOUND"),
        (429, OverloadedError, "RESOURCE_EXHAUSTED"),
        (503, UnavailableError, "UNAVAILABLE"),
        (504, DeadlineExceededError, "DEADLINE_EXCEEDED"),
        (401, TextServeError, "UNAUTHENTICATED"),
        (502, TextServeError, "INTERNAL"),
    ],
)
def test_http_errors_keep_code_and_server_message(
    status: int, cls: type[TextServeError], code: str
) -> None:
    error = error_from_http(status, b'{"error": "the server said so"}')
    assert type(error) is cls
    assert (error.code, error.message, error.http_status) == (code, "the server said so", status)


def test_grpc_codes_map_to_classes() -> None:
    assert type(error_from_grpc("FAILED_PRECONDITION", "x")) is InvalidInputError
    assert type(error_from_grpc("INTERNAL", "boom")) is TextServeError
    assert error_from_grpc("UNAVAILABLE", None).message == "UNAVAILABLE"


def test_retry_policy_retries_only_safe_codes_within_deadline() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.1, max_backoff_s=0.3)
    rng = random.Random(0)
    unavailable = UnavailableError("UNAVAILABLE", "down")

    def delay(error: TextServeError, attempt: int, remaining: float = 10.0) -> float | None:
        return retry_delay(policy, error, attempt=attempt, remaining_s=remaining, rng=rng)

    first = delay(unavailable, 1)
    assert first is not None and 0 <= first <= 0.1
    assert delay(unavailable, 3) is None  # attempts exhausted
    assert delay(unavailable, 1, remaining=0.0) is None  # no time left
    assert delay(OverloadedError("RESOURCE_EXHAUSTED", "busy"), 1) is not None
    assert delay(InvalidInputError("INVALID_ARGUMENT", "bad"), 1) is None
    assert delay(DeadlineExceededError("DEADLINE_EXCEEDED", "late"), 1) is None
    no_overload = RetryPolicy(retry_on_overload=False)
    assert not no_overload.is_retryable(OverloadedError("RESOURCE_EXHAUSTED", "busy"))
    # The ceiling grows exponentially and is capped.
    samples = [policy.backoff_s(5, rng) for _ in range(200)]
    assert max(samples) <= 0.3 and max(samples) > 0.2


def test_service_config_declares_retry_and_round_robin() -> None:
    config = json.loads(grpc_service_config(RetryPolicy(max_attempts=4)))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    method = config["methodConfig"][0]
    assert {"service": "tensorflow.serving.PredictionService"} in method["name"]
    assert method["retryPolicy"]["maxAttempts"] == 4
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
    assert (
        "retryPolicy"
        not in json.loads(grpc_service_config(RetryPolicy(max_attempts=1)))["methodConfig"][0]
    )


def test_targets() -> None:
    assert grpc_target("dns:///models:8500") == "dns:///models:8500"
    assert grpc_target(["10.0.0.1:8500", "10.0.0.2:8500"]) == "ipv4:10.0.0.1:8500,10.0.0.2:8500"
    assert grpc_target(["[::1]:1", "[::1]:2"]) == "ipv6:[::1]:1,[::1]:2"
    with pytest.raises(ValueError, match="dns:///"):
        grpc_target(["a:1", "b:2"])


def test_chunk_plan_covers_in_order() -> None:
    assert plan_chunks(0, 4) == []
    slices = plan_chunks(10, 4)
    assert [(s.start, s.stop) for s in slices] == [(0, 4), (4, 8), (8, 10)]
    settings = ClientSettings(model_name="m", chunk_size=3)
    plan = EmbedPlan.make(settings, [str(i) for i in range(7)], version=2)
    assert [c.texts.tolist() for c in plan.chunks] == [
        [b"0", b"1", b"2"],
        [b"3", b"4", b"5"],
        [b"6"],
    ]
    assert plan.rest_path == "/v1/models/m/versions/2:predict"
    request = plan.grpc_request(plan.chunks[2])
    assert request.model_spec.version.value == 2
    assert list(request.output_filter) == [contract.EMBEDDING]


def test_texts_are_validated_before_sending() -> None:
    with pytest.raises(TypeError, match="single string"):
        encode_texts("not a list")
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        encode_texts(["ok", "\ud800"])


def test_openai_rows_placed_by_index() -> None:
    body = {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}]}
    assert parse_openai_embeddings_body(body, 2).tolist() == [[1.0], [2.0]]
    with pytest.raises(TextServeError, match="expected 3"):
        parse_openai_embeddings_body(body, 3)


def test_rest_status_and_metadata_json() -> None:
    status = parse_rest_status_body(
        {
            "model_version_status": [
                {
                    "version": "1",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
    )
    assert status == [ModelVersionStatus(1, "AVAILABLE", "OK", "")]
    metadata = parse_rest_metadata_body(
        {
            "model_spec": {"name": "m", "signature_name": "", "version": "4"},
            "metadata": {
                "signature_def": {
                    "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap",
                    "signature_def": {
                        "serving_default": {
                            "inputs": {
                                "text": {
                                    "dtype": "DT_STRING",
                                    "tensor_shape": {"dim": [{"size": "-1", "name": ""}]},
                                    "name": "serving_default_text:0",
                                }
                            },
                            "outputs": {
                                "embedding": {
                                    "dtype": "DT_FLOAT",
                                    "tensor_shape": {"dim": [{"size": "-1"}, {"size": "384"}]},
                                    "name": "StatefulPartitionedCall:0",
                                }
                            },
                            "method_name": "tensorflow/serving/predict",
                        }
                    },
                }
            },
        }
    )
    assert metadata.version == 4
    assert metadata.signatures["serving_default"].outputs["embedding"].shape == (-1, 384)
