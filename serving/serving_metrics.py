"""Prometheus metrics of the server, per stage, named in ``models.contract`` (METRIC_*).

Every metric is one row of ``METRICS``; ``ServingMetrics`` builds them into its own registry.
"""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from models import contract

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TOKEN_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144)


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """One metric: the ``ServingMetrics`` attribute it becomes and how it is declared."""

    attribute: str
    kind: type[Counter] | type[Gauge] | type[Histogram]
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None  # histograms only


METRICS = (
    MetricSpec(
        "requests",
        Counter,
        contract.METRIC_REQUESTS,
        "Requests by model, API and status code.",
        ("model", "api", "code"),
    ),
    MetricSpec(
        "request_latency",
        Histogram,
        contract.METRIC_REQUEST_LATENCY,
        "Time in the core per request (validation to result).",
        ("model", "api"),
        _LATENCY_BUCKETS,
    ),
    MetricSpec(
        "queue_wait",
        Histogram,
        contract.METRIC_QUEUE_WAIT,
        "Time a request waited in the batch queue.",
        ("model",),
        _LATENCY_BUCKETS,
    ),
    MetricSpec(
        "batch_size",
        Histogram,
        contract.METRIC_BATCH_SIZE,
        "Rows per executed batch.",
        ("model",),
        _SIZE_BUCKETS,
    ),
    MetricSpec(
        "batch_tokens",
        Histogram,
        contract.METRIC_BATCH_TOKENS,
        "Estimated padded tokens per batch: rows x the longest text's estimated wordpieces "
        "(UTF-8 bytes / 4 + 2).",
        ("model",),
        _TOKEN_BUCKETS,
    ),
    MetricSpec(
        "inference_latency",
        Histogram,
        contract.METRIC_INFERENCE_LATENCY,
        "Time inside TensorFlow per batch.",
        ("model", "version"),
        _LATENCY_BUCKETS,
    ),
    MetricSpec(
        "queue_depth",
        Gauge,
        contract.METRIC_QUEUE_DEPTH,
        "Requests waiting in the batch queue.",
        ("model",),
    ),
    MetricSpec(
        "version_available",
        Gauge,
        contract.METRIC_MODEL_VERSIONS,
        "1 while a model version is AVAILABLE.",
        ("model", "version"),
    ),
    MetricSpec(
        "worker_restarts",
        Counter,
        contract.METRIC_WORKER_RESTARTS,
        "Restarts of the TF worker process.",
    ),
)


class ServingMetrics:
    """One registry per server (not the global one), rendered by the REST front.

    Each row of ``METRICS`` is an attribute, e.g. ``metrics.requests.labels(...).inc()``.
    """

    # The attributes METRICS declares, for type checkers.
    requests: Counter
    request_latency: Histogram
    queue_wait: Histogram
    batch_size: Histogram
    batch_tokens: Histogram
    inference_latency: Histogram
    queue_depth: Gauge
    version_available: Gauge
    worker_restarts: Counter

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for spec in METRICS:
            metric: Counter | Gauge | Histogram
            if spec.buckets is None:
                metric = spec.kind(
                    spec.name, spec.documentation, spec.labels, registry=self.registry
                )
            else:
                metric = Histogram(
                    spec.name,
                    spec.documentation,
                    spec.labels,
                    registry=self.registry,
                    buckets=spec.buckets,
                )
            setattr(self, spec.attribute, metric)

    def render(self) -> tuple[bytes, str]:
        """Prometheus text exposition: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
