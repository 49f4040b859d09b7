"""``batcher_settings``: the batcher tests' BatcherSettings (batching on, one slot, no timeout,
deep queues), with each test's overrides."""

from __future__ import annotations

import dataclasses

from serving.batcher import BatcherSettings

_BASE = BatcherSettings(
    enabled=True,
    max_batch_size=8,
    batch_timeout_s=0.0,
    max_enqueued_batches=100,
    slots=1,
    allowed_batch_sizes=(),
    max_queued_requests=1000,
    length_grouping=True,
)


def batcher_settings(**overrides: object) -> BatcherSettings:
    return dataclasses.replace(_BASE, **overrides)  # type: ignore[arg-type]
