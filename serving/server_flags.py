"""tensorflow_model_server's command line (same flag names and meanings) plus our own flags.

``parse_args`` turns a command line into a ``ServerConfig``; every default comes from the
config types (``ServerConfig``, ``Limits``), so a default is written in one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence

from models import contract
from serving.api_keys import ApiKeys, ApiKeysError
from serving.config_files import (
    load_batching_file,
    load_model_config_file,
    load_monitoring_file,
    load_ssl_config_file,
)
from serving.connection_limits import ConnectionLimits
from serving.limits import Limits
from serving.server_config import (
    BatchingConfig,
    ConfigError,
    ModelConfig,
    MonitoringSettings,
    ServerConfig,
)


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "t", "yes", "y"):
        return True
    if low in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclasses.dataclass(frozen=True)
class _Flag:
    """One flag: argparse's ``type`` (bool: ``true``/``false`` or a bare ``--flag``), and
    the ``ServerConfig`` field it sets when that is not its own name (TF Serving's spelling)."""

    name: str
    default: object
    help: str
    type: Callable[[str], object] = str
    choices: Sequence[str] | None = None
    field: str = ""


def _flag_groups(c: ServerConfig) -> dict[str, tuple[_Flag, ...]]:
    """Every flag by help section; each default from the config types (``c``)."""
    d, cl = c.limits, c.connections
    return {
        "tensorflow_model_server flags": (
            _Flag("port", c.grpc_port, "gRPC port (default %(default)s).", int, field="grpc_port"),
            _Flag(
                "rest_api_port",
                c.rest_port,
                "HTTP/REST port; 0 disables REST (default %(default)s, the port TF Serving's "
                "Docker image uses).",
                int,
                field="rest_port",
            ),
            _Flag(
                "rest_api_timeout_in_ms",
                c.rest_api_timeout_ms,
                "Deadline of a REST request.",
                int,
                field="rest_api_timeout_ms",
            ),
            _Flag(
                "model_name",
                contract.DEFAULT_MODEL_NAME,
                "Model name when --model_base_path is used.",
            ),
            _Flag("model_base_path", "", "Directory holding numbered version subdirectories."),
            _Flag(
                "model_config_file",
                "",
                "ModelServerConfig text proto; overrides --model_name/--model_base_path.",
            ),
            _Flag(
                "model_config_file_poll_wait_seconds",
                c.model_config_file_poll_wait_seconds,
                "Re-read --model_config_file this often (0: read once at startup).",
                float,
            ),
            _Flag(
                "file_system_poll_wait_seconds",
                c.file_system_poll_wait_seconds,
                "Scan model base paths for new versions this often (0: only at startup). Cost: "
                "one listdir per model.",
                float,
            ),
            _Flag(
                "enable_batching",
                c.enable_batching,
                "Batch concurrent requests together (dynamic batching).",
                bool,
            ),
            _Flag(
                "batching_parameters_file",
                "",
                "BatchingParameters text proto (implies nothing unless --enable_batching).",
            ),
            _Flag(
                "ssl_config_file",
                "",
                "SSLConfig text proto (server_key, server_cert, custom_ca, client_verify): TLS "
                "on the gRPC port.",
            ),
            _Flag(
                "monitoring_config_file",
                "",
                "MonitoringConfig text proto; enables Prometheus at its path.",
            ),
            _Flag(
                "enable_grpc_healthcheck_service",
                c.enable_grpc_healthcheck_service,
                "Serve grpc.health.v1 on the gRPC port.",
                bool,
            ),
            _Flag(
                "allow_version_labels_for_unavailable_models",
                c.allow_version_labels_for_unavailable_models,
                "Let a new version label point at a version that is not AVAILABLE (never move "
                "one there).",
                bool,
            ),
            _Flag(
                "enable_model_warmup",
                c.enable_model_warmup,
                "Replay assets.extra/tf_serving_warmup_requests before a version is AVAILABLE.",
                bool,
            ),
            _Flag(
                "tensorflow_intra_op_parallelism",
                c.intra_op_parallelism,
                "TF intra-op threads in the worker; each batch is split into cores / N parts run "
                "in parallel (0: 1 thread and one part per core, measured fastest on CPU).",
                int,
                field="intra_op_parallelism",
            ),
            _Flag(
                "tensorflow_inter_op_parallelism",
                c.inter_op_parallelism,
                "TF inter-op threads in the worker (0: TF's choice).",
                int,
                field="inter_op_parallelism",
            ),
            # Accepted so tensorflow_model_server command lines start unchanged; grpc.aio
            # serves RPCs on the event loop, so there is no thread pool for it to size.
            _Flag("grpc_max_threads", 0, argparse.SUPPRESS, int),
        ),
        "textserve limits (our own; each bounds what one client can cost)": (
            _Flag(
                "max_request_bytes",
                d.max_request_bytes,
                "Largest request body/message, also after gzip decompression. Cost: the "
                "server buffers up to this per request.",
                int,
            ),
            _Flag(
                "max_rows_per_request",
                d.max_rows_per_request,
                "Most rows (batch entries) in one request. Cost: one request can occupy the "
                "worker for this many rows.",
                int,
            ),
            _Flag(
                "max_text_chars",
                d.max_text_chars,
                "Longest text input in characters (the model truncates to its max sequence "
                "anyway). Cost: tokenizer time.",
                int,
            ),
            _Flag(
                "max_json_depth", d.max_json_depth, "Deepest JSON nesting accepted on REST.", int
            ),
            _Flag(
                "max_queued_requests",
                d.max_queued_requests,
                "Requests waiting for the worker beyond this get RESOURCE_EXHAUSTED / 429. "
                "Cost: memory and latency of waiting requests.",
                int,
            ),
            _Flag(
                "default_deadline_ms",
                d.default_deadline_ms,
                "Deadline of a gRPC request that sets none; past it a queued request is "
                "answered DEADLINE_EXCEEDED.",
                int,
            ),
        ),
        "textserve options": (
            _Flag("host", c.host, "Address both fronts bind."),
            _Flag(
                "length_grouping",
                c.length_grouping,
                "Form batches of similar text length (least padded tokens plus per-batch cost).",
                bool,
            ),
            _Flag(
                "max_batch_tokens",
                c.max_batch_tokens,
                "Cap a batch at this many padded tokens (rows x estimated tokens of its "
                "longest text) on top of max_batch_size; 0 = off. Bigger batches are slower "
                "per token on CPU; on a GPU raise it or set 0.",
                int,
            ),
            _Flag(
                "worker_standby",
                c.worker_standby,
                "Keep a second TF worker with every served version loaded: a dead worker is "
                "replaced at once (else after a TF import and model loads, ~30 s) and rollouts "
                "skip the TF import. Costs a second worker's memory (TensorFlow + every "
                "model).",
                bool,
            ),
            _Flag(
                "rest_api_enable_cors_support",
                c.rest_api_enable_cors_support,
                "TF Serving's flag: answer CORS preflight (OPTIONS) requests and add "
                "Access-Control-Allow-Origin: * to every REST response, so browser pages on "
                "other origins may call the API. Off by default: any web page could then call "
                "the server.",
                bool,
            ),
            _Flag(
                "drain_timeout_seconds",
                c.drain_timeout_seconds,
                "On SIGTERM/SIGINT, wait at most this long for in-flight requests before exiting.",
                float,
            ),
            _Flag(
                "log_level",
                c.log_level,
                "JSON log lines on stderr.",
                choices=("debug", "info", "warning", "error"),
            ),
        ),
        "authentication and connection limits (0 = off)": (
            _Flag(
                "api_keys_file",
                c.api_keys_file,
                "File of API keys, one per line (# comments); read again when it changes. "
                "With it, REST needs 'Authorization: Bearer <key>' and gRPC the metadata "
                "'authorization: Bearer <key>' (401 / UNAUTHENTICATED otherwise). Costs a "
                "SHA-256 per request.",
            ),
            _Flag(
                "api_keys_cover_health_and_metrics",
                c.api_keys_cover_health_and_metrics,
                "Require a key for gRPC health checks, REST model status and Prometheus "
                "metrics too (off: probes and scrapers need no secret).",
                bool,
            ),
            _Flag(
                "rest_api_header_timeout_in_ms",
                cl.rest_api_header_timeout_in_ms,
                "Close a REST connection whose request headers have not all arrived this long "
                "after it opened (slowloris). Default %(default)s.",
                int,
            ),
            _Flag(
                "rest_api_body_timeout_in_ms",
                cl.rest_api_body_timeout_in_ms,
                "Answer 408 and close when a request body has not all arrived in this long. "
                "Default %(default)s.",
                int,
            ),
            _Flag(
                "rest_api_idle_timeout_in_ms",
                cl.rest_api_idle_timeout_in_ms,
                "Close a kept-alive REST connection with no request for this long. Default "
                "%(default)s.",
                int,
            ),
            _Flag(
                "rest_api_max_connections",
                cl.rest_api_max_connections,
                "Close REST connections beyond this many as they open (each holds a socket "
                "and buffers). Default %(default)s.",
                int,
            ),
            _Flag(
                "grpc_handshake_timeout_in_ms",
                cl.grpc_handshake_timeout_in_ms,
                "Close a gRPC connection that has not finished its HTTP/2 (and TLS) handshake "
                "in this long. Default %(default)s.",
                int,
            ),
            _Flag(
                "grpc_max_connection_idle_in_ms",
                cl.grpc_max_connection_idle_in_ms,
                "Send GOAWAY to a gRPC connection with no RPC for this long (clients reconnect "
                "when they need to). Default %(default)s.",
                int,
            ),
            _Flag(
                "grpc_max_connections",
                cl.grpc_max_connections,
                "Refuse gRPC connections beyond this many "
                "(grpc.max_allowed_incoming_connections). Default %(default)s.",
                int,
            ),
            _Flag(
                "grpc_channel_arguments",
                cl.grpc_channel_arguments,
                "TF Serving's flag: gRPC server arguments as name=value pairs, comma separated "
                "(e.g. grpc.max_connection_age_ms=600000); they override the limits above.",
            ),
        ),
    }


def build_arg_parser() -> argparse.ArgumentParser:
    """tensorflow_model_server's flags (same names and meanings) plus our limits."""
    parser = argparse.ArgumentParser(
        prog="textserve-server",
        description=(
            "A drop-in for tensorflow_model_server: TF Serving's gRPC and REST APIs, config files "
            "and flags; TensorFlow runs in a supervised worker process. Flags accept --flag=value "
            "and --flag value; boolean flags also accept a bare --flag."
        ),
        allow_abbrev=False,
    )
    for title, flags in _flag_groups(ServerConfig()).items():
        group = parser.add_argument_group(title)
        for flag in flags:
            if flag.type is bool:
                # TF Serving's boolean flags take --flag=true|false; a bare --flag means true.
                group.add_argument(
                    f"--{flag.name}",
                    type=_parse_bool,
                    nargs="?",
                    const=True,
                    default=flag.default,
                    help=flag.help,
                )
            else:
                group.add_argument(
                    f"--{flag.name}",
                    type=flag.type,
                    default=flag.default,
                    choices=flag.choices,
                    help=flag.help,
                )
    return parser


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
    limits = Limits(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(Limits)})
    for field in dataclasses.fields(limits):
        if getattr(limits, field.name) < 1:
            raise ConfigError(f"--{field.name} must be >= 1")
    connections = ConnectionLimits(
        **{f.name: getattr(ns, f.name) for f in dataclasses.fields(ConnectionLimits)}
    )
    try:
        connections.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if ns.api_keys_file:
        try:
            ApiKeys.from_file(ns.api_keys_file)
        except ApiKeysError as exc:
            raise ConfigError(str(exc)) from exc
    flags = (flag for group in _flag_groups(ServerConfig()).values() for flag in group)
    config_fields = {f.name for f in dataclasses.fields(ServerConfig)}
    # Every flag that sets a ServerConfig field as it is; the rest were read above.
    direct = {
        flag.field or flag.name: getattr(ns, flag.name)
        for flag in flags
        if (flag.field or flag.name) in config_fields
    }
    return ServerConfig(
        models=models,
        batching=batching,
        monitoring=monitoring,
        ssl=ssl,
        limits=limits,
        connections=connections,
        **direct,
    )
