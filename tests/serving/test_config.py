"""Flags and TF Serving's text-proto config files, parsed as tensorflow_model_server does."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import contract
from serving.config_files import (
    load_batching_file,
    load_monitoring_file,
    parse_model_server_config,
)
from serving.server_config import BatchingConfig, ConfigError, VersionPolicy
from serving.server_flags import build_arg_parser, parse_args

MODELS_CONFIG = """
model_config_list {
  config {
    name: "minilm"
    base_path: "/models/minilm"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 2 versions: 1 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config {
    name: "other"
    base_path: "/models/other"
    model_version_policy { all {} }
  }
  config {
    name: "third" base_path: "/models/third" model_version_policy { latest { num_versions: 2 } }
  }
}
"""

# Written exactly as TF Serving's documentation shows (wrapper messages with `value`).
BATCHING = """
max_batch_size { value: 64 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: 1 }
allowed_batch_sizes: 16
allowed_batch_sizes: 64
pad_variable_length_inputs: true
"""


def test_model_server_config_policies_and_labels() -> None:
    models = parse_model_server_config(MODELS_CONFIG)
    assert [m.name for m in models] == ["minilm", "other", "third"]
    minilm, other, third = models
    assert minilm.version_policy == VersionPolicy(kind="specific", versions=(1, 2))
    assert dict(minilm.version_labels) == {"stable": 1, "canary": 2}
    assert other.version_policy.kind == "all"
    assert third.version_policy == VersionPolicy(kind="latest", num_versions=2)


def test_version_policy_selection() -> None:
    on_disk = [1, 2, 3, 10]
    assert VersionPolicy().select(on_disk) == {10}  # TF Serving's default: latest 1
    assert VersionPolicy(kind="latest", num_versions=2).select(on_disk) == {3, 10}
    assert VersionPolicy(kind="all").select(on_disk) == {1, 2, 3, 10}
    assert VersionPolicy(kind="specific", versions=(2, 7)).select(on_disk) == {2}


@pytest.mark.parametrize(
    "text, message",
    [
        ('model_config_list { config { base_path: "/m" } }', "no name"),
        ('model_config_list { config { name: "a" } }', "no base_path"),
        (
            'model_config_list { config { name: "a" base_path: "/m" } '
            'config { name: "a" base_path: "/n" } }',
            "twice",
        ),
        (
            'model_config_list { config { name: "a" base_path: "/m" model_platform: "pytorch" } }',
            "model_platform",
        ),
        ("model_config_list { config { nme: 1 } }", "invalid ModelServerConfig"),
    ],
)
def test_model_server_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_model_server_config(text)


def test_batching_file_in_tf_serving_format(tmp_path: Path) -> None:
    path = tmp_path / "batching_parameters.txt"
    path.write_text(BATCHING)
    cfg = load_batching_file(str(path))
    assert cfg == BatchingConfig(
        max_batch_size=64,
        batch_timeout_micros=2000,
        max_enqueued_batches=100,
        num_batch_threads=1,
        allowed_batch_sizes=(16, 64),
        pad_variable_length_inputs=True,
    )


def test_batching_file_defaults_and_newer_fields(tmp_path: Path) -> None:
    path = tmp_path / "b.txt"
    # A field of a newer TF Serving release must not stop the server from starting.
    path.write_text("max_batch_size { value: 8 }\nenable_large_batch_splitting { value: true }\n")
    cfg = load_batching_file(str(path))
    assert cfg.max_batch_size == 8
    assert cfg.batch_timeout_micros == BatchingConfig().batch_timeout_micros


def test_batching_file_rejects_inconsistent_sizes(tmp_path: Path) -> None:
    path = tmp_path / "b.txt"
    path.write_text(
        "max_batch_size { value: 32 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 16\n"
    )
    with pytest.raises(ConfigError, match="must equal max_batch_size"):
        load_batching_file(str(path))


def test_monitoring_file(tmp_path: Path) -> None:
    path = tmp_path / "monitoring_config.txt"
    path.write_text('prometheus_config { enable: true, path: "/metrics/x" }')
    mon = load_monitoring_file(str(path))
    assert mon.prometheus_enabled and mon.prometheus_path == "/metrics/x"
    path.write_text("prometheus_config { enable: true }")
    assert load_monitoring_file(str(path)).prometheus_path == contract.METRICS_PATH


def test_flags_equals_and_space_forms(tmp_path: Path) -> None:
    a = parse_args(
        [
            "--port=9000",
            "--rest_api_port",
            "9001",
            "--model_name=m",
            "--model_base_path",
            "/models/m",
            "--enable_batching",
            "--file_system_poll_wait_seconds=0",
        ]
    )
    assert (a.grpc_port, a.rest_port, a.enable_batching, a.file_system_poll_wait_seconds) == (
        9000,
        9001,
        True,
        0.0,
    )
    assert a.models[0].name == "m" and a.models[0].base_path == "/models/m"
    b = parse_args(
        [
            "--model_base_path=/m",
            "--enable_batching=false",
            "--enable_grpc_healthcheck_service=true",
        ]
    )
    assert not b.enable_batching and b.enable_grpc_healthcheck_service
    assert (b.grpc_port, b.rest_port) == (contract.DEFAULT_GRPC_PORT, contract.DEFAULT_REST_PORT)
    assert b.models[0].name == contract.DEFAULT_MODEL_NAME
    assert not b.monitoring.prometheus_enabled  # TF Serving: metrics only when configured


def test_flags_read_config_files(tmp_path: Path) -> None:
    (tmp_path / "models.config").write_text(MODELS_CONFIG)
    (tmp_path / "batching.txt").write_text(BATCHING)
    (tmp_path / "monitoring.txt").write_text("prometheus_config { enable: true }")
    cfg = parse_args(
        [
            f"--model_config_file={tmp_path / 'models.config'}",
            f"--batching_parameters_file={tmp_path / 'batching.txt'}",
            f"--monitoring_config_file={tmp_path / 'monitoring.txt'}",
            "--enable_batching",
        ]
    )
    assert [m.name for m in cfg.models] == ["minilm", "other", "third"]
    assert cfg.batching.max_batch_size == 64 and cfg.monitoring.prometheus_enabled


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "model_base_path"),
        (["--model_base_path=relative/path"], "absolute"),
        (["--model_base_path=/m", "--port=8500", "--rest_api_port=8500"], "differ"),
        (["--model_base_path=/m", "--max_rows_per_request=0"], "max_rows_per_request"),
        (["--model_config_file=/nonexistent/models.config"], "cannot read"),
    ],
)
def test_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_args(argv)


def test_help_lists_every_flag() -> None:
    text = build_arg_parser().format_help()
    for flag in (
        "--port",
        "--rest_api_port",
        "--model_name",
        "--model_base_path",
        "--model_config_file",
        "--model_config_file_poll_wait_seconds",
        "--file_system_poll_wait_seconds",
        "--enable_batching",
        "--batching_parameters_file",
        "--monitoring_config_file",
        "--rest_api_timeout_in_ms",
        "--enable_grpc_healthcheck_service",
        "--max_request_bytes",
        "--max_rows_per_request",
        "--max_text_chars",
        "--max_json_depth",
        "--max_queued_requests",
        "--default_deadline_ms",
        "--drain_timeout_seconds",
    ):
        assert flag in text, flag
