"""The flag table of ``textserve-server``: every default comes from the config types, and every
flag reaches the ServerConfig field it names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from models import contract
from serving.server_config import ModelConfig, ServerConfig
from serving.server_flags import build_arg_parser, parse_args

_BASE = ["--model_base_path=/models/m"]


def _flag_defaults() -> dict[str, object]:
    return {action.dest: action.default for action in build_arg_parser()._actions}


def test_defaults_are_the_config_types_defaults() -> None:
    expected = ServerConfig(models=(ModelConfig(contract.DEFAULT_MODEL_NAME, "/models/m"),))
    assert parse_args(_BASE) == expected


def test_every_flag_reaches_its_config_field(tmp_path: Path) -> None:
    """Each flag set to a value other than its default changes the config, and only where
    the flag says (TF Serving's spellings: --port -> grpc_port, --rest_api_port -> rest_port)."""
    keys = tmp_path / "keys"
    keys.write_text("secret-key-of-enough-length\n")
    changed = {
        "port": ("9100", "grpc_port", 9100),
        "rest_api_port": ("9101", "rest_port", 9101),
        "rest_api_timeout_in_ms": ("1234", "rest_api_timeout_ms", 1234),
        "tensorflow_intra_op_parallelism": ("3", "intra_op_parallelism", 3),
        "tensorflow_inter_op_parallelism": ("4", "inter_op_parallelism", 4),
        "host": ("127.0.0.1", "host", "127.0.0.1"),
        "file_system_poll_wait_seconds": ("2.5", "file_system_poll_wait_seconds", 2.5),
        "enable_batching": ("true", "enable_batching", True),
        "enable_model_warmup": ("false", "enable_model_warmup", False),
        "length_grouping": ("false", "length_grouping", False),
        "worker_standby": ("true", "worker_standby", True),
        "max_batch_tokens": ("77", "max_batch_tokens", 77),
        "drain_timeout_seconds": ("3.5", "drain_timeout_seconds", 3.5),
        "log_level": ("debug", "log_level", "debug"),
        "api_keys_file": (str(keys), "api_keys_file", str(keys)),
        "api_keys_cover_health_and_metrics": ("true", "api_keys_cover_health_and_metrics", True),
        "rest_api_enable_cors_support": ("true", "rest_api_enable_cors_support", True),
        "enable_grpc_healthcheck_service": ("true", "enable_grpc_healthcheck_service", True),
        "allow_version_labels_for_unavailable_models": (
            "true",
            "allow_version_labels_for_unavailable_models",
            True,
        ),
        "model_config_file_poll_wait_seconds": ("0", "model_config_file_poll_wait_seconds", 0.0),
    }
    defaults = parse_args(_BASE)
    for flag, (text, field, value) in changed.items():
        config = parse_args([*_BASE, f"--{flag}={text}"])
        assert getattr(config, field) == value, flag
        others = {f.name for f in dataclasses.fields(ServerConfig)} - {field}
        assert all(getattr(config, name) == getattr(defaults, name) for name in others), flag


def test_limit_and_connection_flags_reach_their_dataclasses() -> None:
    config = parse_args([*_BASE, "--max_text_chars=5", "--grpc_max_connections=6"])
    assert config.limits.max_text_chars == 5 and config.connections.grpc_max_connections == 6
    defaults = _flag_defaults()
    for field in dataclasses.fields(config.limits):
        assert defaults[field.name] == getattr(ServerConfig().limits, field.name)
    for field in dataclasses.fields(config.connections):
        assert defaults[field.name] == getattr(ServerConfig().connections, field.name)
