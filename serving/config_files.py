"""TF Serving's own text-proto config files, read into ``serving.server_config`` types.

ModelServerConfig, BatchingParameters, MonitoringConfig and SSLConfig, parsed with protobuf's
text format exactly as tensorflow_model_server reads them, so deploy/ keeps ONE set of files
for both servers. Every unusable file is a ``ConfigError`` naming the file or flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from google.protobuf import text_format
from google.protobuf.message import Message

from models import contract
from serving.server_config import (
    BatchingConfig,
    ConfigError,
    ModelConfig,
    MonitoringSettings,
    SslSettings,
    VersionPolicy,
)


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path!r}: {exc}") from exc


def parse_model_server_config(
    text_or_bytes: str | bytes, *, binary: bool = False
) -> tuple[ModelConfig, ...]:
    """A ModelServerConfig (text format, or serialized when ``binary``) -> our ModelConfigs."""
    from tensorflow_serving.config import model_server_config_pb2

    msg = model_server_config_pb2.ModelServerConfig()
    try:
        if binary:
            msg.ParseFromString(
                text_or_bytes if isinstance(text_or_bytes, bytes) else text_or_bytes.encode()
            )
        else:
            text_format.Parse(text_or_bytes, msg)
    except Exception as exc:  # protobuf raises several unrelated types for bad input
        raise ConfigError(f"invalid ModelServerConfig: {exc}") from exc
    if msg.WhichOneof("config") == "custom_model_config":
        raise ConfigError("custom_model_config is not supported; use model_config_list")
    out: list[ModelConfig] = []
    seen: set[str] = set()
    for cfg in msg.model_config_list.config:
        if not cfg.name:
            raise ConfigError("a model config has no name")
        if cfg.name in seen:
            raise ConfigError(f"model {cfg.name!r} is configured twice")
        seen.add(cfg.name)
        if not cfg.base_path:
            raise ConfigError(f"model {cfg.name!r} has no base_path")
        if cfg.model_platform not in ("", "tensorflow"):
            raise ConfigError(
                f"model {cfg.name!r}: model_platform {cfg.model_platform!r} is not supported"
            )
        which = cfg.model_version_policy.WhichOneof("policy_choice")
        if which == "all":
            policy = VersionPolicy(kind="all")
        elif which == "specific":
            versions = tuple(sorted(int(v) for v in cfg.model_version_policy.specific.versions))
            if not versions:
                raise ConfigError(f"model {cfg.name!r}: specific version policy lists no versions")
            policy = VersionPolicy(kind="specific", versions=versions)
        elif which == "latest":
            n = int(cfg.model_version_policy.latest.num_versions) or 1
            policy = VersionPolicy(kind="latest", num_versions=n)
        else:
            policy = VersionPolicy()
        labels = {str(k): int(v) for k, v in cfg.version_labels.items()}
        out.append(ModelConfig(cfg.name, cfg.base_path, policy, labels))
    return tuple(out)


def load_model_config_file(path: str) -> tuple[ModelConfig, ...]:
    return parse_model_server_config(_read_text(path, "--model_config_file"))


_Proto = TypeVar("_Proto", bound=Message)


def _parse_text_proto(
    msg: _Proto, path: str, flag: str, *, allow_unknown_field: bool = False
) -> _Proto:
    """``msg`` filled from the text proto at ``path`` (named by ``flag``), or ConfigError."""
    try:
        text_format.Parse(_read_text(path, flag), msg, allow_unknown_field=allow_unknown_field)
    except text_format.ParseError as exc:
        raise ConfigError(f"invalid {msg.DESCRIPTOR.name} in {path!r}: {exc}") from exc
    return msg


def load_batching_file(path: str) -> BatchingConfig:
    """TF Serving's --batching_parameters_file (text BatchingParameters); unset fields keep
    defaults.
    """
    from serving.protos import textserve_batching_pb2

    # Newer TF Serving releases add fields (large-batch splitting, priorities) that change
    # nothing for us; accept their files rather than refuse to start.
    msg = _parse_text_proto(
        textserve_batching_pb2.BatchingParameters(),
        path,
        "--batching_parameters_file",
        allow_unknown_field=True,
    )
    d = BatchingConfig()
    cfg = BatchingConfig(
        max_batch_size=msg.max_batch_size.value
        if msg.HasField("max_batch_size")
        else d.max_batch_size,
        batch_timeout_micros=(
            msg.batch_timeout_micros.value
            if msg.HasField("batch_timeout_micros")
            else d.batch_timeout_micros
        ),
        max_enqueued_batches=(
            msg.max_enqueued_batches.value
            if msg.HasField("max_enqueued_batches")
            else d.max_enqueued_batches
        ),
        num_batch_threads=(
            msg.num_batch_threads.value
            if msg.HasField("num_batch_threads")
            else d.num_batch_threads
        ),
        allowed_batch_sizes=tuple(int(x) for x in msg.allowed_batch_sizes),
        pad_variable_length_inputs=bool(msg.pad_variable_length_inputs),
    )
    _check_batching(cfg)
    return cfg


def _check_batching(cfg: BatchingConfig) -> None:
    if cfg.max_batch_size < 1:
        raise ConfigError("max_batch_size must be >= 1")
    if cfg.num_batch_threads < 1:
        raise ConfigError("num_batch_threads must be >= 1")
    if cfg.max_enqueued_batches < 1:
        raise ConfigError("max_enqueued_batches must be >= 1")
    if cfg.batch_timeout_micros < 0:
        raise ConfigError("batch_timeout_micros must be >= 0")
    sizes = cfg.allowed_batch_sizes
    if sizes:
        if list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
            raise ConfigError("allowed_batch_sizes must be positive and strictly increasing")
        if sizes[-1] != cfg.max_batch_size:
            raise ConfigError("the last allowed_batch_sizes entry must equal max_batch_size")


def load_monitoring_file(path: str) -> MonitoringSettings:
    from serving.protos import textserve_monitoring_pb2

    msg = _parse_text_proto(
        textserve_monitoring_pb2.MonitoringConfig(), path, "--monitoring_config_file"
    )
    prom = msg.prometheus_config
    path_ = prom.path or contract.METRICS_PATH
    if not path_.startswith("/"):
        raise ConfigError(f"prometheus_config.path must start with '/': {path_!r}")
    return MonitoringSettings(prometheus_enabled=bool(prom.enable), prometheus_path=path_)


def load_ssl_config_file(path: str) -> SslSettings:
    from serving.protos import textserve_ssl_pb2

    msg = _parse_text_proto(textserve_ssl_pb2.SSLConfig(), path, "--ssl_config_file")
    for field in ("server_key", "server_cert"):
        if "-----BEGIN" not in getattr(msg, field):
            raise ConfigError(f"SSLConfig in {path!r}: {field} must hold PEM text (not a path)")
    if msg.client_verify and "-----BEGIN" not in msg.custom_ca:
        raise ConfigError(
            f"SSLConfig in {path!r}: client_verify needs custom_ca (the PEM roots that client "
            "certificates must chain to)"
        )
    return SslSettings(msg.server_key, msg.server_cert, msg.custom_ca, msg.client_verify)
