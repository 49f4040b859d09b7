"""Every class of bad input gets its own clear error, and the server keeps serving after it.

Each test sends the bad request over gRPC (raw TensorProtos) and/or REST (raw bytes), checks
the status code and that the message names the problem, then sends a good request.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from models import contract
from tests.support.server_process import ServerProcess

MAX_BYTES = 200_000
MAX_ROWS = 16
MAX_CHARS = 500
MAX_DEPTH = 12


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        model_name="tiny",
        model_base_path=tiny_model_dir,
        args=[
            f"--max_request_bytes={MAX_BYTES}",
            f"--max_rows_per_request={MAX_ROWS}",
            f"--max_text_chars={MAX_CHARS}",
            f"--max_json_depth={MAX_DEPTH}",
        ],
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[prediction_service_pb2_grpc.PredictionServiceStub]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest_url, timeout=30) as client:
        yield client


@pytest.fixture
def still_serving(server, stub, http) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """After the test's bad requests: the same process answers good ones on both protocols."""
    pid = server.pid
    yield
    assert server.proc is not None and server.proc.poll() is None, server.log_tail()
    assert server.pid == pid
    good = _request({contract.TEXT: tf.make_tensor_proto(np.array([b"still ok"], dtype=object))})
    response = stub.Predict(good, timeout=30)
    assert tf.make_ndarray(response.outputs[contract.EMBEDDING]).shape == (1, 4)
    rest = http.post("/v1/models/tiny:predict", json={"instances": ["still ok"]})
    assert rest.status_code == 200 and len(rest.json()["predictions"]) == 1


def _request(
    inputs: dict[str, tensor_pb2.TensorProto], signature: str = "", **spec: object
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = str(spec.get("name", "tiny"))
    request.model_spec.signature_name = signature
    if "version" in spec:
        request.model_spec.version.value = int(spec["version"])  # type: ignore[call-overload]
    if "label" in spec:
        request.model_spec.version_label = str(spec["label"])
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    return request


def _texts(*texts: bytes) -> dict[str, tensor_pb2.TensorProto]:
    return {contract.TEXT: tf.make_tensor_proto(np.array(list(texts), dtype=object))}


def grpc_fails(stub, request, code: grpc.StatusCode, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=30)
    assert info.value.code() == code, info.value.details()
    for fragment in fragments:
        assert fragment in info.value.details(), info.value.details()


def rest_fails(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str)
    for fragment in fragments:
        assert fragment in error, error


def _post(http: httpx.Client, body: bytes, path: str = "/v1/models/tiny:predict", **headers: str):  # type: ignore[no-untyped-def]
    return http.post(path, content=body, headers={"Content-Type": "application/json", **headers})


# ---------------------------------------------------------------- NOT_FOUND
@pytest.mark.usefixtures("still_serving")
def test_unknown_model_and_version_are_not_found_unknown_label_invalid(stub, http) -> None:  # type: ignore[no-untyped-def]
    not_found = grpc.StatusCode.NOT_FOUND
    grpc_fails(stub, _request(_texts(b"a"), name="absent"), not_found, "absent")
    grpc_fails(stub, _request(_texts(b"a"), version=7), not_found, "7")
    invalid, unknown_label = grpc.StatusCode.INVALID_ARGUMENT, "version label: nope"
    grpc_fails(stub, _request(_texts(b"a"), label="nope"), invalid, unknown_label)
    body = b'{"instances": ["a"]}'
    rest_fails(_post(http, body, "/v1/models/absent:predict"), 404, "absent")
    rest_fails(_post(http, body, "/v1/models/tiny/versions/7:predict"), 404, "7")
    rest_fails(_post(http, body, "/v1/models/tiny/labels/nope:predict"), 400, unknown_label)


# ---------------------------------------------------------------- FAILED_PRECONDITION
@pytest.mark.usefixtures("still_serving")
def test_unknown_signature_is_failed_precondition_as_in_tf_serving(stub, http) -> None:  # type: ignore[no-untyped-def]
    failed = grpc.StatusCode.FAILED_PRECONDITION
    grpc_fails(stub, _request(_texts(b"a"), "no_such_signature"), failed, "no_such_signature")
    signature = b'{"signature_name": "no_such_signature", "instances": ["a"]}'
    rest_fails(_post(http, signature), 400, 'Serving signature key "no_such_signature" not found')


# ---------------------------------------------------------------- signature mismatches
@pytest.mark.usefixtures("still_serving")
def test_wrong_input_name_dtype_rank_shape(stub, http) -> None:  # type: ignore[no-untyped-def]
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    grpc_fails(stub, _request({"txt": _texts(b"a")[contract.TEXT]}), invalid, "txt")
    floats = tf.make_tensor_proto(np.array([1.0], dtype=np.float32))
    grpc_fails(stub, _request({contract.TEXT: floats}), invalid, "text", "DT_STRING")
    rank2 = tf.make_tensor_proto(np.array([[b"a"]], dtype=object))
    grpc_fails(stub, _request({contract.TEXT: rank2}), invalid, "text", "rank")
    four_columns = tf.make_tensor_proto(np.zeros((1, 4), dtype=np.float32))
    grpc_fails(stub, _request({"x": four_columns}, "scale"), invalid, "'x'")
    rest_fails(_post(http, b'{"instances": [{"txt": "a"}]}'), 400, "txt")
    rest_fails(_post(http, b'{"instances": [1.5]}'), 400, "text", "DT_STRING")
    rest_fails(_post(http, b'{"inputs": [["a"]]}'), 400, "text", "rank")
    rest_fails(_post(http, b'{"signature_name": "scale", "inputs": [[1, 2, 3, 4]]}'), 400, "'x'")
    rest_fails(_post(http, b'{"signature_name": "ids", "inputs": [[1.5, 2]]}'), 400, "ids")


# ---------------------------------------------------------------- TensorProto structure
@pytest.mark.usefixtures("still_serving")
def test_declared_shape_larger_than_content(stub) -> None:  # type: ignore[no-untyped-def]
    proto = _texts(b"tiny")[contract.TEXT]
    proto.tensor_shape.dim[0].size = 2_000_000_000
    grpc_fails(
        stub,
        _request({contract.TEXT: proto}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'text'",
        "[2000000000]",
        "holds 1 values",
    )
    floats = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\0" * 12)
    for size in (1 << 40, 3):
        floats.tensor_shape.dim.add().size = size
    grpc_fails(
        stub,
        _request({"x": floats}, "scale"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'x'",
        "tensor_content holds 12 bytes",
    )


@pytest.mark.usefixtures("still_serving")
def test_negative_and_overflowing_dims(stub) -> None:  # type: ignore[no-untyped-def]
    proto = _texts(b"a")[contract.TEXT]
    proto.tensor_shape.dim[0].size = -1
    grpc_fails(
        stub,
        _request({contract.TEXT: proto}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'text'",
        "negative",
    )
    floats = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    for size in (2**40, 2**40, 3):
        floats.tensor_shape.dim.add().size = size
    floats.float_val.append(1.0)
    grpc_fails(
        stub,
        _request({"x": floats}, "scale"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'x'",
        "overflows int64",
    )


@pytest.mark.usefixtures("still_serving")
def test_empty_tensors(stub, http) -> None:  # type: ignore[no-untyped-def]
    empty = tf.make_tensor_proto(np.array([], dtype=object).astype(bytes).astype(object))
    grpc_fails(
        stub, _request({contract.TEXT: empty}), grpc.StatusCode.INVALID_ARGUMENT, "'text'", "empty"
    )
    rest_fails(_post(http, b'{"inputs": {"text": []}}'), 400, "'text'", "empty")
    rest_fails(_post(http, b'{"instances": []}'), 400, "instances")


@pytest.mark.usefixtures("still_serving")
def test_unsupported_dtype(stub) -> None:  # type: ignore[no-untyped-def]
    proto = tf.make_tensor_proto(np.array([1 + 1j], dtype=np.complex64))
    grpc_fails(
        stub,
        _request({contract.TEXT: proto}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'text'",
        "DT_COMPLEX64",
    )


# ---------------------------------------------------------------- JSON structure
@pytest.mark.usefixtures("still_serving")
def test_ragged_json(http) -> None:  # type: ignore[no-untyped-def]
    body = b'{"signature_name": "scale", "instances": [[1, 2, 3], [4, 5]]}'
    rest_fails(_post(http, body), 400, "'x'", "ragged")
    rest_fails(_post(http, b'{"inputs": {"text": [["a", "b"], ["c"]]}}'), 400, "'text'", "ragged")


@pytest.mark.usefixtures("still_serving")
def test_over_deep_json(http) -> None:  # type: ignore[no-untyped-def]
    rest_fails(_post(http, b'{"inputs": ' + b"[" * 40 + b"]" * 40 + b"}"), 400, "levels deep")
    # Far past any parser's recursion limit (TF Serving CVE-2025-0649 crashed on this).
    rest_fails(_post(http, b"[" * 90_000 + b"]" * 90_000), 400)


@pytest.mark.usefixtures("still_serving")
def test_nan_and_infinity_in_json(http) -> None:  # type: ignore[no-untyped-def]
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"signature_name": "scale", "instances": [[1, 2, ' + token + b"]]}"
        rest_fails(_post(http, body), 400, "NaN and Infinity")


@pytest.mark.usefixtures("still_serving")
def test_invalid_base64(http) -> None:  # type: ignore[no-untyped-def]
    good = base64.b64encode(b"hello").decode()
    for bad in (good[:-1] + "!", "aGVsbG8", good[:2] + " \n" + good[2:]):
        body = orjson.dumps({"instances": [{"b64": bad}]})
        rest_fails(_post(http, body), 400, "'text' element 0", "base64")


@pytest.mark.usefixtures("still_serving")
def test_invalid_utf8_and_lone_surrogates(stub, http) -> None:  # type: ignore[no-untyped-def]
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    grpc_fails(stub, _request(_texts(b"ok", b"\xc3\x28")), invalid, "'text' element 1", "UTF-8")
    grpc_fails(stub, _request(_texts(b"\xed\xa0\x80")), invalid, "'text' element 0", "UTF-8")
    rest_fails(_post(http, b'{"instances": ["\xff\xfe"]}'), 400, "UTF-8")
    rest_fails(_post(http, b'{"instances": ["\\ud800"]}'), 400, "surrogate")
    b64 = base64.b64encode(b"\xed\xa0\x80").decode()
    rest_fails(_post(http, b'{"instances": [{"b64": "%s"}]}' % b64.encode()), 400, "UTF-8")


# ---------------------------------------------------------------- limits
@pytest.mark.usefixtures("still_serving")
def test_too_many_rows_and_too_long_texts(stub, http) -> None:  # type: ignore[no-untyped-def]
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    rows = [b"a"] * (MAX_ROWS + 1)
    grpc_fails(stub, _request(_texts(*rows)), invalid, "'text'", f"{MAX_ROWS + 1} rows")
    long_text = b"x" * (MAX_CHARS + 1)
    grpc_fails(stub, _request(_texts(long_text)), invalid, "'text'", f"{MAX_CHARS + 1} characters")
    rest_fails(
        http.post("/v1/models/tiny:predict", json={"instances": ["a"] * (MAX_ROWS + 1)}),
        400,
        f"{MAX_ROWS + 1} rows",
    )


@pytest.mark.usefixtures("still_serving")
def test_too_big_bodies_and_gzip_bombs(stub, http) -> None:  # type: ignore[no-untyped-def]
    big = [b"x" * 400] * 600  # ~240 kB > MAX_BYTES, rows and characters within limits
    grpc_fails(
        stub,
        _request(
            _texts(*big[:MAX_ROWS])
            | {"pad": tf.make_tensor_proto(np.zeros(MAX_BYTES // 4, np.float32))}
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    rest_fails(_post(http, b'{"instances": ["' + b"x" * MAX_BYTES + b'"]}'), 429, "limit")
    bomb = gzip.compress(b'{"instances": ["' + b" " * (50 * MAX_BYTES) + b'"]}')
    assert len(bomb) < MAX_BYTES
    rest_fails(_post(http, bomb, **{"Content-Encoding": "gzip"}), 429, "after gzip")
    rest_fails(_post(http, b"not gzip", **{"Content-Encoding": "gzip"}), 400, "gzip")
