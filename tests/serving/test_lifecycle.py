"""Lifecycle of a real server: SIGKILL of the TF worker, then SIGTERM with requests in flight.

One server for the module; the SIGTERM test ends it, so it runs last (file order).
``spin`` requests keep TensorFlow busy for about a second each, without Python: the step count
is calibrated on the running server, so the requests are still in flight when the signal
lands however fast the machine (30,000 steps took 0.3 s under the eager runtime and 0.06 s
under the Session runtime, which once let all six finish before the SIGTERM).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from tests.support.server_process import ServerProcess
from tests.support.tfs_calls import predict, texts

MODEL = "tiny"
CALIBRATION_STEPS = 100_000
SPIN_SECONDS = 1.0


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> Iterator[ServerProcess]:
    # Batching off: each spin request runs on its own, 2 at a time (num_batch_threads).
    with ServerProcess(
        model_name=MODEL,
        model_base_path=tiny_model_dir,
        args=["--file_system_poll_wait_seconds=0", "--drain_timeout_seconds=60"],
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def spin_steps(server: ServerProcess) -> int:
    """Steps of one ``spin`` request that keep TensorFlow busy for ~``SPIN_SECONDS``."""
    spin(server.grpc_target, CALIBRATION_STEPS)  # the first run of a signature is slower
    started = time.perf_counter()
    assert spin(server.grpc_target, CALIBRATION_STEPS) is grpc.StatusCode.OK
    per_step = (time.perf_counter() - started) / CALIBRATION_STEPS
    return max(CALIBRATION_STEPS, int(SPIN_SECONDS / per_step))


def spin(target: str, steps: int, timeout: float = 60.0) -> grpc.StatusCode:
    with grpc.insecure_channel(target) as ch:
        try:
            _, out = predict(
                ch,
                MODEL,
                {"n": np.array([steps], dtype=np.int32)},
                signature="spin",
                timeout=timeout,
            )
        except grpc.RpcError as exc:
            return exc.code()
    assert out["n"].tolist() == [steps]
    return grpc.StatusCode.OK


def test_sigkill_of_the_worker_fails_in_flight_requests_explicitly_and_recovers(
    server: ServerProcess, spin_steps: int
) -> None:
    old_pid = server.worker_pid()
    assert old_pid is not None and old_pid != server.pid
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(spin, server.grpc_target, spin_steps) for _ in range(8)]
        time.sleep(0.4)  # two are running, six are queued
        os.kill(old_pid, signal.SIGKILL)
        codes = [f.result(timeout=90) for f in futures]
    # Every request got an answer; the ones the crash hit got UNAVAILABLE, none hung.
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
    assert grpc.StatusCode.UNAVAILABLE in codes
    # While the worker restarts, status says not-ready and requests are refused explicitly.
    deadline = time.monotonic() + 60
    while True:
        with grpc.insecure_channel(server.grpc_target) as ch:
            try:
                version, out = predict(ch, MODEL, {"text": texts("back?")}, timeout=10)
                break
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.UNAVAILABLE, exc
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.1)
    assert version == 1 and out["embedding"].shape == (1, 4)
    new_pid = server.worker_pid()
    assert new_pid is not None and new_pid != old_pid
    assert any(e.get("event") == "worker_died" for e in server.events())
    assert (
        server.proc is not None and server.proc.poll() is None
    )  # the server itself never went down


def test_sigterm_answers_in_flight_requests_then_exits_zero(
    server: ServerProcess, spin_steps: int
) -> None:
    results: list[grpc.StatusCode] = []
    lock = threading.Lock()

    def one() -> None:
        code = spin(server.grpc_target, spin_steps)
        with lock:
            results.append(code)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # all six are in the server: two running, four queued
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    # A request arriving during the drain is refused, explicitly.
    with grpc.insecure_channel(server.grpc_target) as ch:
        with pytest.raises(grpc.RpcError) as err:
            predict(ch, MODEL, {"text": texts("too late")}, timeout=10)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE
    r = httpx.post(
        f"{server.rest_url}/v1/models/{MODEL}:predict", json={"instances": ["too late"]}, timeout=10
    )
    assert r.status_code == 503 and "error" in r.json()
    for t in threads:
        t.join(timeout=60)
    assert results == [grpc.StatusCode.OK] * 6
    assert server.proc.wait(timeout=60) == 0
    events = [e.get("event") for e in server.events()]
    assert "drain_started" in events and "stopped" in events
