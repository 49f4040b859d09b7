"""gRPC channels: targets, options, service config (retries, round robin), method paths."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from clients._settings import ClientSettings
from clients.retry_policy import RetryPolicy
from models import contract

PREDICT_METHOD = f"/{contract.PREDICTION_SERVICE}/Predict"


GET_MODEL_METADATA_METHOD = f"/{contract.PREDICTION_SERVICE}/GetModelMetadata"


GET_MODEL_STATUS_METHOD = f"/{contract.MODEL_SERVICE}/GetModelStatus"


MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def grpc_channel_options(
    settings: ClientSettings, extra: Sequence[tuple[str, Any]] = ()
) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", grpc_service_config(settings.retry)),
        ("grpc.enable_retries", 1),
        # The config above is the policy; a DNS TXT record must not replace it.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # Reconnect on the retry policy's time scale: gRPC's default 1 s first reconnect
        # backoff would make every retry inside it fail at once against a restarting server.
        ("grpc.initial_reconnect_backoff_ms", int(settings.retry.initial_backoff_s * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(settings.retry.initial_backoff_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(settings.retry.max_backoff_s * 1000)),
    ]
    if settings.tls is not None and settings.tls.server_name is not None:
        options.append(("grpc.ssl_target_name_override", settings.tls.server_name))
    options.extend(extra)
    return options


def grpc_service_config(policy: RetryPolicy) -> str:
    """The gRPC service config JSON: retries per ``policy`` and round-robin load balancing.

    Round robin spreads calls over every address a ``dns:///`` or ``ipv4:`` target resolves
    to (gRPC's default, pick_first, would pin one replica). Retry throttling stops retries
    when most calls fail, so a client does not multiply the load on a struggling server.
    """
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [policy.grpc_method_config()],
    }
    if policy.max_attempts > 1:
        config["retryThrottling"] = {"maxTokens": 10, "tokenRatio": 0.1}
    return json.dumps(config)


def grpc_target(target: str | Sequence[str]) -> str:
    """A gRPC target from ``"host:port"``, a ``dns:///`` / ``ipv4:`` URI, or a list of IP:port.

    >>> grpc_target(["127.0.0.1:8500", "127.0.0.1:8510"])
    'ipv4:127.0.0.1:8500,127.0.0.1:8510'
    """
    if isinstance(target, str):
        return target
    addresses = list(target)
    if not addresses:
        raise ValueError("no address given")
    if len(addresses) == 1:
        return addresses[0]
    hosts = [a.rsplit(":", 1)[0].strip("[]") for a in addresses]
    try:
        versions = {ipaddress.ip_address(h).version for h in hosts}
    except ValueError:
        raise ValueError(
            "a list of addresses must be IP:port literals; for host names use a "
            "'dns:///name:port' target that resolves to every replica"
        ) from None
    if len(versions) != 1:
        raise ValueError("do not mix IPv4 and IPv6 addresses")
    scheme = "ipv4" if versions == {4} else "ipv6"
    return f"{scheme}:{','.join(addresses)}"
