"""Adversarial runs against a real ``textserve-server`` on loopback (issue 12), bounded.

Each attack class is sent, every answer is classified (answered / explicit error / lost),
nothing may be lost, and each run ends with an exact good answer (the tiny model's output is
a known function of the text and the version). One server for the module, with short
connection limits so the timeouts show within seconds, API keys, CORS and a hot standby.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from clients import GrpcClient, RestClient
from clients.errors import TextServeError
from tests.support.server_process import ServerProcess
from tests.support.tiny_model import tiny_embedding

MODEL = "tiny"
KEY = "adversarial-test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
PREDICT = "/tensorflow.serving.PredictionService/Predict"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api_keys"
    path.write_text(f"# test keys\n{KEY}\n")
    return path


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, tiny_version_factory: Callable[[Path, int], Path]
) -> Path:
    root = tmp_path_factory.mktemp("adversarial") / MODEL
    root.mkdir()
    tiny_version_factory(root / "1", 1)
    return root


GRPC_MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def server(base: Path, keys_file: Path) -> Iterator[ServerProcess]:
    args = [
        "--file_system_poll_wait_seconds=0.3",
        f"--api_keys_file={keys_file}",
        "--rest_api_enable_cors_support",
        "--enable_grpc_healthcheck_service",
        "--rest_api_header_timeout_in_ms=1000",
        "--rest_api_body_timeout_in_ms=1000",
        "--rest_api_idle_timeout_in_ms=2000",
        "--rest_api_max_connections=40",
        "--grpc_handshake_timeout_in_ms=1000",
        "--grpc_max_connection_idle_in_ms=1500",
        f"--grpc_max_connections={GRPC_MAX_CONNECTIONS}",
        "--worker_standby",
    ]
    with ServerProcess(model_name=MODEL, model_base_path=base, args=args) as srv:
        yield srv


def served_version(server: ServerProcess) -> int:
    with RestClient(server.rest_url, model_name=MODEL, bearer_token=KEY) as client:
        return int(client.predict({"text": ["v"]})["embedding"][0, 2])


def good_answer(server: ServerProcess, version: int | None = None) -> None:
    """An exact answer over both protocols, with the key."""
    texts = ["four", "naïve café"]
    with GrpcClient(server.grpc_target, model_name=MODEL, bearer_token=KEY) as client:
        out = client.predict({"text": texts})["embedding"]
    version = version or int(out[0, 2])
    expected = tiny_embedding([t.encode() for t in texts], version)
    # Byte length, version and 1.0 exactly; the hash bucket / 1000 within a float32 ulp (TF's
    # division kernel may vectorise differently in the server's process).
    np.testing.assert_array_equal(out[:, [0, 2, 3]], expected[:, [0, 2, 3]])
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    r = httpx.post(
        f"{server.rest_url}/v1/models/{MODEL}:predict",
        json={"instances": texts},
        headers=AUTH,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()["predictions"]), expected, rtol=1e-6)


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True once the server closed the connection (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


# --- API keys, CORS ------------------------------------------------------------------------


def test_without_a_valid_key_both_ports_refuse_and_health_stays_open(
    server: ServerProcess, keys_file: Path
) -> None:
    codes: Counter[str] = Counter()
    for token in (None, "wrong", KEY[:-1], KEY + "x", KEY.upper()):
        with RestClient(server.rest_url, model_name=MODEL, bearer_token=token) as rest:
            with pytest.raises(TextServeError) as err:
                rest.predict({"text": ["x"]})
            codes[err.value.code] += 1
        with GrpcClient(server.grpc_target, model_name=MODEL, bearer_token=token) as client:
            with pytest.raises(TextServeError) as err:
                client.predict({"text": ["x"]})
            codes[err.value.code] += 1
    assert codes == Counter({"UNAUTHENTICATED": 10})
    url = f"{server.rest_url}/v1/models/{MODEL}:predict"
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": KEY}):
        r = httpx.post(url, json={"instances": ["x"]}, headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert "error" in r.json()
    # Probes need no secret: REST model status and the gRPC health service.
    assert httpx.get(f"{server.rest_url}/v1/models/{MODEL}").status_code == 200
    for path in ("/v1/health", "/health"):
        assert httpx.get(server.rest_url + path).status_code == 200
    assert httpx.get(f"{server.rest_url}/v1/models").status_code == 401  # discovery is not a probe
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.grpc_target) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    good_answer(server)


def test_keys_file_changes_apply_without_a_restart(server: ServerProcess, keys_file: Path) -> None:
    new_key = "rotated-key-2"
    keys_file.write_text(f"{KEY}\n{new_key}\n")
    url = f"{server.rest_url}/v1/models/{MODEL}:predict"
    deadline = time.monotonic() + 10
    headers = {"Authorization": f"Bearer {new_key}"}
    while httpx.post(url, json={"instances": ["x"]}, headers=headers).status_code != 200:
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.2)
    keys_file.write_text(f"{KEY}\n")  # revoked
    while httpx.post(url, json={"instances": ["x"]}, headers=headers).status_code != 401:
        assert time.monotonic() < deadline + 10, server.log_tail()
        time.sleep(0.2)
    good_answer(server)


def test_cors_as_tf_serving_does_it(server: ServerProcess) -> None:
    pre = httpx.options(
        f"{server.rest_url}/v1/models/{MODEL}:predict",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert pre.status_code == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    r = httpx.post(
        f"{server.rest_url}/v1/models/{MODEL}:predict", json={"instances": ["x"]}, headers=AUTH
    )
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    good_answer(server)


# --- connections --------------------------------------------------------------------------


def test_slowloris_headers_are_cut_off(server: ServerProcess) -> None:
    socks = [connect(server.rest_port) for _ in range(30)]
    for s in socks:
        s.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n")
    stop = time.monotonic() + 2.5
    alive = list(socks)
    while alive and time.monotonic() < stop:  # one header byte per connection every 0.3 s
        for s in list(alive):
            try:
                s.sendall(b"X")
            except OSError:
                alive.remove(s)
        time.sleep(0.3)
    closed = sum(closed_by_peer(s, timeout=3.0) for s in socks)
    for s in socks:
        s.close()
    assert closed == 30  # sent 30, closed by the server 30 (header timeout 1 s)
    good_answer(server)


def test_idle_and_slow_body_connections_are_closed(server: ServerProcess) -> None:
    idle = connect(server.rest_port)
    idle.sendall(
        f"GET /v1/models/{MODEL} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n".encode()
    )
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    silent = connect(server.rest_port)  # connects, never sends a byte
    slow = connect(server.rest_port)
    slow.sendall(
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}"
        '\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inst'.encode()
    )
    slow.settimeout(5)
    answer = slow.recv(65536)
    # Body timeout 1 s: the connection is closed (an answer, when one gets out first, is 504).
    assert answer == b"" or answer.startswith(b"HTTP/1.1 504"), answer
    assert answer == b"" or closed_by_peer(slow, timeout=5.0)
    assert closed_by_peer(silent, timeout=5.0)  # header timeout
    assert closed_by_peer(idle, timeout=6.0)  # idle timeout 2 s after its response
    for s in (idle, silent, slow):
        s.close()
    good_answer(server)


def test_connection_flood_is_capped_and_the_port_keeps_serving(server: ServerProcess) -> None:
    socks = []
    for _ in range(120):
        try:
            socks.append(connect(server.rest_port))
        except OSError:
            break
    time.sleep(0.5)
    closed = sum(closed_by_peer(s, timeout=0.2) for s in socks)
    for s in socks:
        s.close()
    assert len(socks) == 120 and closed >= 120 - 40  # beyond --rest_api_max_connections=40
    time.sleep(0.5)
    good_answer(server)


def test_grpc_idle_and_handshake_less_connections_are_closed(server: ServerProcess) -> None:
    raw = [connect(server.grpc_port) for _ in range(20)]  # TCP only, no HTTP/2 preface
    assert sum(closed_by_peer(s, timeout=5.0) for s in raw) == 20
    for s in raw:
        s.close()
    states: list[grpc.ChannelConnectivity] = []
    with grpc.insecure_channel(server.grpc_target) as ch:
        ch.subscribe(states.append, try_to_connect=False)
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        deadline = time.monotonic() + 10
        # The server's GOAWAY after 1.5 s without an RPC takes the channel out of READY.
        ready = grpc.ChannelConnectivity.READY

        def left_ready() -> bool:
            return ready in states and states[-1] is not ready

        while not left_ready():
            assert time.monotonic() < deadline, states
            time.sleep(0.1)
    good_answer(server)


def test_grpc_connections_past_the_cap_are_refused_and_freed_on_close(
    server: ServerProcess,
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    def checked(channel: grpc.Channel) -> str:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError as exc:
            return exc.code().name
        return "OK"

    # A local subchannel pool per channel: each is its own TCP connection, held open.
    own_connection = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]
    channels = [
        grpc.insecure_channel(server.grpc_target, options=own_connection)
        for _ in range(GRPC_MAX_CONNECTIONS + 4)
    ]
    try:
        codes = [checked(channel) for channel in channels]
    finally:
        for channel in channels:
            channel.close()
    assert 1 <= codes.count("OK") <= GRPC_MAX_CONNECTIONS, codes
    assert codes.count("UNAVAILABLE") >= 4 and set(codes) == {"OK", "UNAVAILABLE"}, codes
    # Closed connections free their places: new connections are served again.
    deadline = time.monotonic() + 10
    while True:
        with grpc.insecure_channel(server.grpc_target, options=own_connection) as channel:
            if checked(channel) == "OK":
                break
        assert time.monotonic() < deadline, "no connection accepted after the others closed"
        time.sleep(0.2)
    good_answer(server)


# --- fuzzed input -------------------------------------------------------------------------


def test_fuzzed_predict_protos_get_explicit_errors(server: ServerProcess) -> None:
    from tensorflow_serving.apis import predict_pb2

    from tests.support.tfs_calls import tensor_proto

    req = predict_pb2.PredictRequest()
    req.model_spec.name = MODEL
    req.inputs["text"].CopyFrom(tensor_proto(np.array([b"four", b"x"], dtype=object)))
    valid = req.SerializeToString()
    rng = random.Random(12)
    codes: Counter[str] = Counter()
    with grpc.insecure_channel(server.grpc_target) as ch:
        call = ch.unary_unary(PREDICT)
        for i in range(150):
            data = bytearray(valid)
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if i % 5 == 0:
                data = bytearray(rng.randbytes(rng.randrange(0, 200)))
            try:
                call(bytes(data), timeout=10, metadata=(("authorization", f"Bearer {KEY}"),))
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name] += 1
    assert sum(codes.values()) == 150  # sent 150, every one answered (lost 0)
    assert set(codes) <= {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"}, codes
    good_answer(server)


def test_fuzzed_json_gets_explicit_errors(server: ServerProcess) -> None:
    valid = json.dumps({"instances": ["four", "x"], "signature_name": "serving_default"})
    rng = random.Random(7)
    bodies = [b"[" * 10_000, b'{"instances": [NaN]}', b'{"instances": "\xff\xfe"}', b""]
    for _ in range(150):
        data = bytearray(valid.encode())
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(b'{}[]",:\\0a\xff')
        bodies.append(bytes(data))
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=server.rest_url, headers=AUTH, timeout=10) as http:
        for body in bodies:
            r = http.post(
                f"/v1/models/{MODEL}:predict",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            statuses[r.status_code] += 1
            assert "error" in r.json() if r.status_code != 200 else "predictions" in r.json()
    assert sum(statuses.values()) == len(bodies)
    assert all(s in (200, 400, 404) for s in statuses), statuses
    good_answer(server)


# --- the worker -------------------------------------------------------------------------


def _load(server: ServerProcess, stop: threading.Event, codes: Counter[str]) -> None:
    with GrpcClient(server.grpc_target, model_name=MODEL, bearer_token=KEY) as client:
        while not stop.is_set():
            try:
                out = client.predict({"text": ["four"]})["embedding"]
                assert out[0, 0] == 4.0
                codes["OK"] += 1
            except TextServeError as exc:
                codes[exc.code] += 1


def test_worker_sigkill_under_load(server: ServerProcess) -> None:
    events = server.events
    deadline = time.monotonic() + 120
    while not any(e.get("event") == "standby_ready" for e in events()):
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.2)
    stop, codes = threading.Event(), Counter[str]()
    threads = [threading.Thread(target=_load, args=(server, stop, codes)) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        pid = server.worker_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        ok_before = codes["OK"]
        while codes["OK"] < ok_before + 20:
            assert time.monotonic() < deadline, (codes, server.log_tail())
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert set(codes) <= {"OK", "UNAVAILABLE"}, codes  # explicit errors only, none lost
    assert server.worker_pid() != pid
    good_answer(server)


def test_reload_churn_under_load(
    server: ServerProcess, base: Path, tiny_version_factory: Callable[[Path, int], Path]
) -> None:
    stop, codes = threading.Event(), Counter[str]()
    threads = [threading.Thread(target=_load, args=(server, stop, codes)) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for version in (2, 3):
            tiny_version_factory(base / str(version), version)
            deadline = time.monotonic() + 120
            while served_version(server) != version:
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert codes["OK"] > 0 and set(codes) == {"OK"}, codes  # reloads lose and fail nothing
    good_answer(server, version=3)
