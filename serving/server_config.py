"""Server configuration: tensorflow_model_server's flags and its text-proto config files.

Everything the server needs is one frozen ``ServerConfig``; ``parse_args`` builds it from a
command line, the ``load_*`` functions read TF Serving's own files (ModelServerConfig,
BatchingParameters, MonitoringConfig) so deploy/ keeps ONE set of files for both servers.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from google.protobuf import text_format
from google.protobuf.message import Message

from models import contract
from serving.errors import Code, ServingError

_LOG = logging.getLogger("textserve.config")


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
    # Batches running at once in the worker. 1 on CPU: TensorFlow already spreads one batch
    # over all cores (intra-op threads), and a single thread runs it on the worker's pipe
    # reader (measured here: batch-1 round trip 1.1 ms with 1 thread vs 3.1 ms with 2).
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
class Limits:
    """Our own limits on what one request may cost; each is a flag (see ``--help``)."""

    max_request_bytes: int = 32 * 1024 * 1024
    max_rows_per_request: int = 1024
    max_text_chars: int = 20_000
    max_json_depth: int = 32
    max_queued_requests: int = 1024
    default_deadline_ms: int = 30_000


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything ``serving.server.run_server`` needs."""

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
    rest_api_timeout_ms: int = 30_000
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
    # Costs a second worker's memory (TensorFlow + every model: ~1.2 GB for MiniLM).
    worker_standby: bool = False


# --- text-proto files ---------------------------------------------------------------------


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


def config_error_to_serving(exc: ConfigError) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, str(exc))


# --- flags --------------------------------------------------------------------------------


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "t", "yes", "y"):
        return True
    if low in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_arg_parser() -> argparse.ArgumentParser:
    """tensorflow_model_server's flags (same names and meanings) plus our limits."""
    p = argparse.ArgumentParser(
        prog="textserve-server",
        description=(
            "A drop-in for tensorflow_model_server: TF Serving's gRPC and REST APIs, config files "
            "and flags; TensorFlow runs in a supervised worker process. Flags accept --flag=value "
            "and --flag value; boolean flags also accept a bare --flag."
        ),
        allow_abbrev=False,
    )

    def flag_bool(name: str, default: bool, help_: str) -> None:
        p.add_argument(name, type=_parse_bool, nargs="?", const=True, default=default, help=help_)

    g = p.add_argument_group("tensorflow_model_server flags")
    g.add_argument(
        "--port",
        type=int,
        default=contract.DEFAULT_GRPC_PORT,
        help="gRPC port (default %(default)s).",
    )
    g.add_argument(
        "--rest_api_port",
        type=int,
        default=contract.DEFAULT_REST_PORT,
        help=(
            "HTTP/REST port; 0 disables REST (default %(default)s, the port TF Serving's Docker "
            "image uses)."
        ),
    )
    g.add_argument(
        "--rest_api_timeout_in_ms", type=int, default=30_000, help="Deadline of a REST request."
    )
    g.add_argument(
        "--model_name",
        default=contract.DEFAULT_MODEL_NAME,
        help="Model name when --model_base_path is used.",
    )
    g.add_argument(
        "--model_base_path", default="", help="Directory holding numbered version subdirectories."
    )
    g.add_argument(
        "--model_config_file",
        default="",
        help="ModelServerConfig text proto; overrides --model_name/--model_base_path.",
    )
    g.add_argument(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=0.0,
        help="Re-read --model_config_file this often (0: read once at startup).",
    )
    g.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help=(
            "Scan model base paths for new versions this often (0: only at startup). Cost: one "
            "listdir per model."
        ),
    )
    flag_bool("--enable_batching", False, "Batch concurrent requests together (dynamic batching).")
    g.add_argument(
        "--batching_parameters_file",
        default="",
        help="BatchingParameters text proto (implies nothing unless --enable_batching).",
    )
    g.add_argument(
        "--ssl_config_file",
        default="",
        help="SSLConfig text proto (server_key, server_cert, custom_ca, client_verify): TLS on "
        "the gRPC port.",
    )
    g.add_argument(
        "--monitoring_config_file",
        default="",
        help="MonitoringConfig text proto; enables Prometheus at its path.",
    )
    flag_bool("--enable_grpc_healthcheck_service", False, "Serve grpc.health.v1 on the gRPC port.")
    flag_bool(
        "--allow_version_labels_for_unavailable_models",
        False,
        "Let a new version label point at a version that is not AVAILABLE (never move one there).",
    )
    flag_bool(
        "--enable_model_warmup",
        True,
        "Replay assets.extra/tf_serving_warmup_requests before a version is AVAILABLE.",
    )
    g.add_argument(
        "--tensorflow_intra_op_parallelism",
        type=int,
        default=0,
        help="TF intra-op threads in the worker (0: TF's choice).",
    )
    g.add_argument(
        "--tensorflow_inter_op_parallelism",
        type=int,
        default=0,
        help="TF inter-op threads in the worker (0: TF's choice).",
    )
    # Accepted for command-line compatibility; the value only goes into the log.
    g.add_argument("--grpc_max_threads", type=int, default=0, help=argparse.SUPPRESS)

    d = Limits()
    lim = p.add_argument_group("textserve limits (our own; each bounds what one client can cost)")
    lim.add_argument(
        "--max_request_bytes",
        type=int,
        default=d.max_request_bytes,
        help=(
            "Largest request body/message, also after gzip decompression. Cost: the server "
            "buffers up to this per request."
        ),
    )
    lim.add_argument(
        "--max_rows_per_request",
        type=int,
        default=d.max_rows_per_request,
        help=(
            "Most rows (batch entries) in one request. Cost: one request can occupy the worker "
            "for this many rows."
        ),
    )
    lim.add_argument(
        "--max_text_chars",
        type=int,
        default=d.max_text_chars,
        help=(
            "Longest text input in characters (the model truncates to its max sequence anyway). "
            "Cost: tokenizer time."
        ),
    )
    lim.add_argument(
        "--max_json_depth",
        type=int,
        default=d.max_json_depth,
        help="Deepest JSON nesting accepted on REST.",
    )
    lim.add_argument(
        "--max_queued_requests",
        type=int,
        default=d.max_queued_requests,
        help=(
            "Requests waiting for the worker beyond this get RESOURCE_EXHAUSTED / 429. Cost: "
            "memory and latency of waiting requests."
        ),
    )
    lim.add_argument(
        "--default_deadline_ms",
        type=int,
        default=d.default_deadline_ms,
        help=(
            "Deadline of a gRPC request that sets none; past it a queued request is answered "
            "DEADLINE_EXCEEDED."
        ),
    )
    o = p.add_argument_group("textserve options")
    o.add_argument("--host", default="0.0.0.0", help="Address both fronts bind.")
    flag_bool(
        "--length_grouping",
        True,
        "Form batches of similar text length (least padded tokens plus per-batch cost).",
    )
    o.add_argument(
        "--max_batch_tokens",
        type=int,
        default=ServerConfig.max_batch_tokens,
        help=(
            "Cap a batch at this many padded tokens (rows x estimated tokens of its longest "
            "text) on top of max_batch_size; 0 = off. Bigger batches are slower per token on "
            "CPU; on a GPU raise it or set 0."
        ),
    )
    flag_bool(
        "--worker_standby",
        False,
        "Keep a second TF worker with every served version loaded: a dead worker is replaced "
        "at once (else after a TF import and model loads, ~30 s) and rollouts skip the TF "
        "import. Costs a second worker's memory (TensorFlow + every model).",
    )
    o.add_argument(
        "--drain_timeout_seconds",
        type=float,
        default=30.0,
        help="On SIGTERM/SIGINT, wait at most this long for in-flight requests before exiting.",
    )
    o.add_argument(
        "--log_level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="JSON log lines on stderr.",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> ServerConfig:
    """Command line -> ServerConfig. Raises ``ConfigError`` for unusable combinations."""
    ns = build_arg_parser().parse_args(argv)
    return config_from_namespace(ns)


def config_from_namespace(ns: argparse.Namespace) -> ServerConfig:
    if ns.model_config_file:
        models = load_model_config_file(ns.model_config_file)
    elif ns.model_base_path:
        models = (ModelConfig(ns.model_name, ns.model_base_path),)
    else:
        raise ConfigError("give --model_base_path (with --model_name) or --model_config_file")
    for m in models:
        if not os.path.isabs(m.base_path):
            raise ConfigError(f"model {m.name!r}: base_path must be absolute, got {m.base_path!r}")
    batching = BatchingConfig()
    if ns.batching_parameters_file:
        batching = load_batching_file(ns.batching_parameters_file)
    monitoring = MonitoringSettings()
    if ns.monitoring_config_file:
        monitoring = load_monitoring_file(ns.monitoring_config_file)
    ssl = load_ssl_config_file(ns.ssl_config_file) if ns.ssl_config_file else None
    if ns.port <= 0 or ns.port > 65535:
        raise ConfigError("--port must be in 1..65535")
    if ns.rest_api_port < 0 or ns.rest_api_port > 65535:
        raise ConfigError("--rest_api_port must be in 0..65535")
    if ns.rest_api_port == ns.port:
        raise ConfigError("--rest_api_port must differ from --port")
    limits = Limits(
        max_request_bytes=ns.max_request_bytes,
        max_rows_per_request=ns.max_rows_per_request,
        max_text_chars=ns.max_text_chars,
        max_json_depth=ns.max_json_depth,
        max_queued_requests=ns.max_queued_requests,
        default_deadline_ms=ns.default_deadline_ms,
    )
    for field in dataclasses.fields(limits):
        if getattr(limits, field.name) < 1:
            raise ConfigError(f"--{field.name} must be >= 1")
    return ServerConfig(
        models=models,
        grpc_port=ns.port,
        rest_port=ns.rest_api_port,
        host=ns.host,
        model_config_file=ns.model_config_file,
        model_config_file_poll_wait_seconds=ns.model_config_file_poll_wait_seconds,
        file_system_poll_wait_seconds=ns.file_system_poll_wait_seconds,
        enable_batching=ns.enable_batching,
        batching=batching,
        monitoring=monitoring,
        ssl=ssl,
        rest_api_timeout_ms=ns.rest_api_timeout_in_ms,
        enable_grpc_healthcheck_service=ns.enable_grpc_healthcheck_service,
        allow_version_labels_for_unavailable_models=ns.allow_version_labels_for_unavailable_models,
        enable_model_warmup=ns.enable_model_warmup,
        intra_op_parallelism=ns.tensorflow_intra_op_parallelism,
        inter_op_parallelism=ns.tensorflow_inter_op_parallelism,
        limits=limits,
        length_grouping=ns.length_grouping,
        max_batch_tokens=ns.max_batch_tokens,
        drain_timeout_seconds=ns.drain_timeout_seconds,
        log_level=ns.log_level,
        worker_standby=ns.worker_standby,
    )
