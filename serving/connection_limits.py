"""``ConnectionLimits``: how long and how many connections each port keeps (both fronts).

Without these, 550 slow-header REST connections and 200 idle gRPC connections all stayed
open, bounded only by the file-descriptor limit. Every limit is a flag (TF Serving's style,
``*_in_ms``); 0 turns one off.

- REST: a connection is closed when its request headers are not complete
  ``rest_api_header_timeout_in_ms`` after it opened (or after its previous response), when a
  request body does not arrive within ``rest_api_body_timeout_in_ms`` (408), and when it sits
  with no request for ``rest_api_idle_timeout_in_ms``; connections past
  ``rest_api_max_connections`` are closed as they open.
- gRPC: gRPC core's own channel arguments: ``grpc.server_handshake_timeout_ms`` (a
  connection that does not finish its HTTP/2 / TLS handshake), ``grpc.max_connection_idle_ms``
  (a connection with no RPC for that long gets a GOAWAY) and
  ``grpc.max_allowed_incoming_connections``. TF Serving's ``--grpc_channel_arguments``
  (``name=value,...``) overrides or adds any of them.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    # A slow client gets 10 s for its headers: curl and every HTTP library send them at once.
    rest_api_header_timeout_in_ms: int = 10_000
    # A body arriving slower than this is a slowloris, or a link too slow to serve anyway.
    rest_api_body_timeout_in_ms: int = 60_000
    # Keep-alive connections with nothing to do: each holds a socket and ~10 KB of buffers.
    rest_api_idle_timeout_in_ms: int = 60_000
    rest_api_max_connections: int = 1_000
    grpc_handshake_timeout_in_ms: int = 10_000
    # gRPC clients keep channels open on purpose; 5 minutes lets pools stay warm.
    grpc_max_connection_idle_in_ms: int = 300_000
    grpc_max_connections: int = 1_000
    grpc_channel_arguments: str = ""  # TF Serving's flag: "name=value,name=value"

    def grpc_options(self) -> list[tuple[str, int | str]]:
        """gRPC server options: ours, then ``grpc_channel_arguments`` on top."""
        options: dict[str, int | str] = {}
        if self.grpc_handshake_timeout_in_ms:
            options["grpc.server_handshake_timeout_ms"] = self.grpc_handshake_timeout_in_ms
        if self.grpc_max_connection_idle_in_ms:
            options["grpc.max_connection_idle_ms"] = self.grpc_max_connection_idle_in_ms
        if self.grpc_max_connections:
            options["grpc.max_allowed_incoming_connections"] = self.grpc_max_connections
        options.update(parse_channel_arguments(self.grpc_channel_arguments))
        return list(options.items())

    def validate(self) -> None:
        """Raises ValueError naming the flag at fault."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int) and value < 0:
                raise ValueError(f"--{field.name} must be >= 0 (0 = off)")
        parse_channel_arguments(self.grpc_channel_arguments)


def parse_channel_arguments(text: str) -> dict[str, int | str]:
    """TF Serving's ``--grpc_channel_arguments``: ``name=value`` pairs, comma separated; values
    that are integers are passed as integers (as TF Serving does)."""
    out: dict[str, int | str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--grpc_channel_arguments: expected name=value, got {item!r}")
        value = value.strip()
        try:
            out[name.strip()] = int(value)
        except ValueError:
            out[name.strip()] = value
    return out
