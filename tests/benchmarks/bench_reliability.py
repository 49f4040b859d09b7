"""Reliability figures of the served MiniLM (a script, not a test; issue 12).

    python tests/benchmarks/bench_reliability.py [--model_base_path BASE] [--only NAME ...]

Prints, each against a fresh ``textserve-server --enable_batching`` on loopback:

- ``idle``: false refusals on an idle server across text sizes: after ten requests of "a",
  REST requests of one text of 100 .. 20,000 characters (the server's max_text_chars) and a
  gRPC request of 64 texts of ~3,000 characters with a 30 s deadline; every answer is checked
  (shape, finite), and every refusal counted.
- ``deadline``: deadline misses at 3x load: the closed-loop capacity (32 callers, one STS-B
  sentence per request) is measured, then requests are sent open loop at 3x that rate, each
  with a 2 s deadline; prints sent / OK / refused (RESOURCE_EXHAUSTED) / DEADLINE_EXCEEDED /
  other, and the share of admitted requests (OK + DEADLINE_EXCEEDED) past their deadline.
- ``reload``: reload churn: 15 new versions copied in one after another; after each is served,
  the VmRSS of the TF worker serving it and of all worker processes together.
- ``sigkill``: recovery after SIGKILL of the worker under load (8 closed-loop callers): time
  from the kill to the first OK answer, with and without ``--worker_standby``, and the
  standby's VmRSS (what it costs).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models import contract  # noqa: E402
from tests.support.server_process import ServerProcess  # noqa: E402

MODEL = contract.BUNDLED_MODEL_NAME


def sentences() -> list[str]:
    with open(REPO / "tests/data/stsb/stsb-en-test.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return [r[0] for r in rows] + [r[1] for r in rows]


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def worker_pids(server: ServerProcess) -> list[int]:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [int(c) for c in children]


class Grpc:
    """A grpc.aio Predict stub for one-text or many-text requests."""

    def __init__(self, server: ServerProcess) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.grpc = grpc
        self.channel = grpc.aio.insecure_channel(server.grpc_target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def request(self, texts: list[str]) -> object:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        req = predict_pb2.PredictRequest()
        req.model_spec.name = MODEL
        req.inputs[contract.TEXT].CopyFrom(tf.make_tensor_proto([t.encode() for t in texts]))
        return req

    async def call(self, req: object, timeout: float) -> str:
        """The status code name ('OK' after checking the embedding)."""
        import tensorflow as tf

        try:
            resp = await self.stub.Predict(req, timeout=timeout)
        except self.grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        emb = tf.make_ndarray(resp.outputs[contract.EMBEDDING])
        n = len(req.inputs[contract.TEXT].string_val)  # type: ignore[attr-defined]
        assert emb.shape == (n, 384) and np.isfinite(emb).all(), emb.shape
        return "OK"


def idle(base: Path) -> None:
    import httpx

    print("== idle: false refusals on an idle server", flush=True)
    with ServerProcess(model_name=MODEL, model_base_path=base, args=["--enable_batching"]) as srv:
        url = f"{srv.rest_url}/v1/models/{MODEL}:predict"
        for _ in range(10):
            assert httpx.post(url, json={"instances": ["a"]}, timeout=60).status_code == 200
        refused = 0
        for chars in (100, 500, 2_000, 4_000, 8_000, 12_000, 20_000):
            text = ("lorem ipsum dolor sit amet " * (chars // 27 + 1))[:chars]
            codes: Counter[int] = Counter()
            seconds = []
            for _ in range(5):
                t0 = time.perf_counter()
                r = httpx.post(url, json={"instances": [text]}, timeout=60)
                seconds.append(time.perf_counter() - t0)
                codes[r.status_code] += 1
                if r.status_code == 200:
                    assert len(r.json()["predictions"][0]) == 384
            refused += sum(n for c, n in codes.items() if c != 200)
            print(
                f"  REST 1 text x {chars:>6,} chars: {dict(codes)}  "
                f"median {np.median(seconds) * 1e3:.0f} ms",
                flush=True,
            )

        async def grpc_big() -> None:
            nonlocal refused
            g = Grpc(srv)
            req = g.request([("word " * 600 + str(i))[:3000] for i in range(64)])
            for _ in range(3):
                t0 = time.perf_counter()
                code = await g.call(req, timeout=30.0)
                refused += code != "OK"
                print(
                    f"  gRPC 64 texts x 3,000 chars, 30 s deadline: {code} in "
                    f"{time.perf_counter() - t0:.1f} s",
                    flush=True,
                )
            await g.channel.close()

        asyncio.run(grpc_big())
        print(f"  false refusals: {refused}", flush=True)


def deadline(base: Path, seconds: float) -> None:
    print("== deadline: misses at 3x load, 2 s deadlines", flush=True)
    texts = sentences()
    monitoring = Path(tempfile.mkdtemp(prefix="bench-monitoring-")) / "monitoring.txt"
    monitoring.write_text("prometheus_config { enable: true }\n")
    args = ["--enable_batching", f"--monitoring_config_file={monitoring}"]
    with ServerProcess(model_name=MODEL, model_base_path=base, args=args) as srv:

        async def main() -> None:
            g = Grpc(srv)
            reqs = [g.request([t]) for t in texts]
            done = 0
            stop = time.perf_counter() + 3.0

            async def closed(i: int) -> None:
                nonlocal done
                while time.perf_counter() < stop:
                    if await g.call(reqs[(i + done) % len(reqs)], 30.0) == "OK":
                        done += 1

            await asyncio.gather(*(closed(i) for i in range(32)))  # warm up
            done, t0 = 0, time.perf_counter()
            stop = t0 + seconds
            await asyncio.gather(*(closed(i) for i in range(32)))
            capacity = done / (time.perf_counter() - t0)
            rate = 3 * capacity
            print(
                f"  closed-loop capacity (32 callers): {capacity:.0f} req/s; open loop at "
                f"{rate:.0f} req/s for {seconds:.0f} s",
                flush=True,
            )
            codes: Counter[str] = Counter()
            tasks = []
            t0 = time.perf_counter()
            n = 0
            while (now := time.perf_counter()) < t0 + seconds:
                due = t0 + n / rate
                if due > now:
                    await asyncio.sleep(due - now)
                tasks.append(asyncio.ensure_future(g.call(reqs[n % len(reqs)], 2.0)))
                n += 1
            for code in await asyncio.gather(*tasks):
                codes[code] += 1
            admitted = codes["OK"] + codes["DEADLINE_EXCEEDED"]
            other = n - admitted - codes["RESOURCE_EXHAUSTED"]
            print(
                f"  sent {n}, OK {codes['OK']}, refused {codes['RESOURCE_EXHAUSTED']}, "
                f"DEADLINE_EXCEEDED {codes['DEADLINE_EXCEEDED']}, other {other} {dict(codes)}; "
                f"answered {codes['OK'] / seconds:.0f} req/s; past deadline: "
                f"{100 * codes['DEADLINE_EXCEEDED'] / max(1, admitted):.2f}% of admitted",
                flush=True,
            )
            await g.channel.close()

        asyncio.run(main())
        print(f"  server-side answers (gRPC): {server_codes(srv)}", flush=True)


def server_codes(srv: ServerProcess) -> dict[str, float]:
    """Requests by status code as the server counted them (its Prometheus metrics)."""
    import httpx

    text = httpx.get(f"{srv.rest_url}/monitoring/prometheus/metrics", timeout=30).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(contract.METRIC_REQUESTS + "{") and 'api="grpc"' in line:
            code = line.split('code="')[1].split('"')[0]
            out[code] = out.get(code, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def reload(base: Path, count: int) -> None:
    import grpc

    from tests.support.tfs_calls import predict, texts

    print(f"== reload: worker memory over {count} reloads", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-reload-")) / MODEL
    shutil.copytree(base / "1", work / "1")
    with ServerProcess(
        model_name=MODEL, model_base_path=work, args=["--file_system_poll_wait_seconds=0.5"]
    ) as srv:
        first = rss_mb(srv.worker_pid())
        print(f"  version 1: serving worker {first:.0f} MB", flush=True)
        for v in range(2, count + 2):
            t0 = time.perf_counter()
            shutil.copytree(work / "1", work / f"{v}.tmp")
            os.rename(work / f"{v}.tmp", work / str(v))
            with grpc.insecure_channel(srv.grpc_target) as ch:
                while predict(ch, MODEL, {contract.TEXT: texts("hello")}, timeout=60)[0] != v:
                    time.sleep(0.2)
            time.sleep(1.0)  # the old worker drains and exits
            pids = worker_pids(srv)
            active = rss_mb(srv.worker_pid())
            total = sum(rss_mb(p) for p in pids)
            print(
                f"  reload {v - 1:2d} (version {v}): {time.perf_counter() - t0:5.1f} s, serving "
                f"worker {active:6.0f} MB ({active - first:+.0f} MB), {len(pids)} worker "
                f"process(es) {total:6.0f} MB",
                flush=True,
            )
    shutil.rmtree(work.parent)


def sigkill(base: Path, modes: tuple[bool, ...] = (True, False)) -> None:
    print("== sigkill: first OK answer after SIGKILL of the worker, 8 callers", flush=True)
    texts = sentences()
    for standby in modes:
        args = ["--enable_batching"] + (["--worker_standby"] if standby else [])
        with ServerProcess(model_name=MODEL, model_base_path=base, args=args) as srv:
            if standby:
                while not any(
                    e.get("event") == "standby_ready" and e.get("versions") for e in srv.events()
                ):
                    time.sleep(0.5)

            async def main() -> tuple[float, Counter[str]]:
                g = Grpc(srv)
                reqs = [g.request([t]) for t in texts[:200]]
                codes: Counter[str] = Counter()
                killed_at = 0.0
                first_ok = 0.0
                end = time.perf_counter() + 120

                async def caller(i: int) -> None:
                    nonlocal first_ok
                    k = i
                    while time.perf_counter() < end and not first_ok:
                        sent = time.perf_counter()
                        code = await g.call(reqs[k % len(reqs)], 10.0)
                        k += 8
                        if killed_at and sent > killed_at:  # sent after the kill
                            codes[code] += 1
                            if code == "OK" and not first_ok:
                                first_ok = time.perf_counter()
                        if code != "OK":
                            await asyncio.sleep(0.05)

                async def killer() -> None:
                    nonlocal killed_at
                    await asyncio.sleep(3.0)
                    pid = srv.worker_pid()
                    assert pid is not None
                    killed_at = time.perf_counter()
                    os.kill(pid, signal.SIGKILL)

                await asyncio.gather(killer(), *(caller(i) for i in range(8)))
                await g.channel.close()
                return (first_ok - killed_at if first_ok else float("inf")), codes

            pids_before = worker_pids(srv)
            active_before = srv.worker_pid()
            standby_mb = sum(rss_mb(p) for p in pids_before if p != active_before)
            active_mb = rss_mb(active_before)
            recovery, codes = asyncio.run(main())
            print(
                f"  --worker_standby={str(standby).lower()}: first OK {recovery:.2f} s after "
                f"the kill; answers to requests sent after the kill until then: {dict(codes)}"
                + (
                    f"; standby VmRSS {standby_mb:.0f} MB, serving worker "
                    f"{active_mb:.0f} MB before the kill"
                    if standby
                    else ""
                ),
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model_base_path",
        type=Path,
        default=None,
        help="BASE dir with version 1 of MiniLM (default: export the bundled model)",
    )
    p.add_argument("--only", nargs="*", default=["idle", "deadline", "reload", "sigkill"])
    p.add_argument("--seconds", type=float, default=20.0, help="length of each load phase")
    p.add_argument("--reloads", type=int, default=15)
    p.add_argument(
        "--standby", choices=["both", "on", "off"], default="both", help="sigkill: which runs"
    )
    args = p.parse_args()
    base = args.model_base_path
    if base is None:
        from models.export.exporter import export_model

        base = Path(tempfile.mkdtemp(prefix="bench-reliability-")) / MODEL
        print(f"exporting the bundled model to {base} ...", flush=True)
        export_model(checkpoint=None, output=base / "1")
    for name in args.only:
        if name == "idle":
            idle(base)
        elif name == "deadline":
            deadline(base, args.seconds)
        elif name == "reload":
            reload(base, args.reloads)
        elif name == "sigkill":
            sigkill(base, {"both": (True, False), "on": (True,), "off": (False,)}[args.standby])


if __name__ == "__main__":
    main()
