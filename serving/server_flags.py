"""tensorflow_model_server's command line (same flag names and meanings) plus our own flags.

``parse_args`` turns a command line into a ``ServerConfig``; every default comes from the
config types (``ServerConfig``, ``Limits``), so a default is written in one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence

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
    c = ServerConfig()

    def flag_bool(name: str, default: bool, help_: str) -> None:
        p.add_argument(name, type=_parse_bool, nargs="?", const=True, default=default, help=help_)

    g = p.add_argument_group("tensorflow_model_server flags")
    g.add_argument(
        "--port",
        type=int,
        default=c.grpc_port,
        help="gRPC port (default %(default)s).",
    )
    g.add_argument(
        "--rest_api_port",
        type=int,
        default=c.rest_port,
        help=(
            "HTTP/REST port; 0 disables REST (default %(default)s, the port TF Serving's Docker "
            "image uses)."
        ),
    )
    g.add_argument(
        "--rest_api_timeout_in_ms",
        type=int,
        default=c.rest_api_timeout_ms,
        help="Deadline of a REST request.",
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
        default=c.model_config_file_poll_wait_seconds,
        help="Re-read --model_config_file this often (0: read once at startup).",
    )
    g.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=c.file_system_poll_wait_seconds,
        help=(
            "Scan model base paths for new versions this often (0: only at startup). Cost: one "
            "listdir per model."
        ),
    )
    flag_bool(
        "--enable_batching",
        c.enable_batching,
        "Batch concurrent requests together (dynamic batching).",
    )
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
    flag_bool(
        "--enable_grpc_healthcheck_service",
        c.enable_grpc_healthcheck_service,
        "Serve grpc.health.v1 on the gRPC port.",
    )
    flag_bool(
        "--allow_version_labels_for_unavailable_models",
        c.allow_version_labels_for_unavailable_models,
        "Let a new version label point at a version that is not AVAILABLE (never move one there).",
    )
    flag_bool(
        "--enable_model_warmup",
        c.enable_model_warmup,
        "Replay assets.extra/tf_serving_warmup_requests before a version is AVAILABLE.",
    )
    g.add_argument(
        "--tensorflow_intra_op_parallelism",
        type=int,
        default=c.intra_op_parallelism,
        help="TF intra-op threads in the worker (0: TF's choice).",
    )
    g.add_argument(
        "--tensorflow_inter_op_parallelism",
        type=int,
        default=c.inter_op_parallelism,
        help="TF inter-op threads in the worker (0: TF's choice).",
    )
    # Accepted so tensorflow_model_server command lines start unchanged; grpc.aio serves RPCs
    # on the event loop, so there is no thread pool for it to size and it is ignored.
    g.add_argument("--grpc_max_threads", type=int, default=0, help=argparse.SUPPRESS)

    d = c.limits
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
    o.add_argument("--host", default=c.host, help="Address both fronts bind.")
    flag_bool(
        "--length_grouping",
        c.length_grouping,
        "Form batches of similar text length (least padded tokens plus per-batch cost).",
    )
    o.add_argument(
        "--max_batch_tokens",
        type=int,
        default=c.max_batch_tokens,
        help=(
            "Cap a batch at this many padded tokens (rows x estimated tokens of its longest "
            "text) on top of max_batch_size; 0 = off. Bigger batches are slower per token on "
            "CPU; on a GPU raise it or set 0."
        ),
    )
    flag_bool(
        "--worker_standby",
        c.worker_standby,
        "Keep a second TF worker with every served version loaded: a dead worker is replaced "
        "at once (else after a TF import and model loads, ~30 s) and rollouts skip the TF "
        "import. Costs a second worker's memory (TensorFlow + every model).",
    )
    flag_bool(
        "--rest_api_enable_cors_support",
        c.rest_api_enable_cors_support,
        "TF Serving's flag: answer CORS preflight (OPTIONS) requests and add "
        "Access-Control-Allow-Origin: * to every REST response, so browser pages on other "
        "origins may call the API. Off by default: any web page could then call the server.",
    )
    sec = p.add_argument_group("authentication and connection limits (0 = off)")
    sec.add_argument(
        "--api_keys_file",
        default=c.api_keys_file,
        help=(
            "File of API keys, one per line (# comments); read again when it changes. With it, "
            "REST needs 'Authorization: Bearer <key>' and gRPC the metadata 'authorization: "
            "Bearer <key>' (401 / UNAUTHENTICATED otherwise). Costs a SHA-256 per request."
        ),
    )
    flag_bool(
        "--api_keys_cover_health_and_metrics",
        c.api_keys_cover_health_and_metrics,
        "Require a key for gRPC health checks, REST model status and Prometheus metrics too "
        "(off: probes and scrapers need no secret).",
    )
    cl = ConnectionLimits()
    for name, help_ in (
        (
            "rest_api_header_timeout_in_ms",
            "Close a REST connection whose request headers have not all arrived this long "
            "after it opened (slowloris).",
        ),
        (
            "rest_api_body_timeout_in_ms",
            "Answer 408 and close when a request body has not all arrived in this long.",
        ),
        (
            "rest_api_idle_timeout_in_ms",
            "Close a kept-alive REST connection with no request for this long.",
        ),
        (
            "rest_api_max_connections",
            "Close REST connections beyond this many as they open (each holds a socket and "
            "buffers).",
        ),
        (
            "grpc_handshake_timeout_in_ms",
            "Close a gRPC connection that has not finished its HTTP/2 (and TLS) handshake in "
            "this long.",
        ),
        (
            "grpc_max_connection_idle_in_ms",
            "Send GOAWAY to a gRPC connection with no RPC for this long (clients reconnect "
            "when they need to).",
        ),
        (
            "grpc_max_connections",
            "Refuse gRPC connections beyond this many (grpc.max_allowed_incoming_connections).",
        ),
    ):
        sec.add_argument(
            f"--{name}",
            type=int,
            default=getattr(cl, name),
            help=f"{help_} Default %(default)s.",
        )
    sec.add_argument(
        "--grpc_channel_arguments",
        default=cl.grpc_channel_arguments,
        help=(
            "TF Serving's flag: gRPC server arguments as name=value pairs, comma separated "
            "(e.g. grpc.max_connection_age_ms=600000); they override the limits above."
        ),
    )
    o.add_argument(
        "--drain_timeout_seconds",
        type=float,
        default=c.drain_timeout_seconds,
        help="On SIGTERM/SIGINT, wait at most this long for in-flight requests before exiting.",
    )
    o.add_argument(
        "--log_level",
        default=c.log_level,
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
        connections=connections,
        api_keys_file=ns.api_keys_file,
        api_keys_cover_health_and_metrics=ns.api_keys_cover_health_and_metrics,
        rest_api_enable_cors_support=ns.rest_api_enable_cors_support,
    )
