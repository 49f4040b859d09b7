"""Server configuration types: everything the server needs is one frozen ``ServerConfig``.

``serving.server_flags`` builds it from tensorflow_model_server's command line and
``serving.config_files`` reads TF Serving's own text-proto files into these types; the
defaults here are the flags' defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from models import contract
from serving.connection_limits import ConnectionLimits
from serving.limits import Limits


class ConfigError(ValueError):
    """A flag or config file that cannot be used; the CLI prints it and exits 2."""


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """model_version_policy: ``latest`` N (TF Serving's default: latest 1), ``all`` or
    ``specific``.
    """

    kind: str = "latest"  # latest | all | specific
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, on_disk: Sequence[int]) -> set[int]:
        """The versions this policy wants served, given the version numbers found on disk."""
        if self.kind == "all":
            return set(on_disk)
        if self.kind == "specific":
            return set(self.versions) & set(on_disk)
        return set(sorted(on_disk)[-max(1, self.num_versions) :])


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One entry of ModelServerConfig.model_config_list."""

    name: str
    base_path: str
    version_policy: VersionPolicy = VersionPolicy()
    version_labels: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's BatchingParameters, with its defaults (shared_batch_scheduler.h)."""

    max_batch_size: int = 1000  # rows per executed batch; bigger requests are split
    batch_timeout_micros: int = 0  # how long a partial batch may wait for more rows
    max_enqueued_batches: int = 10  # queue bound = max_enqueued_batches x max_batch_size rows
    # Batches running at once in the worker. 1 on CPU: the worker already spreads one batch
    # over all cores (one single-threaded sub-batch per core, serving/sub_batches.py), and a
    # single slot runs it on the worker's pipe reader (measured here: batch-1 round trip
    # 1.1 ms with 1 thread vs 3.1 ms with 2).
    num_batch_threads: int = 1
    allowed_batch_sizes: tuple[int, ...] = ()  # pad each batch up to one of these row counts
    pad_variable_length_inputs: bool = False


@dataclasses.dataclass(frozen=True)
class MonitoringSettings:
    """MonitoringConfig.prometheus_config: off unless a monitoring config enables it (as TF
    Serving).
    """

    prometheus_enabled: bool = False
    prometheus_path: str = contract.METRICS_PATH


@dataclasses.dataclass(frozen=True)
class SslSettings:
    """SSLConfig (``--ssl_config_file``): TLS on the gRPC port, as TF Serving (REST stays plain,
    as TF Serving's). PEM text, not paths."""

    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything ``serving.server.serve`` needs."""

    models: tuple[ModelConfig, ...] = ()
    grpc_port: int = contract.DEFAULT_GRPC_PORT
    rest_port: int = contract.DEFAULT_REST_PORT
    host: str = "0.0.0.0"
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: float = 0.0
    file_system_poll_wait_seconds: float = 1.0
    enable_batching: bool = False
    batching: BatchingConfig = BatchingConfig()
    monitoring: MonitoringSettings = MonitoringSettings()
    ssl: SslSettings | None = None  # None: plaintext gRPC
    rest_api_timeout_ms: int = contract.DEFAULT_REST_API_TIMEOUT_MS
    enable_grpc_healthcheck_service: bool = False
    allow_version_labels_for_unavailable_models: bool = False
    enable_model_warmup: bool = True
    intra_op_parallelism: int = 0
    inter_op_parallelism: int = 0
    limits: Limits = Limits()
    length_grouping: bool = True
    # Padded tokens per executed batch (rows x estimated tokens of the longest text); 0 = only
    # max_batch_size. On CPU a batch past a few thousand tokens is slower per token (measured:
    # 128 concurrent callers, TF Serving's default max_batch_size 1000: 47 texts/s vs 134 at 8).
    max_batch_tokens: int = 4096
    drain_timeout_seconds: float = 30.0
    log_level: str = "info"
    # A second TF worker holding every served version, promoted when the active one dies.
    # Costs a second worker's memory (TensorFlow + every model).
    worker_standby: bool = False
    connections: ConnectionLimits = ConnectionLimits()
    # One key per line; "" = no authentication (TF Serving has none).
    api_keys_file: str = ""
    # Health checks and metrics need a key too (off: probes and scrapers need no secret).
    api_keys_cover_health_and_metrics: bool = False
    rest_api_enable_cors_support: bool = False
