"""Served vs in-process throughput and latency of the bundled MiniLM (a script, not a test).

    python tests/benchmarks/bench_serving.py [--model_base_path BASE] [--seconds 10] [--rounds 3]

Prints, in one run on tests/data/stsb/stsb-en-test.csv (both columns, 2,758 sentences), in
``--rounds`` interleaved rounds (the host's speed drifts; each round measures both sides):
the in-process SavedModel's throughput at batch 32 (``--batch_sizes``; sentences in file
order and length-sorted) and its batch-1 latency; then the served throughput over gRPC and
REST at concurrency 1 and 32 (``--concurrency``; each request one text) with p50/p99 latency.
The table holds the medians over rounds and the ratio of the served median to the best
in-process median in file order (what a server fed arbitrary requests gets) and
length-sorted (a caller that sorts its corpus first). Targets: served
>= 0.95 x in-process in file order; p50 at concurrency 1 within 1 ms (gRPC) / 2 ms (REST) of
in-process batch 1. The load generator runs on the same 2 cores as the server, so each served
level also prints the CPU (in cores) taken by the load generator, the front process and the
TF worker process, the front's CPU per request (ms): what the Python request path costs apart
from TensorFlow, and the worker's idle gap: the wall time not spent inside TensorFlow calls,
per batch and as a share of the run (from the server's Prometheus metrics: inference seconds
and batch counts). Under 32 callers there is always work queued, so that gap is the pipe,
the batcher and the event loop between one batch's answer and the next batch's start.

    python tests/benchmarks/bench_serving.py --served_only --concurrency 1,8 --seconds 10

measures the served levels alone (no in-process table, no ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models import contract  # noqa: E402
from serving.sub_batches import SubBatches  # noqa: E402
from tests.benchmarks.bench_inprocess import savedmodel_encoder  # noqa: E402
from tests.support.server_process import ServerProcess  # noqa: E402

CONCURRENCY = (1, 32)
BATCH_SIZES = (32,)
METRICS_PATH = "/monitoring/prometheus/metrics"


def load_sentences() -> list[str]:
    path = (REPO / "tests/data/stsb/stsb-en-test.csv").resolve()
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))  # sentence1,sentence2,score; no header row
    return [r[0] for r in rows] + [r[1] for r in rows]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one if ``pid`` is None), all threads."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def in_process(base: Path, threads: str) -> tuple[Callable[[list[str]], object], SubBatches]:
    """The SavedModel in this process, run as the server's worker runs it (``threads`` =
    "server": one intra-op thread, each batch split into one part per core) or in one call
    with TF's default threads ("tf-default")."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph uses)

    parts = SubBatches.for_tensorflow(tf) if threads == "server" else SubBatches(parts=1, threads=0)
    run = savedmodel_encoder(base / "1", parts)
    run(["warm up"])
    return run, parts


def in_process_round(
    run: Callable[[list[str]], object],
    sentences: list[str],
    seconds: float,
    batch_sizes: tuple[int, ...],
) -> tuple[dict[str, float], float, float]:
    """One in-process round: sentences/s per order and batch size, batch-1 p50 and p99."""
    results: dict[str, float] = {}
    for order, texts in (("file order", sentences), ("length-sorted", sorted(sentences, key=len))):
        for bs in batch_sizes:
            run(texts[:bs])  # trace/warm this shape family
            done, t0 = 0, time.perf_counter()
            for i in range(0, len(texts), bs):
                run(texts[i : i + bs])
                done += len(texts[i : i + bs])
                if time.perf_counter() - t0 > seconds:
                    break
            results[f"{order}, batch {bs}"] = done / (time.perf_counter() - t0)
    lat = []
    for s in sentences[:300]:
        t0 = time.perf_counter()
        run([s])
        lat.append(time.perf_counter() - t0)
    return results, percentile(lat, 50), percentile(lat, 99)


def bundled_base() -> Path:
    """BASE dir whose version 1 is the bundled model's export (exported on first use)."""
    base = Path(tempfile.gettempdir()) / "textserve-bench" / "minilm"
    if not (base / "1" / "saved_model.pb").exists():
        from models.export.exporter import export_model

        print(f"exporting the bundled model to {base} ...", flush=True)
        export_model(checkpoint=None, output=base / "1")
    return base


def batching_server_args(
    workdir: Path, *, max_batch_size: int, num_batch_threads: int
) -> list[str]:
    """textserve-server flags of the served measurements: batching with no batch timeout, and
    Prometheus metrics on (``METRICS_PATH``); the two config files are written to ``workdir``.
    """
    # On CPU, batches beyond ~32 sentences are slower per sentence (see the in-process table):
    # cap them there, and queue deep enough that 128 callers never overflow.
    batching = workdir / "batching_parameters.txt"
    batching.write_text(
        f"max_batch_size {{ value: {max_batch_size} }}\n"
        "batch_timeout_micros { value: 0 }\n"
        "max_enqueued_batches { value: 100 }\n"
        f"num_batch_threads {{ value: {num_batch_threads} }}\n"
    )
    monitoring = workdir / "monitoring.txt"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}\n')
    return [
        "--enable_batching",
        f"--batching_parameters_file={batching}",
        f"--monitoring_config_file={monitoring}",
        "--file_system_poll_wait_seconds=0",
    ]


async def drive(
    call, sentences: list[str], concurrency: int, seconds: float
) -> tuple[float, list[float], int]:  # type: ignore[no-untyped-def]
    """``concurrency`` tasks, each sending one sentence per request, for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    next_index = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal next_index, errors
        while time.perf_counter() < stop_at:
            text = sentences[next_index % len(sentences)]
            next_index += 1
            t0 = time.perf_counter()
            try:
                await call(text)
            except Exception:  # counted and reported, the run goes on
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - t0), latencies, errors


async def worker_totals(session, url: str) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(seconds inside TensorFlow, batches run, rows run) so far, from the server's metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(url) as r:
        text = await r.text()
    totals = {"tf": 0.0, "batches": 0.0, "rows": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == contract.METRIC_INFERENCE_LATENCY + "_sum":
                totals["tf"] += sample.value
            elif sample.name == contract.METRIC_BATCH_SIZE + "_count":
                totals["batches"] += sample.value
            elif sample.name == contract.METRIC_BATCH_SIZE + "_sum":
                totals["rows"] += sample.value
    return totals["tf"], totals["batches"], totals["rows"]


async def served(
    server: ServerProcess, sentences: list[str], seconds: float, levels: tuple[int, ...]
) -> list[tuple[str, int, float, float, float, int]]:
    import aiohttp
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    rows = []
    channel = grpc.aio.insecure_channel(server.grpc_target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    protos = {}

    async def grpc_call(text: str) -> None:
        req = protos.get(text)
        if req is None:
            req = predict_pb2.PredictRequest()
            req.model_spec.name = contract.BUNDLED_MODEL_NAME
            req.inputs[contract.TEXT].CopyFrom(tf.make_tensor_proto([text.encode()]))
            protos[text] = req
        await stub.Predict(req, timeout=60)

    url = f"{server.rest_url}/v1/models/{contract.BUNDLED_MODEL_NAME}:predict"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def rest_call(text: str) -> None:
            async with session.post(url, json={"instances": [text]}) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(r.status)

        pids = {"load generator": None, "front": server.pid, "worker": server.worker_pid()}
        metrics_url = server.rest_url + METRICS_PATH
        for name, call in (("gRPC", grpc_call), ("REST", rest_call)):
            await drive(call, sentences, 8, 2.0)  # warm connections and batch shapes
            for c in levels:
                cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
                tf0, batches0, rows0 = await worker_totals(session, metrics_url)
                t0 = time.perf_counter()
                rps, lat, errors = await drive(call, sentences, c, seconds)
                wall = time.perf_counter() - t0
                spent = {k: cpu_seconds(pid) - cpu0[k] for k, pid in pids.items()}
                tf1, batches1, rows1 = await worker_totals(session, metrics_url)
                cores = {k: v / wall for k, v in spent.items()}
                front_ms = spent["front"] / max(1, len(lat)) * 1e3
                batches = max(1.0, batches1 - batches0)
                idle = max(0.0, wall - (tf1 - tf0))
                rows.append((name, c, rps, percentile(lat, 50), percentile(lat, 99), errors))
                print(
                    f"  {name:4s} c={c:<4d} {rps:7.1f} req/s  "
                    f"p50 {percentile(lat, 50) * 1e3:7.2f} ms  "
                    f"p99 {percentile(lat, 99) * 1e3:7.2f} ms  errors {errors}  "
                    f"front CPU/request {front_ms:.2f} ms  CPU cores: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
                    + f"  batches: {(rows1 - rows0) / batches:.1f} rows avg, worker idle "
                    f"{idle / batches * 1e3:.2f} ms/batch ({idle / wall:.0%} of the run)",
                    flush=True,
                )
    await channel.close()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model_base_path",
        type=Path,
        help="BASE dir with version 1 (default: export the bundled model)",
    )
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each measurement")
    p.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (in-process, then served)"
    )
    p.add_argument(
        "--batch_sizes",
        default=",".join(map(str, BATCH_SIZES)),
        help="in-process batch sizes, comma separated",
    )
    p.add_argument(
        "--server_args", default="", help="extra textserve-server flags, space separated"
    )
    p.add_argument(
        "--max_batch_size", type=int, default=32, help="BatchingParameters.max_batch_size"
    )
    p.add_argument(
        "--num_batch_threads", type=int, default=1, help="BatchingParameters.num_batch_threads"
    )
    p.add_argument(
        "--concurrency",
        default=",".join(map(str, CONCURRENCY)),
        help="served levels, comma separated (callers, one text per request)",
    )
    p.add_argument(
        "--served_only", action="store_true", help="skip the in-process table and the ratios"
    )
    p.add_argument(
        "--threads",
        choices=("server", "tf-default"),
        default="server",
        help="in-process: run the SavedModel as the server's worker does (1 intra-op thread, "
        "one part per core) or in one call with TF's default threads",
    )
    args = p.parse_args()
    levels = tuple(int(c) for c in args.concurrency.split(","))
    batch_sizes = tuple(int(b) for b in args.batch_sizes.split(","))

    sentences = load_sentences()
    base = args.model_base_path or bundled_base()
    server_args = [
        *batching_server_args(
            Path(tempfile.mkdtemp()),
            max_batch_size=args.max_batch_size,
            num_batch_threads=args.num_batch_threads,
        ),
        *args.server_args.split(),
    ]
    run, parts = (None, None) if args.served_only else in_process(base, args.threads)
    print(
        f"{len(sentences)} STS-B sentences, {os.cpu_count()} cores, {args.rounds} rounds; "
        f"in-process threads: {args.threads}; served: textserve-server {' '.join(server_args)}",
        flush=True,
    )
    # Rounds alternate in-process and served (the server idles while this process measures),
    # so a drift of the host's speed moves both sides of each ratio alike.
    inproc_rounds: list[tuple[dict[str, float], float, float]] = []
    served_rounds: list[list[tuple[str, int, float, float, float, int]]] = []
    with ServerProcess(
        model_name=contract.BUNDLED_MODEL_NAME, model_base_path=base, args=server_args
    ) as server:
        for number in range(1, args.rounds + 1):
            print(f"round {number}", flush=True)
            if run is not None:
                inproc_rounds.append(in_process_round(run, sentences, args.seconds, batch_sizes))
                for k, v in inproc_rounds[-1][0].items():
                    print(f"  in-process {k:28s} {v:7.1f} sentences/s", flush=True)
                print(f"  in-process batch-1 p50 {inproc_rounds[-1][1] * 1e3:.2f} ms", flush=True)
            served_rounds.append(asyncio.run(served(server, sentences, args.seconds, levels)))
    if parts is not None:
        parts.close()
    if inproc_rounds:
        inproc = {
            k: statistics.median([r[0][k] for r in inproc_rounds]) for k in inproc_rounds[0][0]
        }
        lat50 = statistics.median([r[1] for r in inproc_rounds])
        lat99 = statistics.median([r[2] for r in inproc_rounds])
        report(median_rows(served_rounds), inproc, lat50, lat99, args.rounds)


def median_rows(
    rounds: list[list[tuple[str, int, float, float, float, int]]],
) -> list[tuple[str, int, float, float, float, int]]:
    """Per (protocol, concurrency): the median req/s, p50 and p99 over rounds, errors summed."""
    rows = []
    for index, (name, c, *_) in enumerate(rounds[0]):
        runs = [r[index] for r in rounds]
        rows.append(
            (
                name,
                c,
                statistics.median([r[2] for r in runs]),
                statistics.median([r[3] for r in runs]),
                statistics.median([r[4] for r in runs]),
                sum(r[5] for r in runs),
            )
        )
    return rows


def report(
    rows: list[tuple[str, int, float, float, float, int]],
    inproc: dict[str, float],
    lat50: float,
    lat99: float,
    rounds: int,
) -> None:
    """The served levels against the in-process table (medians of ``rounds``), as a markdown
    table and a summary."""
    best_name, best = max(inproc.items(), key=lambda kv: kv[1])
    file_name, file_best = max(
        ((k, v) for k, v in inproc.items() if k.startswith("file order")), key=lambda kv: kv[1]
    )
    print(f"\nmedians of {rounds} interleaved rounds")
    print(
        f"  best: {best_name}: {best:.1f} sentences/s; in file order: {file_name}: "
        f"{file_best:.1f}; batch-1 latency p50 {lat50 * 1e3:.2f} ms, p99 {lat99 * 1e3:.2f} ms"
    )
    print()
    print(
        "| protocol | concurrency | req/s (1 text each) | x in-process, file order | "
        "x in-process, sorted | p50 ms | p99 ms | errors |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, c, rps, p50, p99, errors in rows:
        print(
            f"| {name} | {c} | {rps:.1f} | {rps / file_best:.2f} | {rps / best:.2f} | "
            f"{p50 * 1e3:.2f} | {p99 * 1e3:.2f} | {errors} |"
        )
    print(
        f"| in-process | batch 1 | {1 / lat50:.1f} | | | {lat50 * 1e3:.2f} | {lat99 * 1e3:.2f} | |"
    )
    print(f"| in-process | {file_name} | {file_best:.1f} | 1.00 | | | | |")
    print(f"| in-process | {best_name} | {best:.1f} | | 1.00 | | | |")
    for name in ("gRPC", "REST"):
        top = max(r[2] for r in rows if r[0] == name)
        c1 = next((r for r in rows if r[0] == name and r[1] == 1), None)
        latency = (
            f"; p50 at c=1 {c1[3] * 1e3:.2f} ms vs in-process {lat50 * 1e3:.2f} ms "
            f"(+{(c1[3] - lat50) * 1e3:.2f} ms)"
            if c1
            else ""
        )
        print(
            f"{name}: best served {top:.1f} req/s = {top / file_best:.2f} x in-process in file "
            f"order, {top / best:.2f} x length-sorted (target 0.95){latency}"
        )


if __name__ == "__main__":
    main()
