"""ServingMetrics: the table of metrics, rendered under the names the contract exports."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from models import contract
from serving.serving_metrics import METRICS, ServingMetrics

_TYPE = {Counter: "counter", Gauge: "gauge", Histogram: "histogram"}


def test_every_contract_metric_is_one_row_and_one_attribute() -> None:
    contract_names = {v for k, v in vars(contract).items() if k.startswith("METRIC_")}
    assert sorted(spec.name for spec in METRICS) == sorted(contract_names)
    assert set(ServingMetrics.__annotations__) == {spec.attribute for spec in METRICS}
    metrics = ServingMetrics()
    for spec in METRICS:
        assert isinstance(getattr(metrics, spec.attribute), spec.kind), spec.attribute


def test_rendered_names_types_labels_and_buckets() -> None:
    metrics = ServingMetrics()
    metrics.requests.labels("m", "rest", "OK").inc()
    metrics.batch_size.labels("m").observe(3)
    metrics.queue_depth.labels("m").set(2)
    metrics.worker_restarts.inc()
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for spec in METRICS:
        # prometheus_client drops a counter's _total suffix from the family name
        family = families[spec.name.removesuffix("_total")]
        assert family.type == _TYPE[spec.kind], spec.name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert (
        samples[(contract.METRIC_REQUESTS, (("api", "rest"), ("code", "OK"), ("model", "m")))] == 1
    )
    assert samples[(contract.METRIC_WORKER_RESTARTS, ())] == 1
    assert samples[(contract.METRIC_QUEUE_DEPTH, (("model", "m"),))] == 2
    size = contract.METRIC_BATCH_SIZE
    assert samples[(f"{size}_bucket", (("le", "2.0"), ("model", "m")))] == 0
    assert samples[(f"{size}_bucket", (("le", "4.0"), ("model", "m")))] == 1
    assert samples[(f"{size}_count", (("model", "m"),))] == 1
