"""The gRPC front, driven with raw tensorflow-serving-api stubs against the real server process."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from models import contract
from tests.support.server_process import ServerProcess

TEXTS = [b"hello", "caf\u00e9 \u65e5\u672c".encode(), b"a much longer sentence than the others"]


def in_process(version_dir: Path, texts: list[bytes]) -> np.ndarray:
    """The SavedModel's own answer, loaded in this process (the reference for every check)."""
    loaded = tf.saved_model.load(str(version_dir))
    outputs = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(texts, tf.string))
    return outputs[contract.EMBEDDING].numpy()


def _config(base: Path, labels: dict[str, int]) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add()
    entry.name = "tiny"
    entry.base_path = str(base)
    entry.model_platform = "tensorflow"
    entry.model_version_policy.all.SetInParent()
    for label, version in labels.items():
        entry.version_labels[label] = version
    return config


@pytest.fixture(scope="module")
def server(tiny_base: Path) -> Iterator[ServerProcess]:
    base = tiny_base
    config_file = base.parent / f"{base.name}.config"
    config_file.write_text(text_format.MessageToString(_config(base, {"stable": 1})))
    with ServerProcess(
        model_config_file=config_file,
        wait_for=["tiny"],
        rest=False,
        args=["--enable_grpc_healthcheck_service"],
    ) as srv:
        srv.wait_for_version("tiny", 2)
        srv.wait_for_version("tiny", 1)
        yield srv


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="module")
def predictions(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


def _text_request(texts: list[bytes], **spec: object) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = int(value)  # type: ignore[call-overload]
        else:
            setattr(request.model_spec, key, value)
    request.inputs[contract.TEXT].CopyFrom(tf.make_tensor_proto(np.array(texts, dtype=object)))
    return request


def _code(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=30, **kwargs)
    return info.value.code(), info.value.details()


def test_predict_answers_each_text_with_the_served_version(predictions, tiny_base) -> None:  # type: ignore[no-untyped-def]
    response = predictions.Predict(_text_request(TEXTS), timeout=30)
    assert response.model_spec.name == "tiny"
    assert response.model_spec.version.value == 2  # latest of the two
    assert response.model_spec.signature_name == contract.SERVING_DEFAULT
    got = tf.make_ndarray(response.outputs[contract.EMBEDDING])
    assert got.tobytes() == in_process(tiny_base / "2", TEXTS).tobytes()


def test_predict_honours_version_label_and_output_filter(predictions, tiny_base) -> None:  # type: ignore[no-untyped-def]
    by_version = predictions.Predict(_text_request(TEXTS[:1], version=1), timeout=30)
    assert by_version.model_spec.version.value == 1
    got = tf.make_ndarray(by_version.outputs[contract.EMBEDDING])
    assert got.tobytes() == in_process(tiny_base / "1", TEXTS[:1]).tobytes()
    by_label = predictions.Predict(_text_request(TEXTS[:1], version_label="stable"), timeout=30)
    assert by_label.model_spec.version.value == 1
    request = _text_request(TEXTS[:2])
    request.output_filter.append(contract.EMBEDDING)
    filtered = predictions.Predict(request, timeout=30)
    assert list(filtered.outputs) == [contract.EMBEDDING]
    request.output_filter[:] = ["no_such_output"]
    code, details = _code(predictions.Predict, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no_such_output" in details


def test_predict_numbers_in_tensor_content_and_typed_fields(predictions) -> None:  # type: ignore[no-untyped-def]
    x = np.array([[0.1, -2.5, 3e-8], [1.0, 2.0, 3.0]], dtype=np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "scale"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))  # tensor_content
    assert request.inputs["x"].tensor_content
    y = tf.make_ndarray(predictions.Predict(request, timeout=30).outputs["y"])
    assert y.dtype == np.float32 and y.tobytes() == (x * 2).tobytes()
    ids = np.array([[1, 2], [2**31 - 1, -(2**31)]], dtype=np.int32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "ids"
    proto = request.inputs["ids"]
    proto.dtype = tf.int32.as_datatype_enum
    proto.tensor_shape.dim.add().size = 2
    proto.tensor_shape.dim.add().size = 2
    proto.int_val.extend(ids.ravel().tolist())  # typed field, as hand-written clients send
    total = tf.make_ndarray(predictions.Predict(request, timeout=30).outputs["total"])
    assert total.dtype == np.int64 and total.tolist() == [3, -1]


def test_get_model_metadata_packs_the_signature_def_map(predictions) -> None:  # type: ignore[no-untyped-def]
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "tiny"
    request.model_spec.version.value = 1
    request.metadata_field.append("signature_def")
    response = predictions.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "tiny" and response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    signatures = signature_map.signature_def
    assert {contract.SERVING_DEFAULT, "scale", "ids"} <= set(signatures)
    assert signatures[contract.SERVING_DEFAULT].inputs[contract.TEXT].dtype == tf.string
    assert signatures["scale"].outputs["y"].tensor_shape.dim[1].size == 3
    del request.metadata_field[:]
    code, details = _code(predictions.GetModelMetadata, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "metadata_field" in details
    request.metadata_field.append("nonsense")
    code, details = _code(predictions.GetModelMetadata, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "nonsense" in details


def test_classify_regress_multi_inference_answer_as_tf_serving(predictions) -> None:  # type: ignore[no-untyped-def]
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "tiny"
    code, details = _code(predictions.Classify, classify)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("No classification inputs found in SignatureDef:")
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "tiny"
    regress.model_spec.signature_name = "nope"
    code, details = _code(predictions.Regress, regress)
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "No signature was found with the name: nope",
    )
    multi = inference_pb2.MultiInferenceRequest()
    task = multi.tasks.add()
    task.model_spec.name = "tiny"
    task.method_name = "tensorflow/serving/predict"
    code, details = _code(predictions.MultiInference, multi)
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert details == "Unsupported signature method_name: tensorflow/serving/predict"
    task.method_name = "tensorflow/serving/regress"
    code, details = _code(predictions.MultiInference, multi)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("No regression inputs found in SignatureDef:")
    classify.model_spec.name = "absent"
    assert _code(predictions.Classify, classify)[0] == grpc.StatusCode.NOT_FOUND


def test_get_model_status(models) -> None:  # type: ignore[no-untyped-def]
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "tiny"
    response = models.GetModelStatus(request, timeout=30)
    states = {s.version: s.state for s in response.model_version_status}
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert states == {1: available, 2: available}
    assert all(s.status.error_code == 0 for s in response.model_version_status)
    request.model_spec.version.value = 1
    assert [s.version for s in models.GetModelStatus(request, timeout=30).model_version_status] == [
        1
    ]
    request.model_spec.name = "absent"
    assert _code(models.GetModelStatus, request)[0] == grpc.StatusCode.NOT_FOUND


def test_handle_reload_config_request_applies_new_labels(tiny_base, models, predictions) -> None:  # type: ignore[no-untyped-def]
    base = tiny_base
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(_config(base, {"stable": 1, "canary": 2}))
    response = models.HandleReloadConfigRequest(request, timeout=120)
    assert response.status.error_code == 0
    canary = predictions.Predict(_text_request(TEXTS[:1], version_label="canary"), timeout=30)
    assert canary.model_spec.version.value == 2
    unsupported = model_management_pb2.ReloadConfigRequest()
    unsupported.config.custom_model_config.Pack(predict_pb2.PredictRequest())
    code, details = _code(models.HandleReloadConfigRequest, unsupported)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Only ModelConfigList" in details


def test_health_check_and_watch(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == serving
    named = health_pb2.HealthCheckRequest(service="tensorflow.serving.PredictionService")
    assert health.Check(named, timeout=10).status == serving
    code, _ = _code(health.Check, health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert code == grpc.StatusCode.NOT_FOUND
    stream = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
    assert next(stream).status == serving
    stream.cancel()


def test_sigterm_turns_health_not_serving_before_exit(server, channel) -> None:  # type: ignore[no-untyped-def]
    """Last test of the module: it stops the module's server."""
    health = health_pb2_grpc.HealthStub(channel)
    stream = health.Watch(health_pb2.HealthCheckRequest(), timeout=60)
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
    server.proc.send_signal(signal.SIGTERM)
    statuses = []
    with contextlib.suppress(grpc.RpcError):  # the stream ends when the server closes
        statuses.extend(message.status for message in stream)
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
    assert server.proc.wait(timeout=60) == 0
