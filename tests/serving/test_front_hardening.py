"""What the fronts do with requests nobody should send, and how the server starts and logs.

Bounded metric labels, undecodable gRPC messages, TF Serving's case-insensitive REST paths,
JSON 404s, compressed transfer codings, malformed HTTP and junk HTTP/2 frames (one escaped
JSON line each, never the client's raw bytes), a port in use (one line, exit 1) and
TensorFlow's start-up noise (silent unless ``--log_level debug``). One real server.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from models import contract
from tests.support.server_process import REPO_ROOT, ServerProcess, free_port

MODEL = "tiny"
ESC = "\x1b"
TF_NOISE = ("cuInit", "oneDNN", "absl::InitializeLog", "cuda drivers")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[ServerProcess]:
    monitoring = tmp_path_factory.mktemp("hardening") / "monitoring.txt"
    monitoring.write_text("prometheus_config { enable: true }\n")
    with ServerProcess(
        model_name=MODEL,
        model_base_path=tiny_model_dir,
        args=["--file_system_poll_wait_seconds=0", f"--monitoring_config_file={monitoring}"],
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest_url, timeout=60) as client:
        yield client


def log_lines(server: ServerProcess) -> list[str]:
    """The server's stderr, without the harness's own ``=== command`` header lines."""
    return [
        line for line in server.logs().splitlines() if line.strip() and not line.startswith("===")
    ]


def wait_for_log(server: ServerProcess, text: str, timeout: float = 10.0) -> list[dict]:
    """JSON log entries whose line holds ``text``, once there is at least one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [json.loads(line) for line in log_lines(server) if text in line]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_unknown_model_names_share_one_metric_label(http: httpx.Client) -> None:
    invented = ["ghost-a", "ghost-b", "ghost-c"]
    http.post(f"/v1/models/{invented[0]}:predict", json={"instances": ["x"]})
    http.post(f"/v1/models/{invented[1]}:predict", content=b"{not json")
    http.post(contract.OPENAI_EMBEDDINGS_PATH, json={"model": invented[2], "input": 3})
    metrics = http.get(contract.METRICS_PATH).text
    requests = [line for line in metrics.splitlines() if line.startswith(contract.METRIC_REQUESTS)]
    assert not [line for line in requests if "ghost" in line], requests
    labels = {line.split('model="')[1].split('"')[0] for line in requests if 'model="' in line}
    assert labels <= {MODEL, "_unknown"} and "_unknown" in labels, labels


def test_undecodable_grpc_message_is_invalid_argument(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        predict = channel.unary_unary(f"/{contract.PREDICTION_SERVICE}/Predict")
        with pytest.raises(grpc.RpcError) as info:
            predict(b"\xff\xff\xff\xff", timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "PredictRequest" in info.value.details()
    assert "class" not in info.value.details() and "Error" not in info.value.details()


def test_rest_paths_are_case_insensitive_as_tf_serving(http: httpx.Client) -> None:
    body = {"instances": ["hello"]}
    expected = http.post(f"/v1/models/{MODEL}:predict", json=body)
    shouted = http.post(f"/V1/MODELS/{MODEL}:PREDICT", json=body)
    assert expected.status_code == shouted.status_code == 200
    assert shouted.json() == expected.json()
    assert http.get(f"/V1/Models/{MODEL}").json() == http.get(f"/v1/models/{MODEL}").json()


def test_a_path_nothing_serves_is_a_json_404(http: httpx.Client) -> None:
    for method, path in (("GET", "/nothing/here"), ("POST", "/"), ("GET", "/v2/models")):
        answer = http.request(method, path)
        assert answer.status_code == 404, (method, path)
        assert answer.headers["content-type"].startswith("application/json")
        assert path in answer.json()["error"]


def test_transfer_encoding_gzip_chunked_body_is_decoded(
    server: ServerProcess, http: httpx.Client
) -> None:
    plain = json.dumps({"instances": ["hello"]}).encode()
    expected = http.post(f"/v1/models/{MODEL}:predict", content=plain).json()
    packed = gzip.compress(plain)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed)
    answer = raw_http(
        server.rest_port,
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".encode()
        + chunked,
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(body) == expected


def test_malformed_http_is_one_escaped_json_line_rate_limited(server: ServerProcess) -> None:
    attempts = 30
    for i in range(attempts):
        raw_http(
            server.rest_port,
            b"GET / HTTP/1.1\r\nHost: x\r\nEvil" + ESC.encode() + b"[31m\x01 header %d\r\n\r\n" % i,
        )
    wait_for_log(server, "http_rejected")
    time.sleep(0.5)  # every connection has been answered; the log is complete
    rejected = [json.loads(line) for line in log_lines(server) if "http_rejected" in line]
    assert 1 <= len(rejected) <= 10, len(rejected)  # rate-limited, one line each
    assert all(entry["level"] == "warning" for entry in rejected)
    logs = server.logs()
    assert ESC not in logs and "Traceback" not in logs
    assert all("Evil" in entry["error"] for entry in rejected)  # what was wrong, escaped


def test_junk_http2_frames_are_one_escaped_json_line(server: ServerProcess) -> None:
    debug_text = b"evil" + ESC.encode() + b"[31m\nforged line \xff"
    goaway = struct.pack(">II", 0, 2) + debug_text  # last stream 0, PROTOCOL_ERROR
    frame = struct.pack(">I", len(goaway))[1:] + b"\x07\x00" + struct.pack(">I", 0) + goaway
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=30) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + frame)
        time.sleep(0.5)
    found = wait_for_log(server, "Got goaway")
    assert len(found) == 1, found
    assert "forged line" in found[0]["msg"] and found[0]["event"] == "native_log"
    lines = log_lines(server)
    assert not [line for line in lines if line.startswith("forged line")]
    assert all(line.startswith("{") for line in lines), [x for x in lines if x[:1] != "{"]
    assert ESC not in server.logs()


def test_tensorflow_start_up_noise_is_silenced(server: ServerProcess) -> None:
    logs = server.logs()
    assert not [noise for noise in TF_NOISE if noise in logs]
    assert all(line.startswith("{") for line in log_lines(server))


def test_log_level_debug_shows_tensorflow_as_json_lines(tiny_model_dir: Path) -> None:
    with ServerProcess(
        model_name=MODEL,
        model_base_path=tiny_model_dir,
        args=["--file_system_poll_wait_seconds=0", "--log_level=debug"],
        env={"TF_CPP_MIN_LOG_LEVEL": "0"},
    ) as srv:
        entries = wait_for_log(srv, "oneDNN")
        assert entries and entries[0]["event"] == "native_log"
        assert all(line.startswith("{") for line in log_lines(srv))


def test_a_port_in_use_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "serving.server_cli",
                "--host=127.0.0.1",
                f"--port={port}",
                f"--rest_api_port={free_port()}",
                f"--model_name={MODEL}",
                f"--model_base_path={tmp_path}",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"--port={port}" in lines[0] and "address already in use" in lines[0]
