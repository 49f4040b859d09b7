"""A REST client that hangs up stops costing work: its queued request is dropped, never run.

A real server with one worker slot: a long ``spin`` request keeps TensorFlow busy, a REST
predict queues behind it, and its client closes the connection. The server's own Prometheus
metrics show that the abandoned request was counted as CANCELLED, left the queue while the
worker was still busy, and never became a batch; the server keeps serving.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from models import contract
from tests.support.server_process import ServerProcess

MODEL = "tiny"
# Several seconds of TF while-loop (~100k steps/s here): the one worker slot stays busy
# while the abandoned request is queued and dropped.
SPIN_STEPS = 1_500_000


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("cancellation")
    (config / "monitoring.txt").write_text("prometheus_config { enable: true }\n")
    (config / "batching.txt").write_text(
        "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 0 }\n"
        "num_batch_threads { value: 1 }\n"
    )
    with ServerProcess(
        model_name=MODEL,
        model_base_path=tiny_model_dir,
        args=[
            "--file_system_poll_wait_seconds=0",
            "--enable_batching",
            f"--batching_parameters_file={config / 'batching.txt'}",
            f"--monitoring_config_file={config / 'monitoring.txt'}",
            "--rest_api_timeout_in_ms=300000",
        ],
    ) as srv:
        yield srv


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    """One sample of the server's Prometheus metrics (0 when it has not been recorded yet)."""
    body = httpx.get(f"{server.rest_url}{contract.METRICS_PATH}", timeout=10).text
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_a_rest_client_that_hangs_up_is_cancelled_and_its_queued_work_never_runs(
    server: ServerProcess,
) -> None:
    batches = f"{contract.METRIC_BATCH_SIZE}_count"
    cancelled = {"model": MODEL, "api": "rest", "code": "CANCELLED"}
    ok = {"model": MODEL, "api": "rest", "code": "OK"}
    batches_before = metric(server, batches, model=MODEL)
    ok_before = metric(server, contract.METRIC_REQUESTS, **ok)
    assert metric(server, contract.METRIC_REQUESTS, **cancelled) == 0

    spin_url = f"{server.rest_url}/v1/models/{MODEL}:predict"
    spin_body = {"signature_name": "spin", "instances": [SPIN_STEPS]}
    with ThreadPoolExecutor(1) as pool:
        spinning = pool.submit(httpx.post, spin_url, json=spin_body, timeout=300)
        # The spin batch has started: the only worker slot is busy from here on.
        wait_until(lambda: metric(server, batches, model=MODEL) == batches_before + 1, "spin runs")

        body = orjson.dumps({"instances": ["abandoned"]})
        request = (
            f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        caller = socket.create_connection((server.host, server.rest_port), timeout=10)
        try:
            caller.sendall(request)
            queue_depth = contract.METRIC_QUEUE_DEPTH
            wait_until(lambda: metric(server, queue_depth, model=MODEL) == 1, "it is queued")
        finally:
            caller.close()  # the client hangs up before any answer

        wait_until(
            lambda: metric(server, contract.METRIC_REQUESTS, **cancelled) == 1, "it is cancelled"
        )
        assert metric(server, contract.METRIC_QUEUE_DEPTH, model=MODEL) == 0
        # Dropped from the queue while the worker was still busy with the spin request.
        assert not spinning.done()
        response = spinning.result(timeout=300)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [SPIN_STEPS]}

    # Only the spin request ever became a batch: the abandoned one never ran.
    time.sleep(0.5)  # a batch the dropped request had (wrongly) formed would be counted by now
    assert metric(server, batches, model=MODEL) == batches_before + 1
    assert metric(server, contract.METRIC_REQUESTS, **ok) == ok_before + 1

    # The server keeps serving.
    answer = httpx.post(spin_url, json={"instances": ["still here"]}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0][0] == len("still here")  # tiny model: byte length
    assert metric(server, batches, model=MODEL) == batches_before + 2
    assert metric(server, contract.METRIC_REQUESTS, **cancelled) == 1
