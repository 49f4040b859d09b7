"""The wire codecs (TensorProto, TF Serving JSON, request bodies) and the input checks: numpy
both ways, and every wire-level rejection."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import zlib
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from clients.protos import tensor_pb2 as wire_tensor_pb2
from serving.core_api import CheckedInputs
from serving.errors import Code, ServingError
from serving.input_checks import InputChecks
from serving.limits import Limits
from serving.predict_json import PredictJson
from serving.request_body import read_body
from serving.tensor_proto_codec import TensorProtoCodec

LIMITS = Limits(max_request_bytes=1 << 20, max_rows_per_request=64, max_text_chars=50)
CHECKS = InputChecks(LIMITS)
PROTO = TensorProtoCodec(CHECKS)
JSON = PredictJson(CHECKS)
TEXT_SIG = {"text": types_pb2.DT_STRING}


def _as_wire(proto: tensor_pb2.TensorProto) -> wire_tensor_pb2.TensorProto:
    """What the server parses: a client's (TensorFlow's) TensorProto, as bytes on the wire."""
    return wire_tensor_pb2.TensorProto.FromString(proto.SerializeToString())


def _as_tf(proto: wire_tensor_pb2.TensorProto) -> tensor_pb2.TensorProto:
    """What a tensorflow-serving-api client parses from the server's answer."""
    return tensor_pb2.TensorProto.FromString(proto.SerializeToString())


def _decode(codec: TensorProtoCodec, name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
    return codec.from_tensor_proto(name, _as_wire(proto))


@contextlib.contextmanager
def rejects(code: Code, *fragments: str) -> Iterator[None]:
    """Expects a ServingError with ``code`` whose message contains every fragment."""
    with pytest.raises(ServingError) as info:
        yield
    assert info.value.code == code, info.value
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message


# ---------------------------------------------------------------- TensorProto round trips
@pytest.mark.parametrize(
    "array",
    [
        np.array([[0.1, -3.4028235e38, 1e-45]], dtype=np.float32),
        np.array([1.5, -2.25], dtype=np.float64),
        np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32),
        np.array([2**40, -(2**62)], dtype=np.int64),
        np.array([-128, 127], dtype=np.int8),
        np.array([0, 255], dtype=np.uint8),
        np.array([-(2**15), 2**15 - 1], dtype=np.int16),
        np.array([0, 65535], dtype=np.uint16),
        np.array([0, 2**32 - 1], dtype=np.uint32),
        np.array([0, 2**64 - 1], dtype=np.uint64),
        np.array([0.5, -65504.0], dtype=np.float16),
        np.array([True, False]),
        np.array([b"caf\xc3\xa9", b"", "日本".encode()], dtype=object),
    ],
    ids=lambda a: str(a.dtype),
)
def test_tensor_proto_round_trip_matches_tensorflow(array: np.ndarray) -> None:
    # What real clients send: tf.make_tensor_proto (tensor_content for numbers).
    decoded = _decode(PROTO, "x", tf.make_tensor_proto(array))
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)
    for as_content in (False, True):
        proto = PROTO.to_tensor_proto(array, as_tensor_content=as_content)
        back = tf.make_ndarray(_as_tf(proto))
        assert back.dtype == array.dtype and back.shape == array.shape
        np.testing.assert_array_equal(back, array)
        np.testing.assert_array_equal(PROTO.from_tensor_proto("x", proto), array)


def test_typed_value_fields_are_read_like_tensorflow() -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    proto.tensor_shape.dim.add().size = 2
    proto.tensor_shape.dim.add().size = 2
    proto.float_val.extend([1.0, 2.0, 3.0, 0.1])
    np.testing.assert_array_equal(
        _decode(PROTO, "x", proto), np.array([[1, 2], [3, 0.1]], np.float32)
    )


def test_float_output_is_bit_exact_in_typed_fields() -> None:
    rng = np.random.default_rng(0)
    array = rng.standard_normal((3, 384)).astype(np.float32)
    proto = PROTO.to_tensor_proto(array)
    assert not proto.tensor_content and len(proto.float_val) == array.size
    assert tf.make_ndarray(_as_tf(proto)).tobytes() == array.tobytes()


# ---------------------------------------------------------------- TensorProto rejections
def _strings(values: list[bytes], shape: list[int]) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    proto.string_val.extend(values)
    return proto


def test_huge_declared_shape_with_tiny_content_is_rejected() -> None:
    with rejects(Code.INVALID_ARGUMENT, "'text'", "[1000000000]", "holds 1 values"):
        _decode(PROTO, "text", _strings([b"a"], [1_000_000_000]))
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\0" * 8)
    proto.tensor_shape.dim.add().size = 1 << 40
    with rejects(Code.INVALID_ARGUMENT, "'x'", "tensor_content holds 8 bytes"):
        _decode(PROTO, "x", proto)


def test_negative_and_overflowing_dims_are_rejected() -> None:
    with rejects(Code.INVALID_ARGUMENT, "'text'", "negative dimension"):
        _decode(PROTO, "text", _strings([b"a"], [-1]))
    with rejects(Code.INVALID_ARGUMENT, "'text'", "overflows int64"):
        _decode(PROTO, "text", _strings([b"a"], [2**62, 2**62]))
    too_deep = _strings([b"a"], [1] * 40)
    with rejects(Code.INVALID_ARGUMENT, "rank 40"):
        _decode(PROTO, "text", too_deep)
    unknown = _strings([b"a"], [1])
    unknown.tensor_shape.unknown_rank = True
    with rejects(Code.INVALID_ARGUMENT, "unknown rank"):
        _decode(PROTO, "text", unknown)


def test_unsupported_dtype_and_wrong_value_field_are_rejected() -> None:
    complex_proto = tf.make_tensor_proto(np.array([1 + 2j], dtype=np.complex64))
    with rejects(Code.INVALID_ARGUMENT, "'z'", "DT_COMPLEX64"):
        _decode(PROTO, "z", complex_proto)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32)
    proto.tensor_shape.dim.add().size = 1
    proto.float_val.append(1.0)
    with rejects(Code.INVALID_ARGUMENT, "'ids'", "int_val", "float_val"):
        _decode(PROTO, "ids", proto)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_UINT8)
    proto.tensor_shape.dim.add().size = 1
    proto.int_val.append(300)
    with rejects(Code.INVALID_ARGUMENT, "out of range for DT_UINT8"):
        _decode(PROTO, "b", proto)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_content=b"abc")
    proto.tensor_shape.dim.add().size = 3
    with rejects(Code.INVALID_ARGUMENT, "tensor_content"):
        _decode(PROTO, "s", proto)
    # Value fields the server's own TensorProto leaves out still count as set.
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32)
    proto.tensor_shape.dim.add().size = 1
    proto.int_val.append(1)
    proto.variant_val.add().type_name = "x"
    with rejects(Code.INVALID_ARGUMENT, "'ids'", "int_val", "but it sets variant_val"):
        _decode(PROTO, "ids", proto)


def _checked(codec: TensorProtoCodec, name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
    inputs = codec.from_tensor_protos({name: _as_wire(proto)})
    assert isinstance(inputs, CheckedInputs)
    return inputs[name]


def test_text_checks_utf8_length_rows_and_emptiness() -> None:
    with rejects(Code.INVALID_ARGUMENT, "'text' element 1", "not valid UTF-8"):
        _checked(PROTO, "text", _strings([b"ok", b"\xff\xfe"], [2]))
    # A UTF-8-encoded lone surrogate (what a careless encoder emits for "\ud800").
    with rejects(Code.INVALID_ARGUMENT, "'text' element 0", "not valid UTF-8"):
        _checked(PROTO, "text", _strings([b"\xed\xa0\x80"], [1]))
    with rejects(Code.INVALID_ARGUMENT, "'text' element 0", "51 characters", "limit is 50"):
        _checked(PROTO, "text", _strings([b"x" * 51], [1]))
    # 50 characters of 3 bytes each are within the character limit.
    assert _checked(PROTO, "text", _strings(["語".encode() * 50], [1])).shape == (1,)
    with rejects(Code.INVALID_ARGUMENT, "'text'", "65 rows", "limit is 64"):
        _checked(PROTO, "text", _strings([b"a"] * 65, [65]))
    with rejects(Code.INVALID_ARGUMENT, "'text'", "empty"):
        _checked(PROTO, "text", _strings([], [0]))
    binary = TensorProtoCodec(InputChecks(strings_are_text=False))
    assert _checked(binary, "img", _strings([b"\xff\xd8"], [1]))[0] == b"\xff\xd8"


# ---------------------------------------------------------------- REST bodies
def test_gzip_and_deflate_bodies_are_inflated() -> None:
    body = b'{"instances": ["a"]}'
    assert read_body(gzip.compress(body), "gzip", limit=LIMITS.max_request_bytes) == body
    assert read_body(zlib.compress(body), "deflate", limit=LIMITS.max_request_bytes) == body
    assert (
        read_body(
            gzip.compress(body[:10]) + gzip.compress(body[10:]),
            "gzip",
            limit=LIMITS.max_request_bytes,
        )
        == body
    )
    assert read_body(body, None, limit=LIMITS.max_request_bytes) == body


def test_gzip_bomb_and_oversized_bodies_are_refused() -> None:
    bomb = gzip.compress(b"0" * (16 << 20))  # 16 MiB of zeros in ~16 KiB
    assert len(bomb) < 64 << 10
    with rejects(Code.RESOURCE_EXHAUSTED, "after gzip decompression", str(1 << 20)):
        read_body(bomb, "gzip", limit=LIMITS.max_request_bytes)
    with rejects(Code.RESOURCE_EXHAUSTED, "larger than the limit"):
        read_body(b" " * ((1 << 20) + 1), None, limit=LIMITS.max_request_bytes)
    with rejects(Code.INVALID_ARGUMENT, "truncated"):
        read_body(gzip.compress(b"x" * 1000)[:-12], "gzip", limit=LIMITS.max_request_bytes)
    with rejects(Code.INVALID_ARGUMENT, "not valid gzip"):
        read_body(b"not gzip at all", "gzip", limit=LIMITS.max_request_bytes)
    with rejects(Code.INVALID_ARGUMENT, "'br'"):
        read_body(b"{}", "br", limit=LIMITS.max_request_bytes)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"instances": [NaN]}', "NaN and Infinity"),
        (b'{"instances": [{"x": [1, -Infinity]}]}', 'Infinity at char 26 (in "x")'),
        (b'{"instances": ["\\ud800"]}', "surrogate"),
        (b'{"inputs": {"text": ["ok", "\xff"]}}', 'not valid UTF-8 at byte 28 (in "text")'),
        (b'{"instances": [1e999]}', "malformed"),
        (b'{"instances": ["a"],}', "malformed"),
    ],
)
def test_invalid_json_is_rejected(body: bytes, fragment: str) -> None:
    with rejects(Code.INVALID_ARGUMENT, fragment):
        JSON.parse_json(body)


def test_deep_json_is_rejected_without_recursion() -> None:
    shallow = PredictJson(InputChecks(Limits(max_json_depth=8)))
    shallow.parse_json(b'{"inputs": {"x": [[[[[["[", 1]]]]]]}}')  # depth 8, "[" is text
    with rejects(Code.INVALID_ARGUMENT, "9 levels deep", "limit is 8"):
        shallow.parse_json(b'{"inputs": {"x": [[[[[[[1]]]]]]]}}')
    with rejects(Code.INVALID_ARGUMENT, "10 levels deep", "limit is 8"):
        shallow.parse_json(b'{"a": [1, [[[[[[[[2]]]]]]]]]}')  # deep list behind a leaf
    shallow.parse_json(rb'{"x": ["a\\", "\"[[[[[[[[[["]}')  # brackets inside strings
    # orjson itself stops at 1024 levels; far deeper input must still be a clean 400.
    with rejects(Code.INVALID_ARGUMENT):
        JSON.parse_json(b"[" * 100_000 + b"]" * 100_000)


# ---------------------------------------------------------------- :predict JSON
def test_row_format_single_input_with_plain_and_b64_strings() -> None:
    doc = {"instances": ["héllo", {"b64": base64.b64encode(b"\x00hi").decode()}]}
    inputs = JSON.decode_predict_json(doc, TEXT_SIG)
    assert JSON.predict_json_form(doc) == "row"
    assert inputs["text"].tolist() == ["héllo".encode(), b"\x00hi"]


def test_row_format_named_inputs_and_columnar_forms() -> None:
    sig = {"text": types_pb2.DT_STRING, "x": types_pb2.DT_FLOAT}
    rows = {
        "signature_name": "s",
        "instances": [{"text": "a", "x": [1, 2]}, {"text": "b", "x": [3, 4.5]}],
    }
    inputs = JSON.decode_predict_json(rows, sig)
    assert JSON.predict_json_form(rows) == "row"
    assert inputs["x"].dtype == np.float32
    np.testing.assert_array_equal(inputs["x"], [[1, 2], [3, 4.5]])
    cols = {"inputs": {"text": ["a", "b"], "x": [[1, 2], [3, 4.5]]}}
    inputs2 = JSON.decode_predict_json(cols, sig)
    assert JSON.predict_json_form(cols) == "columnar"
    np.testing.assert_array_equal(inputs2["x"], inputs["x"])
    inputs3 = JSON.decode_predict_json({"inputs": [[7, 8]]}, {"ids": types_pb2.DT_INT32})
    assert inputs3["ids"].dtype == np.int32 and inputs3["ids"].tolist() == [[7, 8]]


@pytest.mark.parametrize(
    ("doc", "sig", "fragments"),
    [
        ({"instances": [[1, 2], [3]]}, {"x": types_pb2.DT_FLOAT}, ("'x'", "ragged")),
        ({"instances": [["a", "b"], ["c"]]}, TEXT_SIG, ("'text'", "ragged")),
        ({"instances": [{"b64": "aGk=!"}]}, TEXT_SIG, ("'text' element 0", "base64")),
        ({"instances": [{"b64": "aGk"}]}, TEXT_SIG, ("'text' element 0", "base64")),
        ({"instances": [1.5]}, TEXT_SIG, ("'text'", "expects strings", "a number")),
        ({"instances": ["a"]}, {"x": types_pb2.DT_FLOAT}, ("'x'", "DT_FLOAT")),
        ({"instances": [1.5]}, {"ids": types_pb2.DT_INT32}, ("'ids'", "DT_INT32", "floats")),
        ({"instances": [2**40]}, {"ids": types_pb2.DT_INT32}, ("'ids'", "out of range")),
        ({"instances": [1e39]}, {"x": types_pb2.DT_FLOAT}, ("'x'", "out of range")),
        ({"instances": []}, TEXT_SIG, ("non-empty",)),
        ({"inputs": []}, TEXT_SIG, ("'text'", "empty")),
        ({"instances": ["a"], "inputs": ["a"]}, TEXT_SIG, ("exactly one of",)),
        ({"instance": ["a"]}, TEXT_SIG, ("unknown field",)),
        ([1, 2], TEXT_SIG, ("must be an object",)),
        ({"instances": ["a", {"text": "b"}]}, TEXT_SIG, ("mixes",)),
        ({"instances": [{"text": "a"}, {"txt": "b"}]}, TEXT_SIG, ("instance 1",)),
        ({"instances": ["a"]}, {"a": 7, "b": 7}, ("2 inputs",)),
        ({"instances": ["x" * 51]}, TEXT_SIG, ("'text' element 0", "51 characters")),
        ({"instances": ["a"] * 65}, TEXT_SIG, ("65 rows",)),
    ],
)
def test_bad_predict_json_is_invalid_argument(doc: object, sig: dict, fragments: tuple) -> None:  # type: ignore[type-arg]
    with rejects(Code.INVALID_ARGUMENT, *fragments):
        JSON.decode_predict_json(doc, sig)


def test_predict_json_output_forms_and_exact_float32() -> None:
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((3, 5)).astype(np.float32)
    row = orjson.loads(JSON.encode_predict_json({"embedding": emb}, "row"))
    assert np.array(row["predictions"], dtype=np.float32).tobytes() == emb.tobytes()
    both = {"embedding": emb, "label_bytes": np.array([b"\xff", b"a", b"b"], dtype=object)}
    rows = orjson.loads(JSON.encode_predict_json(both, "row"))["predictions"]
    assert rows[0]["label_bytes"] == {"b64": base64.b64encode(b"\xff").decode()}
    assert np.array(rows[2]["embedding"], dtype=np.float32).tobytes() == emb[2].tobytes()
    cols = orjson.loads(JSON.encode_predict_json(both, "columnar"))["outputs"]
    assert cols["label_bytes"][1] == {"b64": "YQ=="}
    texts = {"labels": np.array([b"pos", "é".encode()], dtype=object)}
    assert orjson.loads(JSON.encode_predict_json(texts, "columnar")) == {"outputs": ["pos", "é"]}
    with rejects(Code.INVALID_ARGUMENT, "'b'", "batch size 1"):
        JSON.encode_predict_json({"a": np.zeros((2, 1)), "b": np.zeros((1,))}, "row")


def test_non_finite_outputs_use_tf_serving_tokens() -> None:
    body = JSON.encode_predict_json({"y": np.array([1.0, np.nan, -np.inf], np.float32)}, "row")
    assert json.loads(body)["predictions"][0] == 1.0
    assert b"NaN" in body and b"-Infinity" in body


def _depth(node: object) -> int:
    if isinstance(node, dict):
        return 1 + max((_depth(v) for v in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((_depth(v) for v in node), default=0)
    return 0


def test_depth_check_agrees_with_the_parsed_structure_on_tricky_strings() -> None:
    rng = np.random.default_rng(3)
    alphabet = ['"', "\\", "[", "]", "{", "}", "a", "\u00e9", "\\\\", '\\"', "\n"]

    def text() -> str:
        return "".join(rng.choice(alphabet, size=int(rng.integers(0, 8))))

    def node(level: int) -> object:
        kind = int(rng.integers(0, 4)) if level < 10 else 0
        if kind == 0:
            return text() if rng.random() < 0.6 else float(rng.random())
        if kind == 1:
            return {text(): node(level + 1) for _ in range(int(rng.integers(0, 3)))}
        return [node(level + 1) for _ in range(int(rng.integers(0, 3)))]

    for _ in range(300):
        doc = {"inputs": node(0)}
        want = _depth(doc)
        limit = int(rng.integers(1, 12))
        codec = PredictJson(InputChecks(Limits(max_json_depth=limit)))
        for body in (json.dumps(doc).encode(), orjson.dumps(doc)):
            if want <= limit:
                assert codec.parse_json(body) == doc
            else:
                with rejects(Code.INVALID_ARGUMENT, f"nested {want} levels deep"):
                    codec.parse_json(body)
