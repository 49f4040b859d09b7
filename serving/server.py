"""The server process: the core (with its TF worker) and both fronts in one asyncio loop.

This process never imports TensorFlow (the fronts use the project's own wire-compatible
protos); only the worker process does.

SIGTERM / SIGINT drain: health goes NOT_SERVING and new requests are refused with
UNAVAILABLE at once, in-flight requests finish (at most ``--drain_timeout_seconds``), then
the fronts close, the worker stops and the process exits 0.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket

from serving.api_keys import ApiKeys
from serving.grpc_front import GrpcFront
from serving.json_log import configure_logging
from serving.native_log import NativeStderr
from serving.rest_front import RestFront
from serving.server_config import ServerConfig
from serving.serving_core import ServingCore

_LOG = logging.getLogger("textserve.server")


def _rest_front(core: ServingCore, config: ServerConfig, keys: ApiKeys | None) -> RestFront:
    mon = config.monitoring
    return RestFront(
        core,
        port=config.rest_port,
        host=config.host,
        limits=config.limits,
        timeout_ms=config.rest_api_timeout_ms,
        metrics_path=mon.prometheus_path if mon.prometheus_enabled else None,
        connections=config.connections,
        api_keys=keys,
        keys_cover_health_and_metrics=config.api_keys_cover_health_and_metrics,
        cors=config.rest_api_enable_cors_support,
    )


class PortInUseError(OSError):
    """A port flag names a port another process listens on (the CLI prints it, exits 1)."""

    def __init__(self, flag: str, host: str, port: int) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"{flag}={port}: address already in use ({host}:{port}); another server listens "
            "there: stop it or choose another port",
        )
        self.flag, self.host, self.port = flag, host, port


def check_ports_free(config: ServerConfig) -> None:
    """Raise ``PortInUseError`` before anything starts, rather than a traceback half-way."""
    for flag, port in (("--port", config.grpc_port), ("--rest_api_port", config.rest_port)):
        if not port:
            continue
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As the fronts bind: a port in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((config.host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUseError(flag, config.host, port) from exc
                raise


async def serve(config: ServerConfig, *, stop: asyncio.Event | None = None) -> int:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives; returns the process exit code.

    Raises ``PortInUseError`` before starting anything when a port is taken.
    """
    check_ports_free(config)
    native = NativeStderr(debug=config.log_level == "debug")
    native.start()
    try:
        return await _serve(config, stop=stop)
    finally:
        native.stop()


async def _serve(config: ServerConfig, *, stop: asyncio.Event | None) -> int:
    configure_logging(config.log_level)
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # One key set for both fronts: a change of the file reaches both at once.
    keys = ApiKeys.from_file(config.api_keys_file) if config.api_keys_file else None
    core = ServingCore(config)
    await core.start()
    exit_code = 0
    fronts: list[GrpcFront | RestFront] = []
    try:
        grpc_front = GrpcFront(
            core,
            port=config.grpc_port,
            host=config.host,
            limits=config.limits,
            enable_health=config.enable_grpc_healthcheck_service,
            ssl=config.ssl,
            connections=config.connections,
            api_keys=keys,
            keys_cover_health=config.api_keys_cover_health_and_metrics,
        )
        grpc_port = await grpc_front.start()
        fronts.append(grpc_front)
        rest_port = 0
        if config.rest_port:
            rest = _rest_front(core, config, keys)
            rest_port = await rest.start()
            fronts.append(rest)
        _LOG.info(
            "listening",
            extra={
                "event": "listening",
                "grpc_port": grpc_port,
                "rest_port": rest_port,
                "worker_pid": core.worker_pid,
            },
        )
        # Until SIGTERM, or until the initial model load fails the configuration (as TF
        # Serving, which does not start then: e.g. a label on a version that cannot load).
        stopped = asyncio.ensure_future(stop.wait())
        failed = asyncio.ensure_future(core.start_failed())
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        failed.cancel()
        error = core.start_error
        if error is not None:
            _LOG.error(
                f"Failed to start server. Error: {error.code.name}: {error.message}",
                extra={"event": "start_failed", "code": error.code.name, "error": error.message},
            )
            exit_code = 1
        else:
            core.begin_drain()
            drained = await core.wait_idle(config.drain_timeout_seconds)
            _LOG.info(
                "drained" if drained else "drain timed out",
                extra={"event": "drain_done", "inflight": core.inflight},
            )
    finally:
        for front in reversed(fronts):
            try:
                await front.stop(1.0)
            except Exception:
                _LOG.exception("front stop failed", extra={"event": "front_stop_failed"})
        await core.stop()
        _LOG.info("stopped", extra={"event": "stopped"})
    return exit_code
