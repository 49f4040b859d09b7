"""``ClientSettings``: what the four clients share, built from their keyword arguments."""

from __future__ import annotations

import dataclasses

from clients.retry_policy import RetryPolicy
from clients.tls_config import TlsConfig

DEFAULT_TIMEOUT_S = 30.0


DEFAULT_CHUNK_SIZE = 64


DEFAULT_MAX_CONCURRENCY = 4


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """Everything the four clients share; built from their keyword arguments."""

    model_name: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    retry: RetryPolicy = RetryPolicy()
    tls: TlsConfig | None = None
    bearer_token: str | None = None

    def __post_init__(self) -> None:
        if not self.model_name:
            raise ValueError("model_name is required")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if self.chunk_size < 1 or self.max_concurrency < 1:
            raise ValueError("chunk_size and max_concurrency must be >= 1")

    def auth_metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC call metadata (keys are lower case in gRPC)."""
        if self.bearer_token is None:
            return ()
        return (("authorization", f"Bearer {self.bearer_token}"),)

    def http_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers
