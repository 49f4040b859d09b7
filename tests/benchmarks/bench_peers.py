"""textserve-server side by side with Infinity, the served peer, in one run (a script, not a test).

    python tests/benchmarks/bench_peers.py --infinity_python /path/to/infinity-venv/bin/python

Both servers serve the bundled all-MiniLM-L6-v2 on the same 2 cores, one text per request,
driven by the same Python load generator (``bench_serving.drive``: grpc.aio for gRPC, aiohttp
for HTTP), at concurrency 1 and 32 (``--concurrency``), in ``--rounds`` interleaved rounds
(every system once per level per round; medians printed):

- textserve gRPC ``Predict`` and textserve ``POST /v1/embeddings`` (OpenAI shape), with
  ``--enable_batching`` (max batch 32, no batch timeout: what ``bench_serving.py`` runs);
- Infinity (``infinity-emb`` 0.0.78, optimum engine: ONNX Runtime on the model exported with
  optimum, Infinity's own graph optimisation, batch size 32) ``POST /embeddings``.

Before timing, every sentence of the corpus (STS-B en test, both columns, 2,758) is embedded
once through each system and checked against sentence-transformers: max abs difference and the
STS-B Spearman of each, so every figure belongs to a system that answers correctly.

Infinity pins other versions of transformers and numpy than textserve, so it lives in its own
virtualenv; create it once (the versions measured)::

    python3.11 -m venv /tmp/infinity-venv
    /tmp/infinity-venv/bin/pip install -r tests/benchmarks/requirements-infinity.txt

This script prepares Infinity's model directory itself (a copy of the bundled checkpoint plus
``model.onnx`` exported with that venv's ``optimum-cli``), starts Infinity offline on a free port
and stops it at the end. CPU in cores is printed for the load generator and for each server
(textserve: front + TF worker) while it is driven.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models import contract  # noqa: E402
from models.bundled import bundled_checkpoint  # noqa: E402
from tests.benchmarks.bench_inprocess import load_stsb, spearman  # noqa: E402
from tests.benchmarks.bench_serving import (  # noqa: E402
    batching_server_args,
    bundled_base,
    cpu_seconds,
    drive,
    percentile,
)
from tests.support.server_process import ServerProcess, free_port  # noqa: E402

Call = Callable[[str], Awaitable[list[float]]]
INFINITY_MODEL = "all-MiniLM-L6-v2"
STARTUP_TIMEOUT_S = 600.0


class InfinityProcess:
    """Infinity serving the bundled checkpoint from ``workdir``, started from its own venv."""

    def __init__(self, python: Path, workdir: Path) -> None:
        self.bin = python.parent
        self.model_dir = workdir / "infinity-model"
        self.log = workdir / "infinity.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(workdir / "hf-home"),  # Infinity caches its optimised ONNX here
            "INFINITY_ANONYMOUS_USAGE_STATS": "0",
            "DO_NOT_TRACK": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        """Copy the checkpoint and export ``model.onnx`` into it with optimum."""
        shutil.copytree(bundled_checkpoint(), self.model_dir)
        onnx_dir = self.model_dir / "onnx"
        subprocess.run(
            [str(self.bin / "optimum-cli"), "export", "onnx", "--model", str(self.model_dir),
             "--task", "feature-extraction", str(onnx_dir)],
            check=True, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # Infinity 0.0.78 with optimum 2.x finds a local ONNX file only when it sits at the top
        # of the model directory and the directory is given as "." (it matches the listed
        # relative path against the file name).
        (onnx_dir / "model.onnx").rename(self.model_dir / "model.onnx")
        shutil.rmtree(onnx_dir)

    def start(self) -> None:
        # Infinity's optimum engine pools with [CLS] unless told otherwise ("auto" is not read
        # from the checkpoint there): pass what the checkpoint's sentence-transformers config says.
        pooling = json.loads((self.model_dir / "1_Pooling" / "config.json").read_text())
        method = "mean" if pooling.get("pooling_mode_mean_tokens") else "cls"
        command = [
            str(self.bin / "infinity_emb"), "v2", "--model-id", ".",
            "--served-model-name", INFINITY_MODEL, "--engine", "optimum", "--device", "cpu",
            "--batch-size", "32", "--port", str(self.port), "--host", "127.0.0.1",
            "--pooling-method", method, "--log-level", "warning",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.model_dir, env=self.env, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        import httpx

        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Infinity exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        raise RuntimeError(f"Infinity did not start in time: {self.log.read_text()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


async def embed_all(call: Call, sentences: list[str], concurrency: int = 32) -> np.ndarray:
    """Every sentence through ``call`` (one text per request), in corpus order."""
    out: list[list[float] | None] = [None] * len(sentences)
    cursor = iter(range(len(sentences)))

    async def worker() -> None:
        for i in cursor:
            out[i] = await call(sentences[i])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return np.array(out, dtype=np.float32)


def reference_embeddings(sentences: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(bundled_checkpoint()), device="cpu")
    return np.asarray(model.encode(sentences, batch_size=64))


async def measure(
    server: ServerProcess, infinity: InfinityProcess, args: argparse.Namespace
) -> None:
    import aiohttp
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    sentences, gold = load_stsb()
    print(f"reference: sentence-transformers on {len(sentences)} sentences ...", flush=True)
    reference = reference_embeddings(sentences)

    channel = grpc.aio.insecure_channel(server.grpc_target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    protos: dict[str, predict_pb2.PredictRequest] = {}

    async def grpc_call(text: str) -> list[float]:
        request = protos.get(text)
        if request is None:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = contract.BUNDLED_MODEL_NAME
            request.inputs[contract.TEXT].CopyFrom(tf.make_tensor_proto([text.encode()]))
            protos[text] = request
        response = await stub.Predict(request, timeout=60)
        return list(response.outputs[contract.EMBEDDING].float_val)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        def openai_call(url: str, model: str) -> Call:
            async def call(text: str) -> list[float]:
                async with session.post(url, json={"model": model, "input": [text]}) as r:
                    if r.status != 200:
                        raise RuntimeError(f"{r.status}: {(await r.text())[:200]}")
                    body = await r.json()
                return list(body["data"][0]["embedding"])

            return call

        systems: dict[str, tuple[Call, list[int | None]]] = {
            "textserve gRPC Predict": (grpc_call, [server.pid, server.worker_pid()]),
            "textserve /v1/embeddings": (
                openai_call(f"{server.rest_url}/v1/embeddings", contract.BUNDLED_MODEL_NAME),
                [server.pid, server.worker_pid()],
            ),
            "Infinity /embeddings": (
                openai_call(f"{infinity.url}/embeddings", INFINITY_MODEL),
                [infinity.pid],
            ),
        }

        print("\nexactness (every sentence once, 32 callers):", flush=True)
        for name, (call, _) in systems.items():
            embeddings = await embed_all(call, sentences)
            diff = float(np.abs(embeddings - reference).max())
            score = spearman(embeddings, gold)
            print(f"  {name:26s} max abs diff {diff:.1e}, STS-B Spearman {score}", flush=True)

        levels = [int(c) for c in args.concurrency.split(",")]
        runs: dict[tuple[str, int], list[tuple[float, float, float, float, int]]] = {}
        for call, _ in systems.values():
            await drive(call, sentences, 8, 2.0)  # warm connections and batch shapes
        for round_index in range(args.rounds):
            print(f"\nround {round_index + 1}/{args.rounds}", flush=True)
            for c in levels:
                for name, (call, pids) in systems.items():
                    own = [p for p in pids if p is not None]
                    cpu0 = cpu_seconds(), sum(cpu_seconds(p) for p in own)
                    t0 = time.perf_counter()
                    rps, lat, errors = await drive(call, sentences, c, args.seconds)
                    wall = time.perf_counter() - t0
                    load = (cpu_seconds() - cpu0[0]) / wall
                    cores = (sum(cpu_seconds(p) for p in own) - cpu0[1]) / wall
                    p50, p99 = percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3
                    runs.setdefault((name, c), []).append((rps, p50, p99, cores, errors))
                    print(
                        f"  {name:26s} c={c:<3d} {rps:7.1f} req/s  p50 {p50:7.2f} ms  "
                        f"p99 {p99:7.2f} ms  errors {errors}  server {cores:.2f} cores, "
                        f"load generator {load:.2f}",
                        flush=True,
                    )
    await channel.close()
    report(runs, args.rounds)


def report(
    runs: dict[tuple[str, int], list[tuple[float, float, float, float, int]]], rounds: int
) -> None:
    print(f"\nmedians of {rounds} interleaved rounds, 1 text per request:\n")
    print("| system | concurrency | req/s | p50 ms | p99 ms | server cores | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (name, c), values in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rps, p50, p99, cores = (float(np.median([v[i] for v in values])) for i in range(4))
        errors = sum(v[4] for v in values)
        print(f"| {name} | {c} | {rps:.1f} | {p50:.2f} | {p99:.2f} | {cores:.2f} | {errors} |")
    for c in sorted({c for _, c in runs}):
        ours = float(np.median([v[0] for v in runs[("textserve gRPC Predict", c)]]))
        peer = float(np.median([v[0] for v in runs[("Infinity /embeddings", c)]]))
        print(f"concurrency {c}: textserve gRPC / Infinity throughput = {ours / peer:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--infinity_python",
        type=Path,
        required=True,
        help="python of a venv with tests/benchmarks/requirements-infinity.txt installed",
    )
    p.add_argument(
        "--model_base_path",
        type=Path,
        help="textserve: BASE dir with version 1 (default: export the bundled model)",
    )
    p.add_argument("--seconds", type=float, default=8.0, help="duration of each measurement")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians printed)")
    p.add_argument("--concurrency", default="1,32", help="levels, comma separated")
    args = p.parse_args()
    for tool in ("infinity_emb", "optimum-cli"):
        if not (args.infinity_python.parent / tool).exists():
            p.error(f"{args.infinity_python.parent / tool} not found: see this script's help")

    base = args.model_base_path or bundled_base()

    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        infinity = InfinityProcess(args.infinity_python, Path(tmp))
        print("Infinity: exporting ONNX with optimum and starting ...", flush=True)
        infinity.prepare()
        try:
            infinity.start()
            server_args = batching_server_args(Path(tmp), max_batch_size=32, num_batch_threads=1)
            print(f"textserve-server {' '.join(server_args)}", flush=True)
            with ServerProcess(
                model_name=contract.BUNDLED_MODEL_NAME, model_base_path=base, args=server_args
            ) as server:
                asyncio.run(measure(server, infinity, args))
        finally:
            infinity.stop()


if __name__ == "__main__":
    main()
