"""Which failures the clients retry, and how long they wait: one policy for gRPC and REST."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from clients.errors import TextServeError
from models import contract


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter, identical for gRPC and REST.

    Only failures where a retry is safe are retried: UNAVAILABLE (nothing listening, a
    connection reset, a draining or not-yet-ready server, TF Serving's full batch queue) and,
    when ``retry_on_overload``, RESOURCE_EXHAUSTED (predict is idempotent; the backoff and
    gRPC's retry throttling keep a client from hammering an overloaded server). Never
    INVALID_ARGUMENT (same request, same answer) nor DEADLINE_EXCEEDED (the caller's time
    budget is spent). ``max_attempts`` counts the first try; gRPC caps it at 5.

    Example::

        RetryPolicy(max_attempts=3, initial_backoff_s=0.05)  # quicker give-up
        RetryPolicy(max_attempts=1)                          # no retries (load tests)
    """

    max_attempts: int = 4  # each attempt costs one round trip of the caller's deadline
    initial_backoff_s: float = 0.1  # first pause before a retry; longer = gentler on a sick server
    max_backoff_s: float = 2.0  # ceiling of a single pause
    backoff_multiplier: float = 2.0
    retry_on_overload: bool = True  # also retry RESOURCE_EXHAUSTED / 429 after backing off

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 5:
            raise ValueError("max_attempts must be in 1..5 (gRPC's limit)")
        if self.initial_backoff_s <= 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s")
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be >= 1")

    @property
    def retryable_codes(self) -> tuple[str, ...]:
        return ("UNAVAILABLE", "RESOURCE_EXHAUSTED") if self.retry_on_overload else ("UNAVAILABLE",)

    def is_retryable(self, error: TextServeError) -> bool:
        return error.code in self.retryable_codes

    def backoff_s(self, retry_number: int, rng: random.Random) -> float:
        """Pause before retry ``retry_number`` (1-based): uniform in [0, capped exponential]
        -- the same "full jitter" gRPC applies to its retryPolicy."""
        ceiling = min(
            self.max_backoff_s,
            self.initial_backoff_s * self.backoff_multiplier ** (retry_number - 1),
        )
        return rng.uniform(0.0, ceiling)

    def grpc_method_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": [{"service": contract.PREDICTION_SERVICE}, {"service": contract.MODEL_SERVICE}],
        }
        if self.max_attempts > 1:
            config["retryPolicy"] = {
                "maxAttempts": self.max_attempts,
                "initialBackoff": f"{self.initial_backoff_s:.3f}s",
                "maxBackoff": f"{self.max_backoff_s:.3f}s",
                "backoffMultiplier": self.backoff_multiplier,
                "retryableStatusCodes": list(self.retryable_codes),
            }
        return config


DEFAULT_RETRY_POLICY = RetryPolicy()


def retry_delay(
    policy: RetryPolicy,
    error: TextServeError,
    *,
    attempt: int,
    remaining_s: float,
    rng: random.Random,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to give up and raise ``error``.

    Gives up on non-retryable codes, after ``policy.max_attempts``, and when the pause would
    eat the rest of the call's deadline.
    """
    if not policy.is_retryable(error) or attempt >= policy.max_attempts:
        return None
    delay = policy.backoff_s(attempt, rng)
    return delay if delay < remaining_s else None
