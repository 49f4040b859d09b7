"""The one set of TF Serving config files in deploy/config, parsed with the real protos.

``google.protobuf.text_format.Parse`` rejects unknown fields, so a typo or a field TF Serving
2.21 does not know fails here instead of at a server's startup.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_files import BATCHING_PARAMETERS, CONFIG_DIR, MODELS_CONFIG, MONITORING_CONFIG
from google.protobuf import text_format
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

from models import contract
from serving.protos import textserve_batching_pb2, textserve_monitoring_pb2

# Every file in deploy/config and the message it must parse as. A new config file must be
# added here, or test_every_config_file_has_a_message fails.
MESSAGES: dict[str, type[Message]] = {
    MODELS_CONFIG.name: model_server_config_pb2.ModelServerConfig,
    BATCHING_PARAMETERS.name: textserve_batching_pb2.BatchingParameters,
    MONITORING_CONFIG.name: textserve_monitoring_pb2.MonitoringConfig,
}

# The design target the batching file is tuned against (deploy/README.md).
P99_TARGET_MICROS = 100_000


def parse(path: Path) -> Message:
    message = MESSAGES[path.name]()
    text_format.Parse(path.read_text(encoding="utf-8"), message)
    return message


def test_every_config_file_has_a_message() -> None:
    assert sorted(p.name for p in CONFIG_DIR.iterdir()) == sorted(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_config_file_parses_strictly(name: str) -> None:
    message = parse(CONFIG_DIR / name)
    assert message.ListFields(), f"{name} parsed to an empty message"


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_unknown_field_is_rejected(name: str) -> None:
    # Proves the strict check above can fail: the same text plus one unknown field.
    text = (CONFIG_DIR / name).read_text(encoding="utf-8") + "\nnot_a_tf_serving_field: 1\n"
    with pytest.raises(text_format.ParseError, match="not_a_tf_serving_field"):
        text_format.Parse(text, MESSAGES[name]())


def test_models_config_serves_the_bundled_model() -> None:
    config = parse(MODELS_CONFIG)
    assert isinstance(config, model_server_config_pb2.ModelServerConfig)
    (model,) = config.model_config_list.config
    assert model.name == contract.BUNDLED_MODEL_NAME
    assert model.base_path == f"/models/{contract.BUNDLED_MODEL_NAME}"
    assert model.model_platform == "tensorflow"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    # Two versions loaded: rollback by label without a reload from disk.
    assert model.model_version_policy.latest.num_versions == 2
    assert dict(model.version_labels) == {"stable": 1, "canary": 1}


def test_batching_parameters_fit_the_bucketed_shapes() -> None:
    params = parse(BATCHING_PARAMETERS)
    assert isinstance(params, textserve_batching_pb2.BatchingParameters)
    sizes = list(params.allowed_batch_sizes)
    assert sizes == sorted(set(sizes)) and sizes[0] >= 1
    # TF Serving (without large-batch splitting) requires the last size to be the maximum.
    assert sizes[-1] == params.max_batch_size.value
    # Powers of two: padding a batch up to the next size never doubles its rows.
    assert all(size & (size - 1) == 0 for size in sizes)
    # Padding [batch] strings is meaningless, and TF Serving pads [batch, seq] inputs with each
    # tensor's first element (the [CLS] id, mask 1), which would change encode's results.
    assert params.pad_variable_length_inputs is False
    # The first request of a batch waits at most 10% of the p99 budget for company.
    assert 0 < params.batch_timeout_micros.value <= P99_TARGET_MICROS // 10
    # A bounded queue (TF Serving's default is 100 batches of seconds of waiting).
    assert 1 <= params.max_enqueued_batches.value <= 8
    assert params.num_batch_threads.value >= 1


def test_monitoring_config_enables_prometheus_at_the_contract_path() -> None:
    monitoring = parse(MONITORING_CONFIG)
    assert isinstance(monitoring, textserve_monitoring_pb2.MonitoringConfig)
    assert monitoring.prometheus_config.enable is True
    assert monitoring.prometheus_config.path == contract.METRICS_PATH


def test_textserve_server_accepts_the_same_files() -> None:
    # The server's own loaders (not only the protos) must accept what TF Serving accepts.
    from serving import config_files

    (model,) = config_files.load_model_config_file(str(MODELS_CONFIG))
    assert model.name == contract.BUNDLED_MODEL_NAME
    assert model.version_policy.kind == "latest" and model.version_policy.num_versions == 2
    batching = config_files.load_batching_file(str(BATCHING_PARAMETERS))
    params = parse(BATCHING_PARAMETERS)
    assert isinstance(params, textserve_batching_pb2.BatchingParameters)
    assert batching.max_batch_size == params.max_batch_size.value
    assert batching.batch_timeout_micros == params.batch_timeout_micros.value
    assert batching.allowed_batch_sizes == tuple(params.allowed_batch_sizes)
    monitoring = config_files.load_monitoring_file(str(MONITORING_CONFIG))
    assert monitoring.prometheus_enabled and monitoring.prometheus_path == contract.METRICS_PATH
