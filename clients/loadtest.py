"""The load-test engine: closed-loop concurrency sweeps and open-loop constant-rate runs,
with every answer checked against a reference embedding of its own texts.

Latency in open loop is measured from each request's INTENDED send time (its slot in the
arrival schedule), so a client or server that falls behind shows the queueing it caused
instead of hiding it (coordinated omission). Requests sent during warm-up are checked and
accounted but excluded from the figures.

Example::

    config = LoadTestConfig(target="grpc", address="localhost:8500", model_name="minilm",
                            concurrency=(1, 8, 32), rate_multipliers=(2.0, 3.0))
    report = asyncio.run(run_load_test(config, Workload.synthetic(500)))
    assert report.passed
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from clients._settings import DEFAULT_TIMEOUT_S
from clients.async_grpc_client import AsyncGrpcClient
from clients.async_rest_client import AsyncRestClient
from clients.errors import TextServeError
from clients.loadtest_workload import Workload
from clients.retry_policy import RetryPolicy
from clients.tls_config import TlsConfig
from models import contract

Target = Literal["grpc", "rest", "openai"]
TARGETS: tuple[Target, ...] = ("grpc", "rest", "openai")
# Explicit load shedding (ours: RESOURCE_EXHAUSTED / 429; TF Serving's full batch queue:
# UNAVAILABLE) is accounted and reported, but does not fail a run.
Embedder = Callable[[list[str]], Awaitable[npt.NDArray[np.float32]]]


@dataclasses.dataclass(frozen=True)
class LoadTestConfig:
    """One load test. Durations are per level; every level also stops at ``max_requests``."""

    target: Target
    address: str  # "host:port" for grpc, "http(s)://host:port" for rest / openai
    model_name: str
    batch_size: int = 8  # texts per request
    concurrency: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128)  # closed-loop levels
    rates: Sequence[float] = ()  # open-loop arrival rates in requests/s
    rate_multipliers: Sequence[float] = ()  # open-loop rates as multiples of measured capacity
    warmup_s: float = 2.0  # per level; longer = steadier figures, costs wall time
    duration_s: float = 10.0  # measured time per level
    max_requests: int | None = None  # per level (measured ones), None = only the time bound
    # Deadline of each request; a late answer is an error, not lost.
    timeout_s: float = DEFAULT_TIMEOUT_S
    atol: float = 1e-4  # max |row - reference| per element; row swaps differ by ~0.1
    reference_savedmodel: Path | None = None  # else: first pass at concurrency 1 on the target
    tls: TlsConfig | None = None
    bearer_token: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}")
        if self.batch_size < 1 or any(c < 1 for c in self.concurrency):
            raise ValueError("batch_size and concurrency levels must be >= 1")
        if any(r <= 0 for r in (*self.rates, *self.rate_multipliers)):
            raise ValueError("rates and multipliers must be > 0")
        if self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError("need duration_s > 0 and warmup_s >= 0")


@dataclasses.dataclass
class RequestRecord:
    intended: float  # monotonic time the request was due (closed loop: when it was sent)
    sent: float
    done: float
    measured: bool  # due after warm-up and before the end of the level
    code: str  # "OK" or the error's status name
    mismatched_rows: int = 0


@dataclasses.dataclass
class PhaseResult:
    """One level (a concurrency or an arrival rate): accounting and figures."""

    mode: Literal["closed", "open"]
    level: float  # concurrency, or offered requests/s
    batch_size: int
    measure_start: float  # monotonic start of the measured window (end of warm-up)
    measure_end: float  # monotonic end of the level's sending (measured requests are due before)
    sent: int = 0
    records: list[RequestRecord] = dataclasses.field(default_factory=list)
    mismatch_examples: list[str] = dataclasses.field(default_factory=list)
    error_examples: dict[str, str] = dataclasses.field(default_factory=dict)  # first per code

    @property
    def window_s(self) -> float:
        """From the end of warm-up to the end of the level (or, if ``max_requests`` ended it
        early, to the last answer to a measured request). Throughput counts the answers that
        arrived in this window, whichever request they belong to: the steady-state rate. Dividing
        the measured requests by the time until the last of them is answered would instead
        charge one full latency per level (128 callers at 9 s each over a 10 s level: ~half
        the real throughput)."""
        ends = [r.done for r in self.records if r.measured]
        return min(max(ends), self.measure_end) - self.measure_start if ends else math.nan

    @property
    def codes(self) -> Counter[str]:
        return Counter(r.code for r in self.records)

    @property
    def ok(self) -> int:
        return self.codes["OK"]

    @property
    def errors(self) -> dict[str, int]:
        return {code: n for code, n in sorted(self.codes.items()) if code != "OK"}

    @property
    def unaccounted(self) -> int:
        return self.sent - len(self.records)

    @property
    def mismatched_requests(self) -> int:
        return sum(1 for r in self.records if r.mismatched_rows)

    @property
    def unexpected_errors(self) -> dict[str, int]:
        return {c: n for c, n in self.errors.items() if c not in contract.OVERLOAD_CODES}

    def figures(self) -> dict[str, float]:
        measured = [r for r in self.records if r.measured]
        ok = [r for r in measured if r.code == "OK"]
        window = self.window_s
        answered = sum(
            1
            for r in self.records
            if r.code == "OK" and self.measure_start <= r.done <= self.measure_start + window
        )
        latencies = np.array([r.done - r.intended for r in ok]) * 1000.0
        pct = (
            np.percentile(latencies, [50, 90, 99, 99.9]) if len(latencies) else np.full(4, math.nan)
        )
        throughput = answered / window if window > 0 else 0.0
        return {
            "measured_requests": float(len(measured)),
            "ok_rps": throughput,
            "texts_per_s": throughput * self.batch_size,
            # The table's own counts (all of the level's requests, warm-up included), so the
            # chart's "x of y errors" can never disagree with the table next to it.
            "error_rate": sum(self.errors.values()) / self.sent if self.sent else math.nan,
            "p50_ms": float(pct[0]),
            "p90_ms": float(pct[1]),
            "p99_ms": float(pct[2]),
            "p999_ms": float(pct[3]),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "level": self.level,
            "batch_size": self.batch_size,
            "window_s": self.window_s,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "unaccounted": self.unaccounted,
            "mismatched_requests": self.mismatched_requests,
            "mismatched_rows": sum(r.mismatched_rows for r in self.records),
            "mismatch_examples": self.mismatch_examples[:5],
            "error_examples": self.error_examples,
            **self.figures(),
        }


@dataclasses.dataclass
class LoadTestReport:
    config: LoadTestConfig
    workload: str
    reference: str
    reference_texts: int
    capacity_rps: float | None
    phases: list[PhaseResult]

    @property
    def failures(self) -> list[str]:
        """Why the run failed: mismatches, unaccounted requests, or non-overload errors."""
        out = []
        for p in self.phases:
            name = f"{p.mode} {p.level:g}"
            if p.mismatched_requests:
                out.append(f"{name}: {p.mismatched_requests} mismatched responses")
            if p.unaccounted:
                out.append(f"{name}: {p.unaccounted} unaccounted requests")
            if p.unexpected_errors:
                out.append(f"{name}: unexpected errors {p.unexpected_errors}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        config = {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in dataclasses.asdict(self.config).items()
            if k not in ("tls", "bearer_token")
        }
        return {
            "config": config,
            "workload": self.workload,
            "reference": self.reference,
            "reference_texts": self.reference_texts,
            "capacity_rps": self.capacity_rps,
            "passed": self.passed,
            "failures": self.failures,
            "phases": [p.to_json() for p in self.phases],
        }


class _Live:
    """Counters the progress display reads while a phase runs."""

    def __init__(self) -> None:
        self.phase: PhaseResult | None = None
        self.started = time.monotonic()


def _reference_from_savedmodel(path: Path, texts: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
    """Embeddings from the SavedModel in-process (needs TensorFlow; imported only here)."""
    # Optional and heavy: imported only for --reference-savedmodel.
    import tensorflow as tf  # type: ignore[import-untyped]

    from models import contract

    signature = tf.saved_model.load(str(path)).signatures[contract.SERVING_DEFAULT]
    out: dict[str, npt.NDArray[Any]] = {}
    for start in range(0, len(texts), 32):
        batch = list(texts[start : start + 32])
        rows = signature(**{contract.TEXT: tf.constant(batch)})[contract.EMBEDDING].numpy()
        out.update(zip(batch, rows, strict=True))
    return out


class LoadTest:
    """Runs the phases of one :class:`LoadTestConfig` against one target.

    Use :func:`run_load_test`; this class holds the per-run state (client, reference).
    """

    def __init__(
        self,
        config: LoadTestConfig,
        workload: Workload,
        *,
        on_progress: Callable[[str, PhaseResult, float], None] | None = None,
    ) -> None:
        self.config = config
        self.workload = workload
        self.reference: dict[str, npt.NDArray[Any]] = {}
        self._on_progress = on_progress
        self._grpc: AsyncGrpcClient | None = None
        self._rest: AsyncRestClient | None = None

    async def _open(self) -> Embedder:
        c = self.config
        # No retries: the test must see every error the server answers with.
        common: dict[str, Any] = {
            "model_name": c.model_name,
            "timeout_s": c.timeout_s,
            "chunk_size": c.batch_size,
            "max_concurrency": 1,
            "retry": RetryPolicy(max_attempts=1),
            "tls": c.tls,
            "bearer_token": c.bearer_token,
        }
        if c.target == "grpc":
            self._grpc = AsyncGrpcClient(c.address, **common)
            return self._grpc.embed
        # One connection per request in flight at the highest closed-loop level (at least 128
        # for open loop); more requests wait for a free connection inside their deadline.
        connections = max((*c.concurrency, 128))
        self._rest = AsyncRestClient(c.address, max_connections=connections, **common)
        return self._rest.embed if c.target == "rest" else self._rest.embed_openai

    async def _close(self) -> None:
        if self._grpc is not None:
            await self._grpc.close()
        if self._rest is not None:
            await self._rest.close()

    async def run(self) -> LoadTestReport:
        embed = await self._open()
        try:
            return await self._run(embed)
        finally:
            await self._close()

    async def _run(self, embed: Embedder) -> LoadTestReport:
        c = self.config
        unique = self.workload.unique_texts()
        if c.reference_savedmodel is not None:
            self.reference = await asyncio.to_thread(
                _reference_from_savedmodel, c.reference_savedmodel, unique
            )
            reference = f"savedmodel:{c.reference_savedmodel}"
        else:
            for start in range(0, len(unique), c.batch_size):
                batch = unique[start : start + c.batch_size]
                rows = await embed(batch)
                self.reference.update(zip(batch, rows, strict=True))
            reference = f"first pass at concurrency 1 on {c.target}"
        phases: list[PhaseResult] = []
        for level in c.concurrency:
            phases.append(await self._closed_loop(embed, level))
        closed = [p.figures()["ok_rps"] for p in phases]
        capacity = max(closed) if closed else None
        rates = list(c.rates)
        if c.rate_multipliers:
            if capacity is None or not capacity > 0:
                raise ValueError("rate multipliers need a closed-loop sweep that measured capacity")
            rates += [m * capacity for m in c.rate_multipliers]
        for rate in rates:
            phases.append(await self._open_loop(embed, rate))
        return LoadTestReport(
            config=c,
            workload=self.workload.source,
            reference=reference,
            reference_texts=len(self.reference),
            capacity_rps=capacity,
            phases=phases,
        )

    async def _one(
        self,
        embed: Embedder,
        phase: PhaseResult,
        index: int,
        intended: float,
        measure: tuple[float, float],
    ) -> None:
        texts = self.workload.request_texts(index, self.config.batch_size)
        sent = time.monotonic()
        code = "OK"
        mismatched = 0
        try:
            rows = await embed(texts)
        except TextServeError as exc:
            code = exc.code
            phase.error_examples.setdefault(code, exc.message[:300])
        except Exception as exc:  # a client-side bug must show up in the counts, not vanish
            code = f"CLIENT_{type(exc).__name__}"
            phase.error_examples.setdefault(code, repr(exc)[:300])
        else:
            mismatched = self._check(phase, texts, rows)
        done = time.monotonic()
        phase.records.append(
            RequestRecord(
                intended=intended,
                sent=sent,
                done=done,
                measured=measure[0] <= intended < measure[1],
                code=code,
                mismatched_rows=mismatched,
            )
        )

    def _check(self, phase: PhaseResult, texts: list[str], rows: npt.NDArray[Any]) -> int:
        if rows.ndim != 2 or rows.shape[0] != len(texts):
            phase.mismatch_examples.append(f"{len(texts)} texts, got rows of shape {rows.shape}")
            return max(1, len(texts))
        bad = 0
        for text, row in zip(texts, rows, strict=True):
            ref = self.reference[text]
            err = float(np.max(np.abs(row - ref))) if row.shape == ref.shape else math.inf
            if not err <= self.config.atol:
                bad += 1
                if len(phase.mismatch_examples) < 5:
                    phase.mismatch_examples.append(f"{text[:60]!r}: max |diff| {err:.3g}")
        return bad

    async def _settle(self, tasks: set[asyncio.Task[None]], last_send: float) -> None:
        """Wait for in-flight requests (each is bounded by its own deadline, and none is sent
        after ``last_send``); anything still running after that is cancelled and stays
        unaccounted."""
        if not tasks:
            return
        grace = max(0.0, last_send - time.monotonic()) + self.config.timeout_s + 10.0
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()

    def _ticker(self, label: str, phase: PhaseResult, end: float) -> asyncio.Task[None]:
        async def tick() -> None:
            while True:
                if self._on_progress is not None:
                    self._on_progress(label, phase, end)
                await asyncio.sleep(0.25)

        return asyncio.ensure_future(tick())

    async def _closed_loop(self, embed: Embedder, concurrency: int) -> PhaseResult:
        c = self.config
        start = time.monotonic()
        measure = (start + c.warmup_s, start + c.warmup_s + c.duration_s)
        phase = PhaseResult("closed", concurrency, c.batch_size, *measure)
        counter = iter(range(10**12))
        measured_sent = 0

        async def worker() -> None:
            nonlocal measured_sent
            while True:
                now = time.monotonic()
                if now >= measure[1] or (
                    c.max_requests is not None and measured_sent >= c.max_requests
                ):
                    return
                if now >= measure[0]:
                    measured_sent += 1
                phase.sent += 1
                await self._one(embed, phase, next(counter), now, measure)

        ticker = self._ticker(f"closed loop, concurrency {concurrency}", phase, measure[1])
        try:
            workers = {asyncio.ensure_future(worker()) for _ in range(concurrency)}
            await self._settle(workers, measure[1])
        finally:
            ticker.cancel()
        return phase

    async def _open_loop(self, embed: Embedder, rate: float) -> PhaseResult:
        c = self.config
        start = time.monotonic()
        measure = (start + c.warmup_s, start + c.warmup_s + c.duration_s)
        phase = PhaseResult("open", rate, c.batch_size, *measure)
        tasks: set[asyncio.Task[None]] = set()
        ticker = self._ticker(f"open loop, {rate:.1f} req/s", phase, measure[1])
        measured_sent = 0
        try:
            index = 0
            while True:
                intended = start + index / rate
                if intended >= measure[1]:
                    break
                if c.max_requests is not None and measured_sent >= c.max_requests:
                    break
                delay = intended - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if intended >= measure[0]:
                    measured_sent += 1
                phase.sent += 1
                task = asyncio.ensure_future(self._one(embed, phase, index, intended, measure))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                index += 1
            await self._settle(set(tasks), measure[1])
        finally:
            ticker.cancel()
        return phase


async def run_load_test(
    config: LoadTestConfig,
    workload: Workload,
    *,
    on_progress: Callable[[str, PhaseResult, float], None] | None = None,
) -> LoadTestReport:
    """Run every phase of ``config`` and return the report (``report.passed`` is the verdict)."""
    return await LoadTest(config, workload, on_progress=on_progress).run()


def summarize_errors(errors: Mapping[str, int]) -> str:
    return ", ".join(f"{code} {n}" for code, n in errors.items()) or "-"
