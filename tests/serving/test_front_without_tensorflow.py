"""The front process never loads TensorFlow, and its own protos read TF's bytes unchanged.

The front (gRPC, REST, codec, model manager) uses ``clients.protos`` (textserve.wire) and
``serving.protos.textserve_front_pb2``: each field they declare must have the number and type
of TensorFlow's / TF Serving's message of the same name, and a real saved_model.pb must give
the same SignatureDefs as TensorFlow reads from it. Then a real server, started from a
--model_config_file and sent a config reload (tensorflow-serving-api's config protos do not
import TensorFlow), answers both protocols, and its front process has no TensorFlow library
mapped while its worker does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import descriptor, text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from models import contract
from serving.protos import textserve_front_pb2 as ours
from serving.served_signature import parse_saved_model_signatures
from tests.support.server_process import ServerProcess
from tests.support.tfs_calls import predict, texts

MODEL = "tiny"
TF_LIBRARY = "libtensorflow"  # libtensorflow_framework.so.2 / libtensorflow_cc.so.2


def _same_fields(
    mine: descriptor.Descriptor, theirs: descriptor.Descriptor, seen: set[str]
) -> None:
    """Every field ``mine`` declares is ``theirs``' field of that name: number, type, repeated."""
    if mine.full_name in seen:
        return
    seen.add(mine.full_name)
    for field in mine.fields:
        assert field.name in theirs.fields_by_name, f"{theirs.full_name} has no {field.name}"
        other = theirs.fields_by_name[field.name]
        where = f"{mine.full_name}.{field.name} vs {other.full_name}"
        assert (field.number, field.type, field.is_repeated) == (
            other.number,
            other.type,
            other.is_repeated,
        ), where
        if field.containing_oneof is not None or other.containing_oneof is not None:
            assert field.containing_oneof.name == other.containing_oneof.name, where
        if field.message_type is not None:
            _same_fields(field.message_type, other.message_type, seen)
        if field.enum_type is not None:
            assert {v.name: v.number for v in field.enum_type.values}.items() <= {
                v.name: v.number for v in other.enum_type.values
            }.items(), where


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        (ours.SavedModel, saved_model_pb2.SavedModel),
        (ours.MetaGraphDef, meta_graph_pb2.MetaGraphDef),
        (ours.ClassificationRequest, classification_pb2.ClassificationRequest),
        (ours.ClassificationResponse, classification_pb2.ClassificationResponse),
        (ours.RegressionRequest, regression_pb2.RegressionRequest),
        (ours.RegressionResponse, regression_pb2.RegressionResponse),
        (ours.MultiInferenceRequest, inference_pb2.MultiInferenceRequest),
        (ours.MultiInferenceResponse, inference_pb2.MultiInferenceResponse),
        (ours.ModelServerConfig, model_server_config_pb2.ModelServerConfig),
        (ours.ReloadConfigRequest, model_management_pb2.ReloadConfigRequest),
        (ours.ReloadConfigResponse, model_management_pb2.ReloadConfigResponse),
    ],
    ids=lambda message: message.DESCRIPTOR.full_name,
)
def test_front_protos_are_tensorflow_serving_field_for_field(mine: type, theirs: type) -> None:
    assert mine.DESCRIPTOR.name == theirs.DESCRIPTOR.name
    _same_fields(mine.DESCRIPTOR, theirs.DESCRIPTOR, set())


def test_saved_model_signatures_read_without_tensorflow_equal_tensorflows(
    tiny_model_dir: Path,
) -> None:
    pb = (tiny_model_dir / "1" / "saved_model.pb").read_bytes()
    raw, specs = parse_saved_model_signatures(pb)
    reference = saved_model_pb2.SavedModel.FromString(pb).meta_graphs[0].signature_def
    assert sorted(raw) == sorted(reference)
    for name, blob in raw.items():
        assert meta_graph_pb2.SignatureDef.FromString(blob) == reference[name], name
    assert "__saved_model_init_op" not in specs
    text = specs[contract.SERVING_DEFAULT].inputs[contract.TEXT]
    assert (text.dtype_name, text.shape) == ("DT_STRING", (None,))


def test_reload_config_passes_tf_servings_model_list_on_unchanged() -> None:
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add(name="m", base_path="/models/m")
    entry.model_version_policy.specific.versions.extend([1, 2])
    entry.version_labels["stable"] = 1
    request = model_management_pb2.ReloadConfigRequest(config=config)
    parsed = ours.ReloadConfigRequest.FromString(request.SerializeToString())
    assert parsed.config.WhichOneof("config") == "model_config_list"
    again = model_server_config_pb2.ModelServerConfig.FromString(parsed.config.SerializeToString())
    assert again == config


# ---------------------------------------------------------------- the real server
def _model_config(base: Path) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(
        name=MODEL, base_path=str(base), model_platform="tensorflow"
    )
    return config


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # Started from a --model_config_file: the config parser runs in the front too.
    config_file = tmp_path_factory.mktemp("front_config") / "models.config"
    config_file.write_text(text_format.MessageToString(_model_config(tiny_model_dir)))
    with ServerProcess(
        model_config_file=config_file,
        wait_for=[MODEL],
        args=["--file_system_poll_wait_seconds=0"],
    ) as srv:
        yield srv


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/maps")
def test_the_front_process_never_loads_tensorflow(
    server: ServerProcess, tiny_model_dir: Path
) -> None:
    # Every front path once: gRPC predict, metadata and config reload, REST predict, status
    # and metadata.
    with grpc.insecure_channel(server.grpc_target) as channel:
        version, out = predict(channel, MODEL, {contract.TEXT: texts("hello")})
        assert version == 1 and out[contract.EMBEDDING][0][0] == len("hello")
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = MODEL
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        metadata = stub.GetModelMetadata(request, timeout=30)
        reload = model_management_pb2.ReloadConfigRequest(config=_model_config(tiny_model_dir))
        model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
            reload, timeout=60
        )
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signature_map)  # TF Serving's type URL
    assert contract.SERVING_DEFAULT in signature_map.signature_def
    rest = httpx.post(
        f"{server.rest_url}/v1/models/{MODEL}:predict", json={"instances": ["hi"]}, timeout=30
    )
    assert rest.status_code == 200 and rest.json()["predictions"][0][0] == 2
    assert httpx.get(f"{server.rest_url}/v1/models/{MODEL}/metadata", timeout=30).is_success
    assert server.is_available(MODEL)  # REST status

    worker = server.worker_pid()
    assert worker is not None and worker != server.pid
    assert TF_LIBRARY in _maps(worker)  # the check can see TensorFlow where it is loaded
    front = _maps(server.pid)
    assert TF_LIBRARY not in front
    assert "_pywrap_tensorflow" not in front
