"""Our own protos are byte-for-byte TF Serving's: same requests, same parses, both ways.

tensorflow-serving-api and the clients' protos are imported in one process here, which also
proves the two sets of definitions do not collide in the default descriptor pool.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

from clients._grpc_messages import (
    build_metadata_request,
    build_predict_request,
    build_status_request,
    model_spec,
    parse_metadata_response,
    parse_predict_response,
    parse_status_response,
)
from clients._tensor_proto import from_tensor_proto
from clients.protos import serving_apis_pb2 as apis
from clients.protos import tensor_pb2
from models import contract

TEXTS = ["hello", "Grüße, ß and 中文", "", "x" * 300]
RAW = [b"\xff\xfe not utf-8", b"ok"]


def _det(message: object) -> bytes:
    return message.SerializeToString(deterministic=True)  # type: ignore[attr-defined]


def _tf_request(
    inputs: dict[str, np.ndarray],
    *,
    signature_name: str,
    version: int | None = None,
    label: str | None = None,
    output_filter: tuple[str, ...] = (),
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "minilm"
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.output_filter.extend(output_filter)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


@pytest.mark.parametrize(
    ("inputs", "version", "label", "output_filter"),
    [
        ({contract.TEXT: TEXTS}, None, None, ()),
        ({contract.TEXT: TEXTS}, 1, None, (contract.EMBEDDING,)),
        ({contract.TEXT: RAW}, None, "stable", ()),
        (
            {
                contract.INPUT_WORD_IDS: np.arange(12, dtype=np.int32).reshape(2, 6),
                contract.INPUT_MASK: np.ones((2, 6), np.int32),
                "floats": np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 2, 2),
                "int64": np.array([1, -(2**40)], dtype=np.int64),
                "bools": np.array([True, False, True]),
                "doubles": np.array([0.5, 1e300]),
                "complex": np.array([1 + 2j, -3j], dtype=np.complex64),
                "uint16": np.array([1, 65535], dtype=np.uint16),
            },
            7,
            None,
            (contract.POOLED_OUTPUT, contract.SEQUENCE_OUTPUT),
        ),
    ],
)
def test_predict_request_is_byte_identical(
    inputs: dict[str, object],
    version: int | None,
    label: str | None,
    output_filter: tuple[str, ...],
) -> None:
    ours = build_predict_request(
        "minilm",
        inputs,
        signature_name=contract.SERVING_DEFAULT,
        version=version,
        version_label=label,
        output_filter=output_filter,
    )
    reference_inputs = {
        k: (
            np.array([t.encode() if isinstance(t, str) else t for t in v], dtype=object)
            if isinstance(v, list)
            else v
        )
        for k, v in inputs.items()
    }
    theirs = _tf_request(
        reference_inputs,  # type: ignore[arg-type]
        signature_name=contract.SERVING_DEFAULT,
        version=version,
        label=label,
        output_filter=output_filter,
    )
    assert _det(ours) == _det(theirs)
    # Each side parses the other's bytes into an equal message.
    assert _det(predict_pb2.PredictRequest.FromString(_det(ours))) == _det(theirs)
    assert _det(apis.PredictRequest.FromString(_det(theirs))) == _det(ours)
    # And the tensors decode to the same values as TensorFlow's own decoder.
    for name, tensor in theirs.inputs.items():
        np.testing.assert_array_equal(from_tensor_proto(ours.inputs[name]), tf.make_ndarray(tensor))


def test_model_spec_version_and_label_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        model_spec("m", version=1, version_label="stable")


@pytest.mark.parametrize(
    "array",
    [
        np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32),
        np.arange(10, dtype=np.int32).reshape(2, 5),
        np.array([[b"a", b"\xff"], [b"", b"long" * 50]], dtype=object),
        np.array([1.5, -2.25], dtype=np.float16),
        np.array([1 + 2j, 3 - 4j], dtype=np.complex64),
        np.array([2**63 - 1, -1], dtype=np.int64),
    ],
)
def test_tensor_decoding_matches_tensorflow(array: np.ndarray) -> None:
    """Responses written by TensorFlow (tensor_content or *_val fields) decode identically."""
    packed = tf.make_tensor_proto(array)
    ours = from_tensor_proto(tensor_pb2.TensorProto.FromString(_det(packed)))
    assert ours.dtype == tf.make_ndarray(packed).dtype
    np.testing.assert_array_equal(ours, tf.make_ndarray(packed))
    # The *_val form (what a server may write instead of tensor_content) too.
    if array.dtype != object:
        values = tf.make_tensor_proto(array.ravel().tolist(), dtype=tf.as_dtype(array.dtype))
        values.tensor_shape.CopyFrom(packed.tensor_shape)
        decoded = from_tensor_proto(tensor_pb2.TensorProto.FromString(_det(values)))
        np.testing.assert_array_equal(decoded, array)


def test_compact_tensor_repeats_last_value() -> None:
    packed = tf.make_tensor_proto(7, dtype=tf.int32, shape=[2, 3])
    decoded = from_tensor_proto(tensor_pb2.TensorProto.FromString(_det(packed)))
    np.testing.assert_array_equal(decoded, np.full((2, 3), 7, np.int32))


def test_predict_response_from_tensorflow_parses() -> None:
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "minilm"
    response.model_spec.version.value = 3
    emb = np.random.default_rng(1).standard_normal((2, 384)).astype(np.float32)
    response.outputs[contract.EMBEDDING].CopyFrom(tf.make_tensor_proto(emb))
    response.outputs[contract.LABELS].CopyFrom(
        tf.make_tensor_proto(np.array([b"pos", b"neg"], dtype=object))
    )
    ours = apis.PredictResponse.FromString(_det(response))
    outputs = parse_predict_response(ours)
    np.testing.assert_array_equal(outputs[contract.EMBEDDING], emb)
    assert outputs[contract.LABELS].tolist() == [b"pos", b"neg"]
    assert ours.model_spec.version.value == 3


def test_metadata_response_any_unpacks_into_our_signature_map() -> None:
    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    sig.inputs[contract.TEXT].name = "serving_default_text:0"
    sig.inputs[contract.TEXT].dtype = tf.string.as_datatype_enum
    sig.inputs[contract.TEXT].tensor_shape.dim.add(size=-1)
    sig.outputs[contract.EMBEDDING].dtype = tf.float32.as_datatype_enum
    sig.outputs[contract.EMBEDDING].tensor_shape.dim.add(size=-1)
    sig.outputs[contract.EMBEDDING].tensor_shape.dim.add(size=384)
    sigmap = get_model_metadata_pb2.SignatureDefMap()
    sigmap.signature_def[contract.SERVING_DEFAULT].CopyFrom(sig)
    response = get_model_metadata_pb2.GetModelMetadataResponse(
        model_spec=model_pb2.ModelSpec(name="minilm")
    )
    response.model_spec.version.value = 1
    packed = any_pb2.Any()
    packed.Pack(sigmap)
    response.metadata[contract.SIGNATURE_DEF_FIELD].CopyFrom(packed)

    metadata = parse_metadata_response(apis.GetModelMetadataResponse.FromString(_det(response)))
    assert metadata.model_name == "minilm" and metadata.version == 1
    spec = metadata.signatures[contract.SERVING_DEFAULT]
    assert spec.method_name == "tensorflow/serving/predict"
    assert spec.inputs[contract.TEXT].dtype == "DT_STRING"
    assert spec.outputs[contract.EMBEDDING].shape == (-1, 384)
    assert spec.outputs[contract.EMBEDDING].numpy_dtype == np.float32
    # Our request is TF Serving's request.
    ours = build_metadata_request("minilm", version=1)
    theirs = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name="minilm"), metadata_field=["signature_def"]
    )
    theirs.model_spec.version.value = 1
    assert _det(ours) == _det(theirs)


def test_status_response_parses() -> None:
    response = get_model_status_pb2.GetModelStatusResponse()
    status = response.model_version_status.add(version=2)
    status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    failed = response.model_version_status.add(version=1)
    failed.state = get_model_status_pb2.ModelVersionStatus.END
    failed.status.error_code = 5
    failed.status.error_message = "gone"
    parsed = parse_status_response(apis.GetModelStatusResponse.FromString(_det(response)))
    assert [(s.version, s.state, s.error_code) for s in parsed] == [
        (2, "AVAILABLE", "OK"),
        (1, "END", "NOT_FOUND"),
    ]
    assert parsed[1].error_message == "gone"
    ours = build_status_request("minilm", version_label="canary")
    theirs = get_model_status_pb2.GetModelStatusRequest(
        model_spec=model_pb2.ModelSpec(name="minilm", version_label="canary")
    )
    assert _det(ours) == _det(theirs)
